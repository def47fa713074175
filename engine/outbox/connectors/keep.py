"""``keep:`` — values picked out of a JSON answer by dotted paths."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.model.i18n import Text

from .errors import ConnectorError

_MISSING = object()


def keep_values(
    data: Any, keep: Mapping[str, str], *, connector: str | None = None
) -> dict[str, Any]:
    """``{name: value at path}`` for each ``keep`` entry.

    Paths are dotted keys into the answer (``data.available``); a number indexes a list
    (``items.0.qty``). A leading ``data`` names the answer itself unless the answer has its
    own ``data`` key, so ``data.available`` works for ``{"available": 3}`` and for
    ``{"data": {"available": 3}}``. A JSON ``null`` is kept as None; a missing key is a
    permanent :class:`ConnectorError` saying which part is missing and what is there.
    """
    return {
        name: value_at(data, path, name=name, connector=connector) for name, path in keep.items()
    }


def value_at(data: Any, path: str, *, name: str = "", connector: str | None = None) -> Any:
    parts = [p for p in path.strip().split(".") if p != ""]
    alias = parts[:1] == ["data"] and not (isinstance(data, Mapping) and "data" in data)
    if alias:
        parts = parts[1:]
    current = data
    walked: list[str] = ["data"] if alias else []
    for part in parts:
        found = _step(current, part)
        if found is _MISSING:
            raise _missing(connector, name, path, ".".join(walked) or "(answer)", part, current)
        current = found
        walked.append(part)
    return current


def _step(current: Any, part: str) -> Any:
    if isinstance(current, Mapping):
        return current.get(part, _MISSING)
    if isinstance(current, list) and part.lstrip("-").isdigit():
        index = int(part)
        return current[index] if -len(current) <= index < len(current) else _MISSING
    return _MISSING


def _describe(value: Any) -> Text:
    if isinstance(value, Mapping):
        keys = ", ".join(sorted(str(k) for k in value)[:20]) or "-"
        return Text("the keys there are: {k}", "该处的键有：{k}").format(k=keys)
    if isinstance(value, list):
        return Text(
            "there is a list of {n} items (use a number)", "该处是含 {n} 项的列表（请用数字下标）"
        ).format(n=len(value))
    kind = "null" if value is None else type(value).__name__
    return Text("there is a {kind}, not an object", "该处是 {kind}，不是对象").format(kind=kind)


def _missing(
    connector: str | None, name: str, path: str, at: str, part: str, current: Any
) -> ConnectorError:
    message = (
        Text(
            "{who}keep '{name}': the answer has no '{part}' at {at} (path {path}); ",
            "{who_zh}keep “{name}”：应答中 {at} 处没有“{part}”（路径 {path}）；",
        ).format(
            who=f"Connector '{connector}': " if connector else "",
            who_zh=f"连接器“{connector}”：" if connector else "",
            name=name,
            part=part,
            at=at,
            path=path,
        )
        + _describe(current)
        + Text(".", "。")
    )
    return ConnectorError(message, transient=False, connector=connector)
