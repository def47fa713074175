"""One HTTP attempt through the shared client, with every failure classified.

Error messages name the connector and the host and path called, never the query string:
robot webhook URLs carry their access token there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from engine.model.i18n import Text

from .errors import ConnectorError

TRANSIENT_STATUS = frozenset({408, 425, 429})
SNIPPET = 300

_HINTS: dict[int, Text] = {
    401: Text(
        " Check the token in the connector's token_env variable.",
        " 请检查连接器 token_env 指定的环境变量中的令牌。",
    ),
    403: Text(
        " The system refused access; check the token and its permissions.",
        " 对方拒绝访问，请检查令牌及其权限。",
    ),
    404: Text(
        " Check the base URL variable and the operation's path.",
        " 请检查基础地址环境变量和操作路径。",
    ),
}


def where(url: httpx.URL | str) -> str:
    """``scheme://host:port/path`` of ``url``: no user info, no query (it may hold secrets)."""
    u = httpx.URL(url)
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.host}{port}{u.path}"


def snippet(text: str, limit: int = SNIPPET) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def json_default(value: Any) -> Any:
    """JSON for values the engine holds: decimals as numbers, dates as ISO text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dump_json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, default=json_default).encode("utf-8")


def send(
    client: httpx.Client,
    connector: str,
    method: str,
    url: str,
    *,
    timeout: float,
    headers: Mapping[str, str],
    params: Mapping[str, Any] | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    """Make the request; transport failures become :class:`ConnectorError`."""
    place = where(url)
    try:
        return client.request(
            method,
            url,
            params=params,
            content=body,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
        )
    except httpx.TimeoutException as exc:
        message = Text(
            "Connector '{c}': {place} did not answer within {t} s ({kind}).",
            "连接器“{c}”：{place} 在 {t} 秒内未响应（{kind}）。",
        ).format(c=connector, place=place, t=f"{timeout:g}", kind=type(exc).__name__)
        raise ConnectorError(message, transient=True, connector=connector) from exc
    except httpx.UnsupportedProtocol as exc:
        raise _bad_url(connector, url, exc) from exc
    except httpx.ConnectError as exc:
        message = Text(
            "Connector '{c}': cannot connect to {place} ({detail}).",
            "连接器“{c}”：无法连接 {place}（{detail}）。",
        ).format(c=connector, place=place, detail=snippet(str(exc), 120) or "refused")
        raise ConnectorError(message, transient=True, connector=connector) from exc
    except httpx.TransportError as exc:
        message = Text(
            "Connector '{c}': the connection to {place} broke ({kind}: {detail}).",
            "连接器“{c}”：与 {place} 的连接中断（{kind}：{detail}）。",
        ).format(c=connector, place=place, kind=type(exc).__name__, detail=snippet(str(exc), 120))
        raise ConnectorError(message, transient=True, connector=connector) from exc
    except httpx.InvalidURL as exc:
        raise _bad_url(connector, url, exc) from exc


def _bad_url(connector: str, url: str, exc: Exception) -> ConnectorError:
    try:
        shown = where(url)
    except Exception:
        shown = "?"
    message = Text(
        "Connector '{c}': the URL {url} is not a valid http(s) address ({detail}).",
        "连接器“{c}”：地址 {url} 不是有效的 http(s) 地址（{detail}）。",
    ).format(c=connector, url=shown, detail=snippet(str(exc), 120))
    return ConnectorError(message, transient=False, connector=connector)


def check_status(
    response: httpx.Response, connector: str, *, clock: Callable[[], float] = time.time
) -> None:
    """Raise for any status other than 2xx: 5xx, 408, 425 and 429 are transient."""
    status = response.status_code
    if 200 <= status < 300:
        return
    transient = status >= 500 or status in TRANSIENT_STATUS
    body = snippet(response.text) if response.content else ""
    message = Text(
        "Connector '{c}': {place} answered HTTP {status}{body}.",
        "连接器“{c}”：{place} 返回 HTTP {status}{body}。",
    ).format(
        c=connector,
        place=where(response.request.url),
        status=status,
        body=f": {body}" if body else "",
    )
    if not transient and status in _HINTS:
        message += _HINTS[status]
    raise ConnectorError(
        message,
        transient=transient,
        status=status,
        connector=connector,
        retry_after=retry_after(response, clock) if transient else None,
    )


def retry_after(response: httpx.Response, clock: Callable[[], float] = time.time) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (number or HTTP date), if any."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - clock())


def decode_json(response: httpx.Response, connector: str, *, required: bool) -> Any:
    """The JSON answer; ``None`` for an empty body.

    A body that claims to be JSON but is not, or any non-JSON body when ``required``, is a
    permanent error (typically a wrong base URL answered by a login page or a proxy).
    Otherwise a non-JSON body is returned as text.
    """
    if not response.content:
        return None
    content_type = response.headers.get("content-type", "")
    try:
        return response.json()
    except ValueError:
        if not required and "json" not in content_type.lower():
            return response.text
    message = Text(
        "Connector '{c}': {place} answered HTTP {status} with something that is not JSON "
        "(Content-Type: {ctype}): {body}. Check the base URL: it may point at a web page "
        "or a proxy instead of the API.",
        "连接器“{c}”：{place} 返回 HTTP {status}，但内容不是 JSON"
        "（Content-Type：{ctype}）：{body}。"
        "请检查基础地址：它可能指向了网页或代理而不是接口。",
    ).format(
        c=connector,
        place=where(response.request.url),
        status=response.status_code,
        ctype=content_type or "-",
        body=snippet(response.text, 160),
    )
    raise ConnectorError(message, transient=False, status=response.status_code, connector=connector)
