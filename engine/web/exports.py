"""Exports of a list page: ``GET /forms/{form}/export.csv`` and ``/forms/{form}/export.xlsx``.

They hold exactly the records the list page shows for the same address (its search and
filters, :func:`engine.web.pages_records.list_selection`; the same read permission, the same
fields the list and the API show), newest first, with the headers the pages use (field
labels), refs as their records' titles, select options, states and people as their labels,
dates and times in the app's time zone, money and numbers as numbers.

Both read the records a page of :data:`PAGE` at a time: the CSV streams as it is read, the
XLSX is written by XlsxWriter in ``constant_memory`` mode (a row at a time) to a temporary
file that is sent and then deleted, so 42,000 orders never sit in memory at once. Every text
cell goes through :func:`engine.model.sheets.neutralise` (formula injection); the CSV is the
shared writer of :mod:`engine.model.sheets` (with the BOM Excel needs for Chinese).

A bad filter is a 400 page naming the field; a person who may not read the form gets the 403
page, as on the list.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import partial
from itertools import chain
from typing import Any

import xlsxwriter
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from engine.accounts.auth import User
from engine.forms.records import Page
from engine.model import clock
from engine.model.errors import ValidationFailed
from engine.model.permissions import Resource
from engine.model.sheets import csv_chunks, neutralise
from engine.model.spec import FieldSpec, FormSpec
from engine.runtime import LiveApp
from engine.web.api import require
from engine.web.current import live, request_lang
from engine.web.files import content_disposition
from engine.web.jsonio import status_of
from engine.web.page_kit import error_page, page, path_form
from engine.web.pages_records import list_selection
from engine.web.templating import Formatter, translate

__all__ = ["export_routes", "write_xlsx"]

PAGE = 500  # records read at a time (the records service's largest page)
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
XLSX_MAX_ROWS = 1_048_576  # Excel's limit, the header included
_SKIPPED = ("table", "files")  # child rows and attachments: not cells of one row
_SHEET_NAME = re.compile(r"[\[\]:*?/\\]")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    label: str
    kind: str  # how the cell is typed: a field's value type, or the system column's name
    scale: int | None = None


def export_columns(current: LiveApp, form: FormSpec, fmt: Formatter) -> list[Column]:
    """The record's number, every field a row holds (in the form's order), the state, and
    when and by whom it was created and last changed."""
    columns = [Column("id", translate(fmt.lang, "id"), "integer")]
    for spec in form.fields:
        if spec.type not in _SKIPPED:
            columns.append(Column(spec.name, spec.label, spec.value_type, _scale(spec)))
    if form.name in current.app.state_machines:
        columns.append(Column("state", translate(fmt.lang, "state"), "state"))
    columns += [
        Column("created_at", translate(fmt.lang, "created_at"), "datetime"),
        Column("created_by", translate(fmt.lang, "created_by"), "person"),
        Column("updated_at", translate(fmt.lang, "updated_at"), "datetime"),
    ]
    return columns


def _scale(spec: FieldSpec) -> int | None:
    if spec.value_type != "money":
        return None
    return spec.scale if spec.scale is not None else 2


def cell_value(fmt: Formatter, form: FormSpec, column: Column, row: dict[str, Any]) -> Any:
    """One cell, typed: numbers as Decimal/int, dates as date, times as local datetimes, the
    rest as the text the pages show (titles for refs, labels for options and states)."""
    value = row.get(column.name)
    if column.kind == "state":
        return fmt.state_label(form, value)
    if column.kind == "person":
        return fmt.person(value)
    if value is None or value == "" or value == []:
        return None
    kind = column.kind
    if kind == "ref":
        return (row.get("_titles") or {}).get(column.name) or f"#{value}"
    if kind in ("integer", "decimal", "money"):
        return _number(value, column.scale)
    if kind == "datetime":
        return _local(fmt, value)
    if kind == "date":
        return value if isinstance(value, date) else _date(value)
    if kind in ("boolean", "select", "multiselect"):
        return fmt.value(form.by_name.get(column.name), value)
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    return str(value)


def _number(value: Any, scale: int | None) -> Any:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if scale is not None:
        return number.quantize(Decimal(1).scaleb(-scale))
    return int(number) if number == number.to_integral_value() and abs(number) < 2**53 else number


def _local(fmt: Formatter, value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if not isinstance(value, datetime):
        return str(value)
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)  # stored in UTC
    return moment.astimezone(fmt.tz).replace(tzinfo=None, microsecond=0)


def _date(value: Any) -> Any:
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        return str(value)


# ---------------------------------------------------------------------------- reading


def _rows(
    current: LiveApp,
    form: FormSpec,
    fmt: Formatter,
    columns: list[Column],
    selection: tuple[dict[str, str], str],
    user: User,
    first: Page,
) -> Iterator[list[Any]]:
    """The selected records as typed cells, read a page at a time (each read asks the form's
    read permission again, as the list does)."""
    filters, q = selection
    found = first
    while True:
        for row in found.items:
            yield [cell_value(fmt, form, c, row) for c in columns]
        if found.next_cursor is None:
            return
        found = current.records.list_page(
            form.name,
            filters=filters,
            q=q or None,
            limit=PAGE,
            cursor=found.next_cursor,
            actor=user,
        )


# ---------------------------------------------------------------------------- xlsx


def write_xlsx(
    path: str, sheet: str, columns: Sequence[Column], rows: Iterator[Sequence[Any]]
) -> int:
    """Write an .xlsx of ``rows`` under a header of the columns' labels, a row at a time
    (``constant_memory``); returns the rows written. Text is written as text, never as a
    formula or a link, and neutralised; numbers and dates as typed cells."""
    book = xlsxwriter.Workbook(
        path,
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )
    try:
        sheet_ = book.add_worksheet(_SHEET_NAME.sub("_", sheet)[:31] or "Sheet1")
        header = book.add_format({"bold": True})
        dates = book.add_format({"num_format": "yyyy-mm-dd"})
        times = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
        numbers = [_number_format(book, c) for c in columns]
        for i, column in enumerate(columns):
            sheet_.set_column(i, i, max(10, min(40, 2 * len(column.label) + 2)))
            sheet_.write_string(0, i, neutralise(column.label), header)
        sheet_.freeze_panes(1, 0)
        written = 0
        for r, values in enumerate(rows, 1):
            if r >= XLSX_MAX_ROWS:
                break
            for i, value in enumerate(values):
                if value is None:
                    continue
                if isinstance(value, bool):
                    sheet_.write_boolean(r, i, value)
                elif isinstance(value, int | float | Decimal):
                    sheet_.write_number(r, i, float(value), numbers[i])
                elif isinstance(value, datetime):
                    sheet_.write_datetime(r, i, value, times)
                elif isinstance(value, date):
                    sheet_.write_datetime(r, i, datetime.combine(value, time()), dates)
                else:
                    sheet_.write_string(r, i, neutralise(str(value)))
            written = r
        return written
    finally:
        book.close()


def _number_format(book: Any, column: Column) -> Any:
    if column.kind == "money":
        zeros = "." + "0" * column.scale if column.scale else ""
        return book.add_format({"num_format": f"#,##0{zeros}"})
    if column.kind == "integer":
        return book.add_format({"num_format": "0"})
    return None


# ---------------------------------------------------------------------------- routes


def _refused(request: Request, failed: ValidationFailed, form: FormSpec) -> Response:
    """A bad filter: the error page, each refused field by its label with why."""
    lang = request_lang(request)
    lines = []
    for error in failed.errors:
        spec = form.by_name.get((error.field or "").partition("__")[0])
        name = spec.label if spec is not None else (error.field or "")
        lines.append(f"{name}: {error.message(lang)}" if name else error.message(lang))
    return error_page(request, status_of(failed), "bad_request", "; ".join(lines))


def _file_name(current: LiveApp, form: FormSpec, suffix: str) -> str:
    at = clock.now().astimezone(Formatter(current.app, "en").tz)
    return f"{form.title}-{at:%Y%m%d-%H%M}.{suffix}"


async def export_list(request: Request, user: User, kind: str) -> Response:
    """The list's records as ``kind`` ("csv" or "xlsx")."""
    form, current = path_form(request), live(request)
    require(request, user, "read", Resource(form))
    fmt = Formatter(current.app, request_lang(request))
    columns = export_columns(current, form, fmt)
    selection = list_selection(request, form)
    filters, q = selection
    try:  # the first page before anything is sent: a bad filter is refused as a whole
        first = await run_in_threadpool(
            lambda: current.records.list_page(
                form.name, filters=filters, q=q or None, limit=PAGE, actor=user
            )
        )
    except ValidationFailed as failed:
        if status_of(failed) == 403:
            raise
        return _refused(request, failed, form)
    rows = _rows(current, form, fmt, columns, selection, user, first)
    name = content_disposition(_file_name(current, form, kind))
    if kind == "csv":
        chunks = csv_chunks(chain([[c.label for c in columns]], rows))
        return StreamingResponse(
            chunks,  # a sync iterator: Starlette reads it in its thread pool
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": name, "cache-control": "no-store"},
        )
    handle, path = tempfile.mkstemp(prefix="seamline-export-", suffix=".xlsx")
    os.close(handle)
    try:
        await run_in_threadpool(write_xlsx, path, form.title, columns, rows)
    except BaseException:
        os.unlink(path)
        raise
    return FileResponse(
        path,
        media_type=XLSX_TYPE,
        headers={"content-disposition": name, "cache-control": "no-store"},
        background=BackgroundTask(os.unlink, path),
    )


def export_routes() -> list[BaseRoute]:
    return [
        Route("/forms/{form}/export.csv", page(partial(export_list, kind="csv"))),
        Route("/forms/{form}/export.xlsx", page(partial(export_list, kind="xlsx"))),
    ]
