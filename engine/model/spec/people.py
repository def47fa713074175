"""The org chart: roles and people."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RoleSpec:
    name: str
    label: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class PersonSpec:
    user: str
    name: str
    roles: tuple[str, ...]
    manager: str | None = None
    department: str | None = None
    phone: str | None = None
    email: str | None = None
    dingtalk_id: str | None = None
    wecom_id: str | None = None
