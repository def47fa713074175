"""File uploads and downloads under /api/files (README, "HTTP").

``POST /api/files?form=F&field=X`` takes one multipart file for the ``files`` field X of form F
(``X`` may be ``table.column`` for a column of a child table), checks it against that field
(engine/store/files.py) and answers 201 ``{id, name, size, content_type}``; the record then
holds the id in X. ``GET /api/files/{id}`` sends the bytes back as an attachment. Both need a
signed-in user (session or Bearer token); the upload needs the CSRF header with a session.
The body is counted while it arrives, so an oversized upload is cut off early.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message

from engine.model.errors import ValidationFailed
from engine.model.permissions import Resource, allowed, refusal
from engine.model.spec import FieldSpec
from engine.store.files import file_infos, file_owners, load_file, max_bytes, store_file
from engine.web.current import live, request_lang
from engine.web.jsonio import error, error_response, json_response, status_of
from engine.web.security import check_csrf, current_user

__all__ = ["download", "file_routes", "upload"]

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the one file


class _TooLarge(Exception):
    pass


def _field(request: Request) -> FieldSpec | None:
    form = live(request).app.forms.get(request.query_params.get("form", ""))
    name = request.query_params.get("field", "")
    if form is None or not name:
        return None
    table, _, column = name.partition(".")
    spec = form.by_name.get(table)
    if spec is not None and column and spec.type == "table":
        spec = next((c for c in spec.children if c.name == column), None)
    elif column:
        spec = None
    return spec if spec is not None and spec.type == "files" else None


def _counting(request: Request, limit: int) -> Callable[[], Awaitable[Message]]:
    seen = 0

    async def receive() -> Message:
        nonlocal seen
        message = await request.receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
        return message

    return receive


async def _read_upload(request: Request, limit: int) -> tuple[str | None, bytes] | None:
    """(client file name, bytes) of the one file part, or None when there is none."""
    counted = Request(request.scope, _counting(request, limit))
    form = await counted.form(max_files=1, max_fields=10)
    try:
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        if len(files) != 1:
            return None
        return files[0].filename, await files[0].read()
    finally:
        await form.close()


async def upload(request: Request) -> Response:
    lang = request_lang(request, accept_language=True)
    user = await current_user(request)
    if user is None:
        return error(401, "unauthenticated", "sign in first", "请先登录", lang)
    if not check_csrf(request, request.headers.get("x-csrf-token")):
        return error(403, "csrf", "missing or wrong CSRF token", "缺少或错误的 CSRF 令牌", lang)
    spec = _field(request)
    if spec is None:
        return error(
            404,
            "not_found",
            "form and field must name a files field (?form=F&field=X)",
            "form 和 field 须指向一个文件字段（?form=F&field=X）",
            lang,
        )
    app = live(request).app
    form = Resource(app.forms[request.query_params["form"]])
    if not (allowed(app, user, "create", form) or allowed(app, user, "update", form)):
        refused = refusal(app, "update", form)
        return error(403, "forbidden", refused.en, refused.zh, lang)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        return error(
            415,
            "content_type",
            "send the file as multipart/form-data",
            "请以 multipart/form-data 上传文件",
            lang,
        )
    limit = max_bytes(spec)
    length = request.headers.get("content-length", "")
    too_large = error(
        413,
        "too_large",
        f"{spec.label}: files may be at most {limit // (1024 * 1024)} MB",
        f"{spec.label}：文件不能超过 {limit // (1024 * 1024)} MB",
        lang,
        spec.name,
    )
    if length.isdecimal() and int(length) > limit + MULTIPART_OVERHEAD:
        return too_large
    try:
        part = await _read_upload(request, limit + MULTIPART_OVERHEAD)
    except _TooLarge:
        return too_large
    except (HTTPException, MultiPartException, ValueError, KeyError):
        part = None
    if part is None:
        return error(
            400, "no_file", "send exactly one file", "请上传且只上传一个文件", lang, spec.name
        )

    def save() -> dict[str, Any]:
        with request.app.state.db.begin() as conn:
            return store_file(conn, spec, part[0], part[1], user.username).to_json()

    try:
        stored = await run_in_threadpool(save)
    except ValidationFailed as failed:
        return error_response(failed.errors, lang, status_of(failed))
    return json_response(stored, 201)


def content_disposition(name: str) -> str:
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


async def download(request: Request) -> Response:
    lang = request_lang(request, accept_language=True)
    user = await current_user(request)
    if user is None:
        return error(401, "unauthenticated", "sign in first", "请先登录", lang)
    current = live(request)
    file_id = request.path_params["file_id"]

    def fetch() -> Any:
        with current.records.reads.connect() as conn:
            info = file_infos(conn, [file_id]).get(file_id)
            if info is None:
                return None
            # Its uploader (a file not yet saved on a record), or whoever may read a record
            # that holds it; anyone else is told it does not exist. The bytes are read after.
            mine = allowed(current.app, user, "use") and info.uploaded_by == user.username
            if not mine:
                owners = file_owners(conn, current.records.metadata, current.app, file_id)
                forms = [current.app.forms[f] for f in sorted(owners) if f in current.app.forms]
                if not any(allowed(current.app, user, "file_download", Resource(f)) for f in forms):
                    return None
            return load_file(conn, file_id)

    found = await run_in_threadpool(fetch)
    if found is None:
        return error(404, "not_found", "no such file", "没有这个文件", lang)
    info, data = found
    return Response(
        data,
        media_type=info.content_type,
        headers={
            "Content-Disposition": content_disposition(info.name),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=3600",
            "ETag": f'"{info.sha256}"',
        },
    )


def file_routes() -> list[Route]:
    return [
        Route("/api/files", upload, methods=["POST"]),
        Route("/api/files/{file_id}", download, methods=["GET"]),
    ]
