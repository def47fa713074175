"""CSV import and export through the records service (every check applies to imports)."""

from __future__ import annotations

import csv
import io

import pytest
from apihelp import PACK, start_api

from engine.forms.records import SYSTEM_ACTOR
from engine.forms.transfer import export_csv, import_csv
from engine.model.errors import ValidationFailed


@pytest.fixture
def api(db_url: str):
    api = start_api(db_url)
    yield api
    api.engine.dispose()


def test_import_pack_customers_and_some_products(api) -> None:
    records = api.live.records
    customers = (PACK / "data" / "customers.csv").read_text(encoding="utf-8")
    report = import_csv(records, "customer", customers, SYSTEM_ACTOR)
    assert (report.created, report.failed) == (40, [])
    products = (PACK / "data" / "products.csv").read_text(encoding="utf-8").splitlines()
    assert len(products) == 12001
    report = import_csv(records, "product", "\n".join(products[:301]), SYSTEM_ACTOR)
    assert (report.created, report.failed) == (300, [])
    page = records.list_page("product", filters={"category": "顶棚"}, limit=500)
    assert len(page.items) == 50


def test_import_reports_bad_rows_by_line_and_keeps_good_ones(api) -> None:
    text = "客户编号,客户名称,客户等级\nC00001,甲,VIP\nX1,乙,A\nC00003,丙,Z\n"
    report = import_csv(api.live.records, "customer", text, SYSTEM_ACTOR)
    assert report.created == 1
    assert [(line, [e.field for e in errors]) for line, errors in report.failed] == [
        (3, ["code"]),
        (4, ["tier"]),
    ]


def test_import_resolves_refs_by_title(api) -> None:
    records = api.live.records
    import_csv(records, "customer", "code,name,tier\nC00001,绍兴某车企,A\n", SYSTEM_ACTOR)
    import_csv(
        records, "product", "code,name,unit_price,lead_days\nSD-100001,面套,10,5\n", SYSTEM_ACTOR
    )
    text = (
        "customer,product,quantity,desired_date,order_type\n绍兴某车企,面套,4,2099-01-05,normal\n"
    )
    report = import_csv(records, "order", text, SYSTEM_ACTOR)
    assert (report.created, report.failed) == (1, [])
    order = records.list_page("order").items[0]
    assert order["_titles"] == {"customer": "绍兴某车企", "product": "面套"}
    assert str(order["amount"]) == "40.00"


def test_unknown_column_is_refused_whole(api) -> None:
    with pytest.raises(ValidationFailed) as refused:
        import_csv(api.live.records, "customer", "code,nmae\nC1,x\n", SYSTEM_ACTOR)
    assert refused.value.errors[0].field == "nmae"


def test_export_round_trip(api) -> None:
    records = api.live.records
    for i in range(3):
        records.create(
            "customer", {"code": f"C0000{i}", "name": f"客户{i}", "tier": "A"}, SYSTEM_ACTOR
        )
    rows = list(csv.DictReader(io.StringIO("".join(export_csv(records, "customer")))))
    assert [r["code"] for r in rows] == ["C00000", "C00001", "C00002"]
    assert rows[0]["name"] == "客户0"
