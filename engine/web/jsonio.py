"""JSON in and out of the API: one encoder, one error shape (``{"errors": [...]}``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from engine.model.errors import (
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    Invalid,
    Missing,
    TooLarge,
    Unsupported,
    ValidationFailed,
)
from engine.model.i18n import Lang, Text

MAX_BODY = 2_000_000


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(type(value).__name__)


def json_response(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, default=_default, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


# The one place a domain refusal becomes an HTTP status (the classes: engine.model.errors).
STATUS_OF: dict[type[ValidationFailed], int] = {
    Invalid: 422,
    BadRequest: 400,
    Forbidden: 403,
    Missing: 404,
    Conflict: 409,  # Locked is a Conflict
    TooLarge: 413,
    Unsupported: 415,
}


def status_of(failed: ValidationFailed) -> int:
    """The HTTP status of a refusal: its class's, or the nearest base class's."""
    for kind in type(failed).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return 422


def error_response(errors: Sequence[FieldError], lang: Lang, status: int) -> Response:
    return json_response({"errors": [e.to_json(lang) for e in errors]}, status)


def error(
    status: int, code: str, en: str, zh: str, lang: Lang, field: str | None = None
) -> Response:
    return error_response([FieldError(field, code, Text(en, zh))], lang, status)


def _too_large() -> TooLarge:
    return TooLarge([FieldError(None, "too_large", Text("the body is too large", "请求体过大"))])


async def read_body(request: Request) -> bytes:
    """The request body, refused (413) as soon as it is over MAX_BODY — by its Content-Length,
    else while it arrives — so no more than MAX_BODY is ever held for it."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(request: Request, body: bytes) -> Any:
    """A read body as JSON, or ValidationFailed (400/415) saying what is wrong."""
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type:
        raise Unsupported(
            [
                FieldError(
                    None,
                    "content_type",
                    Text("send the body as application/json", "请以 application/json 发送请求体"),
                )
            ],
        )
    try:
        return json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(
            [FieldError(None, "json", Text("the body is not valid JSON", "请求体不是合法的 JSON"))],
        ) from None
