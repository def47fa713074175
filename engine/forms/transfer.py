"""Bulk import and export of records (CSV), through the records service so every check and
every history event applies to imported data too."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, time
from itertools import chain
from typing import Any

import sqlalchemy as sa

from engine.forms.records import Actor, RecordService
from engine.model.errors import BadRequest, FieldError, ValidationFailed
from engine.model.i18n import Text
from engine.model.sheets import csv_chunks, restore
from engine.model.spec import FormSpec

__all__ = ["ImportReport", "export_csv", "import_csv"]


@dataclass
class ImportReport:
    created: int = 0
    failed: list[tuple[int, list[FieldError]]] = field(default_factory=list)


def _headers(form: FormSpec, header: list[str]) -> dict[str, str]:
    """CSV column → field name; a column may be named by the field's name or its label."""
    by_label = {f.label: f.name for f in form.fields}
    out = {}
    for column in header:
        name = column.strip()
        if name in form.by_name:
            out[column] = name
        elif name in by_label:
            out[column] = by_label[name]
        else:
            raise BadRequest(
                [
                    FieldError(
                        column,
                        "unknown_field",
                        Text(
                            f"column '{column}' is not a field of {form.title}",
                            f"列 '{column}' 不是{form.title}的字段",
                        ),
                    )
                ],
            )
    return out


class _RefResolver:
    """Turns a ref column's text (an id, or the target record's title) into an id."""

    def __init__(self, service: RecordService) -> None:
        self.service = service
        self.cache: dict[str, dict[str, int]] = {}

    def resolve(self, target: str, text: str) -> Any:
        if text.strip().isdecimal():
            return int(text)
        if target not in self.cache:
            form = self.service.form(target)
            table = self.service.table(target)
            column = table.c[form.title_field] if form.title_field else table.c.id
            with self.service.reads.connect() as conn:
                rows = conn.execute(sa.select(column, table.c.id))
                self.cache[target] = {str(title): rid for title, rid in rows}
        return self.cache[target].get(text.strip(), text)


def _value(
    service: RecordService, resolver: _RefResolver, form: FormSpec, name: str, text: str
) -> Any:
    spec = form.by_name[name]
    text = restore(text)  # a cell an export neutralised ('=…) comes back as it was stored
    if text == "":
        return None
    if spec.type == "multiselect":
        return [v.strip() for v in text.replace(";", "|").split("|") if v.strip()]
    if spec.type == "ref" and spec.ref_form:
        return resolver.resolve(spec.ref_form, text)
    return text


def import_csv(
    service: RecordService,
    form_name: str,
    text: str,
    actor: Actor,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    form = service.form(form_name)
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        return ImportReport()
    columns = _headers(form, header)
    resolver = _RefResolver(service)
    report = ImportReport()
    for line_no, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        data = {
            columns[h]: _value(service, resolver, form, columns[h], c)
            for h, c in zip(header, cells, strict=False)
        }
        data = {k: v for k, v in data.items() if v is not None}
        try:
            service.create(form.name, data, actor)
            report.created += 1
        except ValidationFailed as failed:
            report.failed.append((line_no, failed.errors))
        if progress is not None:
            progress(1)
    return report


def count_rows(text: str) -> int:
    return max(0, sum(1 for line in text.splitlines() if line.strip()) - 1)


def export_csv(service: RecordService, form_name: str) -> Iterator[str]:
    """CSV text in chunks (the shared writer: a BOM, neutralised cells): a header of field
    names, then every record (ids for refs), read a page at a time."""
    form = service.form(form_name)
    names = ["id", "state", *(f.name for f in form.fields if f.type != "table")]
    return csv_chunks(chain([names], _records(service, form.name, names)))


def _records(service: RecordService, form_name: str, names: list[str]) -> Iterator[list[Any]]:
    cursor = None
    while True:
        page = service.list_page(form_name, sort="id", limit=500, cursor=cursor)
        for row in page.items:
            yield [_cell(row.get(n)) for n in names]
        cursor = page.next_cursor
        if cursor is None:
            return


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    if isinstance(value, datetime | time):
        return value.isoformat()  # as stored, to import again
    return value  # numbers as numbers, dates in ISO form: csv_chunks writes them
