"""The manufacturing pack's mock WMS: stock, idempotent reservations, faults, auth."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest
from starlette.testclient import TestClient

from engine.demo.modules import load_module

PACK = Path(__file__).resolve().parents[1] / "examples" / "manufacturing_pack"
BASE = date(2026, 11, 30)


def _load() -> ModuleType:
    module = load_module("mock_wms", PACK / "mock_wms.py")  # registered: dataclasses look it up
    assert module is not None
    return module


wms = sys.modules.get("mock_wms") or _load()


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.delenv("WMS_TOKEN", raising=False)
    with TestClient(wms.create_app(base_date=BASE)) as test_client:
        yield test_client


def reserve(client: TestClient, key: str | None, **body: Any) -> httpx2.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    payload = {"sku": "DP-100001", "quantity": 10, "order_no": "SO-1"} | body
    return client.post("/api/reservations", json=payload, headers=headers)


# ---- stock ----------------------------------------------------------------------------


def test_showcase_stock_by_location_with_incoming(client: TestClient) -> None:
    answer = client.get("/api/stock/DP-100001")
    assert answer.status_code == 200
    assert answer.json() == {
        "sku": "DP-100001",
        "on_hand": 30,
        "reserved": 0,
        "safety_stock": 0,
        "available": 30,
        "locations": [
            {"location": "A-01-03", "on_hand": 20},
            {"location": "B-02-01", "on_hand": 10},
        ],
        "incoming": [{"po": "PO-260101", "quantity": 100, "eta": "2026-12-14"}],
    }
    plenty = client.get("/api/stock/SD-100000").json()
    assert (plenty["on_hand"], plenty["reserved"], plenty["safety_stock"]) == (600, 40, 20)
    assert plenty["available"] == 540
    empty = client.get("/api/stock/CP-100003").json()
    assert (empty["on_hand"], empty["available"], empty["locations"], empty["incoming"]) == (
        0,
        0,
        [],
        [],
    )


def test_every_product_is_known_and_seeded_deterministically(client: TestClient) -> None:
    codes = [
        line.split(",", 1)[0] for line in (PACK / "data/products.csv").read_text().splitlines()
    ]
    sample = codes[1::397]  # skip the header; a spread of SKUs
    with TestClient(wms.create_app(base_date=BASE)) as other:
        again = [other.get(f"/api/stock/{sku}").json() for sku in sample]
    for sku, second in zip(sample, again, strict=True):
        first = client.get(f"/api/stock/{sku}").json()
        assert first == second
        assert first["on_hand"] == sum(loc["on_hand"] for loc in first["locations"])
        assert first["available"] == max(
            0, first["on_hand"] - first["reserved"] - first["safety_stock"]
        )
        assert [line["eta"] for line in first["incoming"]] == sorted(
            line["eta"] for line in first["incoming"]
        )
        assert all(date.fromisoformat(line["eta"]) > BASE for line in first["incoming"])
    shapes = {
        (bool(a["available"]), bool(a["incoming"]))
        for a in (client.get(f"/api/stock/{sku}").json() for sku in codes[1:400])
    }
    assert len(shapes) >= 3  # plenty, short with POs, nothing — the seed data varies


def test_unknown_sku_is_a_json_404(client: TestClient) -> None:
    answer = client.get("/api/stock/NOPE-1")
    assert answer.status_code == 404
    assert answer.json()["error"] == "unknown_sku"
    missing = client.get("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"] == "http_error"
    assert client.put("/api/stock/DP-100001").status_code == 405


def test_put_stock_replaces_one_sku(client: TestClient) -> None:
    body = {
        "locations": {"B-02-01": 10, "A-01-01": 30},
        "reserved": 3,
        "safety_stock": 5,
        "incoming": [
            {"po": "PO-2", "quantity": 50, "eta": "2026-12-20"},
            {"po": "PO-1", "quantity": 100, "eta": "2026-12-10"},
        ],
    }
    assert client.put("/_stock/NEW-1", json=body).status_code == 200
    stock = client.get("/api/stock/NEW-1").json()
    assert stock["on_hand"] == 40
    assert stock["available"] == 32
    assert [loc["location"] for loc in stock["locations"]] == ["A-01-01", "B-02-01"]
    assert [line["po"] for line in stock["incoming"]] == ["PO-1", "PO-2"]
    assert (
        client.put("/_stock/SD-100000", json={"locations": {"A-01-01": 1}}).json()["available"] == 1
    )
    for bad in (
        {"locations": {"A": -1}},
        {"locations": [1]},
        {"reserved": "2"},
        {"incoming": [{"quantity": 1, "eta": "soon"}]},
        {"shelf": 1},
    ):
        answer = client.put("/_stock/X", json=bad)
        assert answer.status_code == 400, bad
        assert answer.json()["error"] == "invalid_stock"
    assert client.put("/_stock/X", content=b"{oops").status_code == 400


# ---- reservations ---------------------------------------------------------------------


def test_reservation_is_idempotent_per_key(client: TestClient) -> None:
    first = reserve(client, "k-1")
    assert first.status_code == 201
    again = reserve(client, "k-1")
    assert again.status_code == 200
    assert again.json() == first.json()
    assert first.json()["status"] == "active"
    stock = client.get("/api/stock/DP-100001").json()
    assert (stock["reserved"], stock["available"]) == (10, 20)
    listed = client.get("/api/reservations").json()
    assert listed["count"] == 1
    assert client.get("/api/reservations?order_no=SO-9").json()["count"] == 0
    stats = client.get("/_stats").json()
    assert stats["idempotency_keys"] == {"k-1": 2}
    assert stats["endpoints"]["POST /api/reservations"] == 2


def test_reservation_errors(client: TestClient) -> None:
    missing = reserve(client, None)
    assert missing.status_code == 400
    assert missing.json()["error"] == "missing_idempotency_key"
    short = reserve(client, "k-2", quantity=45)
    assert short.status_code == 409
    assert short.json() | {"message": ""} == {
        "error": "insufficient_stock",
        "message": "",
        "sku": "DP-100001",
        "requested": 45,
        "available": 30,
        "short": 15,
    }
    assert reserve(client, "k-2", quantity=30).status_code == 201  # a refusal is not remembered
    assert reserve(client, "k-2", quantity=29).json()["error"] == "idempotency_key_reused"
    assert reserve(client, "k-3", sku="NOPE").status_code == 404
    for bad in ({"quantity": 0}, {"quantity": "5"}, {"quantity": True}, {"order_no": ""}):
        answer = reserve(client, "k-4", **bad)
        assert answer.status_code == 422, bad
    not_json = client.post("/api/reservations", content=b"[", headers={"Idempotency-Key": "k"})
    assert not_json.status_code == 400


def test_allow_partial_reserves_what_is_available_and_says_how_much(client: TestClient) -> None:
    client.put("/_stock/P-1", json={"locations": {"A-01-01": 10}, "safety_stock": 2})
    first = reserve(client, "p-1", sku="P-1", quantity=5, allow_partial=True)
    assert first.status_code == 201
    assert first.json() | {"id": ""} == {
        "id": "",
        "sku": "P-1",
        "quantity": 5,
        "requested": 5,
        "short": 0,
        "order_no": "SO-1",
        "idempotency_key": "p-1",
        "status": "active",
    }
    some = reserve(client, "p-2", sku="P-1", quantity=5, order_no="SO-2", allow_partial=True)
    assert (some.json()["quantity"], some.json()["short"], some.json()["status"]) == (
        3,
        2,
        "active",
    )
    none = reserve(client, "p-3", sku="P-1", quantity=4, order_no="SO-3", allow_partial=True)
    assert none.status_code == 201
    assert (none.json()["quantity"], none.json()["short"], none.json()["status"]) == (
        0,
        4,
        "unfilled",
    )
    # the same key again is the same answer, even after stock came free
    client.delete(f"/api/reservations/{first.json()['id']}")
    again = reserve(client, "p-3", sku="P-1", quantity=4, order_no="SO-3", allow_partial=True)
    assert again.status_code == 200 and again.json() == none.json()
    stock = client.get("/api/stock/P-1").json()
    assert (stock["reserved"], stock["available"]) == (3, 5)
    assert client.get("/api/reservations?status=active").json()["count"] == 1
    bad = reserve(client, "p-4", sku="P-1", quantity=1, allow_partial="yes")
    assert bad.status_code == 422


def test_concurrent_partial_reservations_never_oversell(client: TestClient) -> None:
    client.put("/_stock/P-2", json={"locations": {"A-01-01": 10}})

    def one(i: int) -> int:
        body = {"sku": "P-2", "quantity": 1, "order_no": f"SO-{i}", "allow_partial": True}
        answer = client.post("/api/reservations", json=body, headers={"Idempotency-Key": f"c{i}"})
        return int(answer.json()["quantity"])

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        granted = list(pool.map(one, range(40)))
    assert sum(granted) == 10 and sorted(set(granted)) == [0, 1]
    assert client.get("/api/stock/P-2").json()["available"] == 0


def test_safety_stock_is_not_reservable(client: TestClient) -> None:
    client.put("/_stock/S-1", json={"locations": {"A-01-01": 30}, "safety_stock": 5})
    assert reserve(client, "a", sku="S-1", quantity=26).json()["short"] == 1
    assert reserve(client, "b", sku="S-1", quantity=25).status_code == 201


def test_cancel_releases_the_stock(client: TestClient) -> None:
    made = reserve(client, "k-1", quantity=30).json()
    assert client.get("/api/stock/DP-100001").json()["available"] == 0
    cancelled = client.delete(f"/api/reservations/{made['id']}")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert client.delete(f"/api/reservations/{made['id']}").status_code == 200
    assert client.get("/api/stock/DP-100001").json()["available"] == 30
    assert client.get("/api/reservations?status=active").json()["count"] == 0
    assert client.delete("/api/reservations/RSV-999999").status_code == 404


# ---- faults and controls ----------------------------------------------------------------


def test_fail_for_the_next_n_requests(client: TestClient) -> None:
    control = client.post("/_control", json={"mode": "fail", "status": 503, "count": 2})
    assert control.json()["fault"]["remaining"] == 2
    codes = [client.get("/api/stock/DP-100001").status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert client.get("/_control").json() == {"fault": None}
    stats = client.get("/_stats").json()
    assert stats["faults"] == {"fail": 2}
    assert stats["paths"] == {"GET /api/stock/DP-100001": 3}
    assert stats["endpoints"] == {"GET /api/stock/{sku}": 3}
    assert stats["total"] == 3


def test_fail_a_share_of_requests_at_random(client: TestClient) -> None:
    control = client.post("/_control", json={"mode": "fail", "rate": 0.25, "seed": 7})
    assert control.json()["fault"]["rate"] == 0.25
    codes = [client.get("/api/stock/DP-100001").status_code for _ in range(400)]
    failed = codes.count(500)
    assert 60 <= failed <= 140 and codes.count(200) == 400 - failed
    assert client.get("/_stats").json()["faults"] == {"fail": failed}
    # the same seed draws the same requests
    client.post("/_control", json={"mode": "fail", "rate": 0.25, "seed": 7})
    assert [client.get("/api/stock/DP-100001").status_code for _ in range(400)] == codes
    counted = client.post("/_control", json={"mode": "fail", "rate": 0.5, "count": 3, "seed": 1})
    assert counted.json()["fault"]["remaining"] == 3
    later = [client.get("/api/stock/DP-100001").status_code for _ in range(100)]
    assert later.count(500) == 3 and client.get("/_control").json() == {"fault": None}


def test_fail_until_reset_and_controls_are_never_faulted(client: TestClient) -> None:
    client.post("/_control", json={"mode": "fail"})
    assert all(client.get("/api/stock/SD-100000").status_code == 500 for _ in range(4))
    assert client.get("/_stats").status_code == 200
    client.post("/_control", json={"mode": "ok"})
    assert client.get("/api/stock/SD-100000").status_code == 200
    client.post("/_control", json={"mode": "fail"})
    reserve(client, "k-1")
    assert client.post("/_reset").json() == {"ok": True}
    assert client.get("/api/stock/SD-100000").status_code == 200
    assert client.get("/api/reservations").json()["count"] == 0
    assert client.get("/_stats").json()["total"] == 2


def test_fault_filters_by_path_and_method(client: TestClient) -> None:
    client.post("/_control", json={"mode": "fail", "path": "/api/reservations", "method": "post"})
    assert client.get("/api/stock/DP-100001").status_code == 200
    assert client.get("/api/reservations").status_code == 200
    assert reserve(client, "k-1").status_code == 500
    assert client.get("/api/reservations").json()["count"] == 0


def test_slow_delays_the_answer(client: TestClient) -> None:
    client.post("/_control", json={"mode": "slow", "delay": 0.3, "count": 1})
    started = time.monotonic()
    assert client.get("/api/stock/DP-100001").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    client.get("/api/stock/DP-100001")
    assert time.monotonic() - started < 0.3


def test_drop_before_does_no_work(client: TestClient) -> None:
    client.post("/_control", json={"mode": "drop", "count": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        reserve(client, "k-1")
    assert client.get("/api/reservations").json()["count"] == 0
    assert reserve(client, "k-1").status_code == 201


def test_drop_after_work_then_retry_gets_the_same_reservation(client: TestClient) -> None:
    client.post("/_control", json={"mode": "drop", "count": 1, "after": True})
    with pytest.raises(wms.ConnectionDropped):
        reserve(client, "k-1")
    client.post("/_control", json={"mode": "fail", "count": 1, "after": True})
    assert reserve(client, "k-1").status_code == 500
    retry = reserve(client, "k-1")
    assert retry.status_code == 200
    assert client.get("/api/reservations").json()["count"] == 1
    assert client.get("/api/stock/DP-100001").json()["reserved"] == 10
    assert client.get("/_stats").json()["idempotency_keys"] == {"k-1": 3}


def test_bad_control_bodies(client: TestClient) -> None:
    for bad in (
        {"mode": "explode"},
        {"mode": "fail", "status": 200},
        {"mode": "slow", "delay": -1},
        {"mode": "slow", "delay": 600},
        {"mode": "fail", "count": 0},
        {"mode": "fail", "after": "yes"},
        {"mode": "fail", "path": "api"},
        {"mode": "fail", "colour": "red"},
        {"mode": "fail", "rate": 0},
        {"mode": "fail", "rate": 1.5},
        {"mode": "fail", "seed": "x"},
    ):
        answer = client.post("/_control", json=bad)
        assert answer.status_code == 400, bad
        assert answer.json()["error"] == "invalid_control"
    assert client.get("/_control").json() == {"fault": None}


# ---- auth -------------------------------------------------------------------------------


def test_bearer_token_from_the_environment(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WMS_TOKEN", "s3cret")
    refused = client.get("/api/stock/DP-100001")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    wrong = {"Authorization": "Bearer nope"}
    assert client.get("/api/stock/DP-100001", headers=wrong).status_code == 401
    good = {"Authorization": "Bearer s3cret"}
    assert client.get("/api/stock/DP-100001", headers=good).status_code == 200
    assert client.get("/_stats").status_code == 200  # controls stay open
    monkeypatch.setenv("WMS_TOKEN", "")
    assert client.get("/api/stock/DP-100001").status_code == 200


def test_token_given_to_create_app() -> None:
    with TestClient(wms.create_app(base_date=BASE, token="t")) as locked:
        assert locked.get("/api/reservations").status_code == 401
        assert reserve(locked, "k").status_code == 401
        auth = {"Authorization": "Bearer t"}
        assert locked.get("/api/reservations", headers=auth).status_code == 200


def test_without_products_csv_only_showcase_skus(tmp_path: Path) -> None:
    with TestClient(wms.create_app(tmp_path / "none.csv", base_date=BASE)) as bare:
        assert bare.get("/api/stock/SD-100000").status_code == 200
        assert bare.get("/api/stock/SD-100006").status_code == 404


# ---- a real server ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_real_uvicorn_server() -> None:
    port = _free_port()
    env = os.environ | {"WMS_TOKEN": "live-token", "WMS_BASE_DATE": BASE.isoformat()}
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(PACK), "mock_wms:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": "Bearer live-token"}
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/_health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "uvicorn exited early"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=5) as http:
            assert http.get("/api/stock/DP-100001").status_code == 401
            stock = http.get("/api/stock/DP-100001", headers=auth).json()
            assert stock["incoming"][0]["eta"] == "2026-12-14"

            http.post("/_control", json={"mode": "drop", "count": 1})
            with pytest.raises(httpx.RemoteProtocolError):
                http.get("/api/stock/DP-100001", headers=auth)

            http.post("/_control", json={"mode": "slow", "delay": 1.0, "count": 1, "after": True})
            body = {"sku": "DP-100001", "quantity": 5, "order_no": "SO-7"}
            headers = auth | {"Idempotency-Key": "live-1"}
            with pytest.raises(httpx.ReadTimeout):
                http.post("/api/reservations", json=body, headers=headers, timeout=0.3)
            retry = http.post("/api/reservations", json=body, headers=headers)
            assert retry.status_code == 200  # the timed-out request did reserve
            assert http.get("/api/reservations", headers=auth).json()["count"] == 1

            stats = http.get("/_stats").json()
            assert stats["idempotency_keys"] == {"live-1": 2}
            assert stats["endpoints"]["GET /api/stock/{sku}"] == 3
            assert stats["faults"] == {"drop": 1, "slow": 1}
    finally:
        server.terminate()
        try:
            _, errors = server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            _, errors = server.communicate()
    assert "Traceback" not in errors, errors
