"""Helpers every spec module shares."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any


def frozen_map(items: dict[str, Any] | None = None) -> MappingProxyType[str, Any]:
    return MappingProxyType(dict(items or {}))
