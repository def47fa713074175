"""Uploaded files in ``sl_files``: checks on the way in, metadata and bytes on the way out.

No web code here: the functions take a SQLAlchemy connection and leave the transaction to
the caller. An upload is checked against the ``files`` field it is meant for: not empty, not
over ``max_size_mb``, an extension in ``accept``, and content that really is what the
extension says (magic bytes; the client's content type is never trusted). The stored content
type comes from the extension alone.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from engine.model.errors import BadRequest, FieldError, TooLarge, Unsupported, ValidationFailed
from engine.model.i18n import Text
from engine.model.spec import App, FieldSpec
from engine.store.system_tables import add_system_tables
from engine.store.tables import child_table_name, table_name

__all__ = [
    "DEFAULT_MAX_MB",
    "HARD_MAX_MB",
    "StoredFile",
    "file_infos",
    "load_file",
    "max_bytes",
    "missing_files",
    "sanitize_name",
    "sniff_ok",
    "store_file",
]

DEFAULT_MAX_MB = 20.0  # a files field without max_size_mb
HARD_MAX_MB = 500.0  # the schema's ceiling for max_size_mb
MAX_NAME = 255
_ID = re.compile(r"^[0-9a-f]{32}$")
_SYSTEM = sa.MetaData()
add_system_tables(_SYSTEM)
FILES = _SYSTEM.tables["sl_files"]

CONTENT_TYPES: dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".pdf": "application/pdf",
    ".dwg": "image/vnd.dwg",
    ".dxf": "image/vnd.dxf",
    ".zip": "application/zip",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: str
    name: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "size": self.size,
            "content_type": self.content_type,
        }


# ---------------------------------------------------------------------------- checks


def _is_dwg(head: bytes) -> bool:
    return head[:4] == b"AC10" and head[4:6].isdigit()


def _is_dxf(head: bytes) -> bool:
    if head.startswith(b"AutoCAD Binary DXF\r\n\x1a\x00"):
        return True
    text = head[:4096].decode("latin-1").lstrip("\ufeff \t\r\n")
    lines = [line.strip() for line in text.splitlines()[:40]]
    while len(lines) >= 2 and lines[0] == "999":  # comment groups may come first
        lines = lines[2:]
    return len(lines) >= 2 and lines[0] == "0" and lines[1] == "SECTION"


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            data.decode(encoding)
            return True
        except UnicodeDecodeError:
            continue
    return False


_SNIFFERS: dict[str, Callable[[bytes], bool]] = {
    ".png": lambda d: d.startswith(b"\x89PNG\r\n\x1a\n"),
    ".jpg": lambda d: d.startswith(b"\xff\xd8\xff"),
    ".jpeg": lambda d: d.startswith(b"\xff\xd8\xff"),
    ".gif": lambda d: d[:6] in (b"GIF87a", b"GIF89a"),
    ".webp": lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP",
    ".pdf": lambda d: d[:1024].lstrip(b"\xef\xbb\xbf \t\r\n\x00").startswith(b"%PDF-"),
    ".dwg": _is_dwg,
    ".dxf": _is_dxf,
    ".zip": lambda d: d.startswith(b"PK\x03\x04"),
    ".xlsx": lambda d: d.startswith(b"PK\x03\x04"),
    ".docx": lambda d: d.startswith(b"PK\x03\x04"),
    ".pptx": lambda d: d.startswith(b"PK\x03\x04"),
    ".txt": _is_text,
    ".csv": _is_text,
}


def sniff_ok(extension: str, data: bytes) -> bool:
    """Whether the bytes look like the extension says (True for extensions we cannot sniff)."""
    sniffer = _SNIFFERS.get(extension)
    return sniffer is None or sniffer(data)


def sanitize_name(raw: str | None) -> str:
    """The last path part, NFC, without control/format characters, at most 255 characters
    (the extension is kept when shortening). May be "" when nothing usable is left."""
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs"))
    name = name.strip().lstrip(".").strip()
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: MAX_NAME - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:MAX_NAME]
    return name


def extension_of(name: str) -> str:
    _, dot, ext = name.rpartition(".")
    return "." + ext.lower() if dot and ext else ""


def max_bytes(spec: FieldSpec) -> int:
    """The largest upload this field takes, in bytes."""
    megabytes = min(spec.max_size_mb or DEFAULT_MAX_MB, HARD_MAX_MB)
    return int(megabytes * 1024 * 1024)


def _refuse(
    kind: type[ValidationFailed], spec: FieldSpec, code: str, text: Text
) -> ValidationFailed:
    return kind([FieldError(spec.name, code, text)])


def _size_mb(spec: FieldSpec) -> str:
    return f"{min(spec.max_size_mb or DEFAULT_MAX_MB, HARD_MAX_MB):g}"


def check_upload(spec: FieldSpec, raw_name: str | None, data: bytes) -> tuple[str, str]:
    """(clean name, content type) for an acceptable upload; ValidationFailed otherwise."""
    label = spec.label
    if spec.type != "files":
        raise _refuse(
            BadRequest,
            spec,
            "not_files",
            Text(f"{label} does not take files", f"{label}不是文件字段"),
        )
    name = sanitize_name(raw_name)
    ext = extension_of(name)
    if not name or not ext:
        raise _refuse(
            BadRequest,
            spec,
            "file_name",
            Text(f"{label}: the file needs a name with an extension", f"{label}：文件名须带扩展名"),
        )
    if not data:
        raise _refuse(
            BadRequest, spec, "empty", Text(f"{label}: the file is empty", f"{label}：文件为空")
        )
    if len(data) > max_bytes(spec):
        limit = _size_mb(spec)
        raise _refuse(
            TooLarge,
            spec,
            "too_large",
            Text(f"{label}: files may be at most {limit} MB", f"{label}：文件不能超过 {limit} MB"),
        )
    if spec.accept and ext not in spec.accept:
        allowed = ", ".join(spec.accept)
        raise _refuse(
            Unsupported,
            spec,
            "file_type",
            Text(
                f"{label}: {ext} files are not accepted (allowed: {allowed})",
                f"{label}：不接受 {ext} 文件（允许：{allowed}）",
            ),
        )
    if not sniff_ok(ext, data):
        raise _refuse(
            Unsupported,
            spec,
            "file_content",
            Text(
                f"{label}: the content of '{name}' is not a {ext} file",
                f"{label}：文件“{name}”的内容与扩展名 {ext} 不符",
            ),
        )
    return name, CONTENT_TYPES.get(ext, "application/octet-stream")


# ---------------------------------------------------------------------------- storage


def store_file(
    conn: sa.Connection,
    spec: FieldSpec,
    name: str | None,
    data: bytes,
    uploaded_by: str,
    now: datetime | None = None,
) -> StoredFile:
    """Check the upload against ``spec`` and store it; its metadata (ValidationFailed when
    refused: 400 empty/nameless, 413 too large, 415 wrong type or content)."""
    clean, content_type = check_upload(spec, name, data)
    return store_bytes(conn, clean, content_type, data, uploaded_by, now)


def store_bytes(
    conn: sa.Connection,
    name: str,
    content_type: str,
    data: bytes,
    uploaded_by: str,
    now: datetime | None = None,
) -> StoredFile:
    """Store bytes the engine made itself (an approval's PDF record) or an upload already
    checked; returns the metadata with the content's SHA-256."""
    stored = StoredFile(
        id=uuid.uuid4().hex,
        name=name,
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        uploaded_by=uploaded_by,
        uploaded_at=now or datetime.now(UTC),
    )
    conn.execute(
        FILES.insert().values(
            id=stored.id,
            sha256=stored.sha256,
            name=stored.name,
            content_type=stored.content_type,
            size=stored.size,
            data=data,
            uploaded_by=stored.uploaded_by,
            uploaded_at=stored.uploaded_at,
        )
    )
    return stored


def _info(row: Any) -> StoredFile:
    at = row.uploaded_at
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return StoredFile(row.id, row.name, row.content_type, row.size, row.sha256, row.uploaded_by, at)


def load_file(conn: sa.Connection, file_id: str) -> tuple[StoredFile, bytes] | None:
    """The file's metadata and bytes, or None for an unknown (or malformed) id."""
    if not isinstance(file_id, str) or not _ID.match(file_id):
        return None
    row = conn.execute(sa.select(FILES).where(FILES.c.id == file_id)).first()
    if row is None:
        return None
    return _info(row), bytes(row.data)


def file_infos(conn: sa.Connection, ids: Iterable[str]) -> dict[str, StoredFile]:
    """Metadata (no bytes) of the known files among ``ids``."""
    wanted = sorted({i for i in ids if isinstance(i, str) and _ID.match(i)})
    if not wanted:
        return {}
    columns = [c for c in FILES.c if c.name != "data"]
    rows = conn.execute(sa.select(*columns).where(FILES.c.id.in_(wanted)))
    return {row.id: _info(row) for row in rows}


def missing_files(conn: sa.Connection, ids: Iterable[str]) -> list[str]:
    """The ids among ``ids`` that name no stored file (in the order given)."""
    ids = list(ids)
    known = set(file_infos(conn, ids))
    return [i for i in ids if i not in known]


def file_owners(conn: sa.Connection, metadata: sa.MetaData, app: App, file_id: str) -> set[str]:
    """The forms whose records (or child rows, or sealed approval records) hold ``file_id``:
    whoever may read one of them may download it. A LIKE over the files columns: downloads
    are rare and the id is a random token, so nothing else matches it."""
    if not isinstance(file_id, str) or not _ID.match(file_id):
        return set()
    owners: set[str] = set()
    pattern = f'%"{file_id}"%'
    for form in app.forms.values():
        places: list[tuple[str, list[str]]] = [
            (table_name(form.name), [f.name for f in form.fields if f.type == "files"])
        ]
        places += [
            (child_table_name(form.name, t.name), [c.name for c in t.children if c.type == "files"])
            for t in form.fields
            if t.type == "table"
        ]
        for table_key, columns in places:
            table = metadata.tables.get(table_key)
            if table is None or not columns:
                continue
            test = sa.or_(*(sa.cast(table.c[c], sa.Text).like(pattern) for c in columns))
            if conn.execute(sa.select(sa.literal(1)).where(test).limit(1)).first():
                owners.add(form.name)
                break
    approvals = metadata.tables.get("sl_approvals")
    if approvals is not None:
        owners.update(
            conn.execute(
                sa.select(approvals.c.form).where(approvals.c.record_file == file_id).distinct()
            ).scalars()
        )
    return owners
