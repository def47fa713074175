"""Cells of the files people open in a spreadsheet: every CSV and XLSX the engine writes
(the list pages' exports, ``seamline export``, the insight templates, a KPI's records) goes
through here, so each gets the same two protections.

* :func:`neutralise` — formula injection (OWASP "CSV Injection"): a text cell that starts with
  ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is one Excel or LibreOffice would run
  as a formula (``=cmd|' /C calc'!A0``); it gets a leading single quote, so it reads as text.
  Numbers stay numbers (``-5`` is a number, not a formula); only text is touched.
  :func:`restore` undoes it for ``seamline import`` (a round trip gives back what was stored).
* :func:`csv_chunks` / :func:`csv_text` — CSV with a UTF-8 byte-order mark first (without it
  Excel reads UTF-8 Chinese as mojibake) and Excel's ``\\r\\n`` line ends, in chunks, so a
  long export streams instead of being built in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["BOM", "FORMULA_START", "csv_chunks", "csv_text", "neutralise", "restore"]

BOM = "\ufeff"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 500


def _formula_like(text: str) -> bool:
    # quotes are looked through, so that restore(neutralise(t)) == t for every text t
    return text.lstrip("'").startswith(FORMULA_START)


def neutralise(value: Any) -> Any:
    """``value`` safe for a spreadsheet cell: text that would start a formula gets a leading
    ``'``; anything else (numbers, dates, None, other text) comes back unchanged."""
    if isinstance(value, str) and _formula_like(value):
        return "'" + value
    return value


def restore(text: str) -> str:
    """The text :func:`neutralise` was given (for reading an exported CSV back)."""
    return text[1:] if text.startswith("'") and _formula_like(text) else text


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")  # no exponent: 1E+3 would read as text, not 1000
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S" if value.second else "%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return neutralise(str(value))


def csv_chunks(rows: Iterable[Sequence[Any]], chunk_rows: int = CHUNK_ROWS) -> Iterator[str]:
    """CSV text for ``rows`` (the header is the first row), the BOM first, ``chunk_rows`` rows
    a chunk. Each cell is neutralised; numbers are written as numbers, dates in ISO form."""
    buffer = io.StringIO()
    buffer.write(BOM)
    writer = csv.writer(buffer)
    for count, row in enumerate(rows, 1):
        writer.writerow([_cell(v) for v in row])
        if count % chunk_rows == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """:func:`csv_chunks` as one text (for small files)."""
    return "".join(csv_chunks(rows))
