"""Which names an expression may use, and what each name is (a value, a record or rows)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["NameInfo", "Scope"]

Kind = Literal["value", "record", "rows"]


@dataclass(frozen=True, slots=True)
class NameInfo:
    """One name (or sub-field) visible to an expression.

    ``kind``: ``value`` is a leaf; ``record`` has sub-fields (a ref to another form, a step
    result); ``rows`` is a child table (a list of records). ``open`` records accept any
    sub-path (their fields are not known when the expression is compiled).
    """

    kind: Kind
    type: str | None = None
    options: tuple[str, ...] | None = None
    fields: Mapping[str, NameInfo] | None = None
    open: bool = False

    @staticmethod
    def value(type: str | None = None, options: Iterable[str] | None = None) -> NameInfo:
        return NameInfo("value", type, tuple(options) if options is not None else None)

    @staticmethod
    def record(
        fields: Mapping[str, NameInfo] | None = None, *, open: bool = False, type: str = "ref"
    ) -> NameInfo:
        return NameInfo("record", type, None, dict(fields or {}), open)

    @staticmethod
    def rows(fields: Mapping[str, NameInfo], *, type: str = "table") -> NameInfo:
        return NameInfo("rows", type, None, dict(fields))

    @property
    def has_fields(self) -> bool:
        return self.kind != "value"

    def child(self, name: str) -> NameInfo | None:
        """The sub-field ``name`` (an open record invents an open one), else None."""
        if self.kind == "value":
            return None
        if self.fields is not None and name in self.fields:
            return self.fields[name]
        if self.open:
            return _OPEN
        return None

    def field_names(self) -> list[str]:
        return sorted(self.fields) if self.fields else []


_OPEN = NameInfo("record", "any", None, None, True)


@dataclass(frozen=True)
class Scope:
    """The top-level names of the form (and context) an expression runs on."""

    names: Mapping[str, NameInfo] = field(default_factory=dict)

    def lookup(self, name: str) -> NameInfo | None:
        return self.names.get(name)

    def resolve(self, path: Iterable[str]) -> NameInfo | None:
        """The :class:`NameInfo` at a dotted path such as ``("customer", "tier")``, or None."""
        parts = iter(path)
        info = self.lookup(next(parts, ""))
        for part in parts:
            if info is None:
                return None
            info = info.child(part)
        return info

    def with_names(self, extra: Mapping[str, NameInfo]) -> Scope:
        """A new scope with ``extra`` added (replacing same-named entries)."""
        return Scope({**self.names, **extra})

    def __contains__(self, name: object) -> bool:
        return name in self.names
