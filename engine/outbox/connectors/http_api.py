"""``type: http`` connectors: named operations of a JSON API."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from engine.model.i18n import Text
from engine.model.logs import logger
from engine.model.spec import ConnectorSpec, OperationSpec

from . import env, transport
from .errors import ConnectorError
from .model import CallResult

log = logger(__name__)

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
QUERY_METHODS = frozenset({"GET", "DELETE", "HEAD"})


def plain(value: Any) -> str:
    """A value as it goes into a URL: no exponents, ISO dates, lowercase booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def base_url(spec: ConnectorSpec, environ: Mapping[str, str]) -> tuple[str, bool]:
    """The base URL and whether it is the YAML default (a local mock server)."""
    value = env.lookup(environ, spec.base_url_env)
    if value is not None:
        return value, False
    if spec.base_url_default:
        return spec.base_url_default, True
    value = env.require(environ, spec.name, spec.base_url_env, "base_url_env", env.PURPOSE_BASE_URL)
    return value, False


def build_url(
    spec: ConnectorSpec, op: OperationSpec, base: str, values: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The full URL with placeholders filled, and the values not used by the path."""
    rest = dict(values)
    missing: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = rest.pop(name, None)
        if value is None or value == "":
            missing.append(name)
            return match.group(0)
        return quote(plain(value), safe="")

    path = PLACEHOLDER.sub(fill, op.path)
    if missing:
        message = Text(
            "Connector '{c}', operation '{op}': no value for {names} in the path {path}; "
            "give it in the step's `with:` (an empty value cannot be sent).",
            "连接器“{c}”的操作“{op}”：路径 {path} 中的 {names} 没有值；请在步骤的 `with:` 中提供"
            "（不能为空）。",
        ).format(c=spec.name, op=op.name, names=", ".join(missing), path=op.path)
        raise ConnectorError(message, transient=False, connector=spec.name)
    return base.rstrip("/") + path, rest


def query_params(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            out[name] = [plain(v) for v in value]
        else:
            out[name] = plain(value)
    return out


def call(
    client: httpx.Client,
    spec: ConnectorSpec,
    operation: str,
    values: Mapping[str, Any],
    *,
    environ: Mapping[str, str],
    idempotency_key: str,
    clock: Callable[[], float] = time.time,
) -> CallResult:
    """One attempt at ``operation``; raises :class:`ConnectorError` on any failure."""
    op = spec.operations.get(operation)
    if op is None:
        known = ", ".join(sorted(spec.operations)) or "-"
        message = Text(
            "Connector '{c}' has no operation '{op}' (it has: {known}).",
            "连接器“{c}”没有操作“{op}”（现有：{known}）。",
        ).format(c=spec.name, op=operation, known=known)
        raise ConnectorError(message, transient=False, connector=spec.name)
    base, is_default = base_url(spec, environ)
    url, rest = build_url(spec, op, base, values)
    headers = {"Accept": "application/json", "Idempotency-Key": idempotency_key}
    token = env.lookup(environ, spec.token_env)
    if token is None and spec.token_env and not is_default:
        env.require(environ, spec.name, spec.token_env, "token_env", env.PURPOSE_TOKEN)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    method = op.method.upper()
    params: dict[str, Any] | None = None
    body: bytes | None = None
    if method in QUERY_METHODS:
        params = query_params(rest)
    else:
        body = transport.dump_json(rest)
        headers["Content-Type"] = "application/json; charset=utf-8"
    started = time.perf_counter()
    try:
        response = transport.send(
            client,
            spec.name,
            method,
            url,
            timeout=spec.timeout,
            headers=headers,
            params=params,
            body=body,
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        transport.check_status(response, spec.name, clock=clock)
        data = transport.decode_json(response, spec.name, required=method == "GET")
    except ConnectorError as exc:
        log.info(
            "connector %s.%s failed (%s, key %s): %s",
            spec.name,
            operation,
            "transient" if exc.transient else "permanent",
            idempotency_key,
            exc.message.en,
        )
        raise
    log.info(
        "connector %s.%s: HTTP %s in %.0f ms (key %s)",
        spec.name,
        operation,
        response.status_code,
        elapsed_ms,
        idempotency_key,
    )
    return CallResult(status=response.status_code, data=data, elapsed_ms=elapsed_ms)
