"""What an expression may take from the world besides the form's values: clock and calendar."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from engine.model.calendar import WorkCalendar
__all__ = ["EvalEnv", "system_now"]


def system_now() -> datetime:
    """The current instant, timezone-aware (UTC); ``today()``/``now()`` convert it."""
    return datetime.now(UTC)


@dataclass
class EvalEnv:
    """Evaluation environment shared by many evaluations.

    ``now`` should return an aware datetime; a naive one is taken as wall-clock time in
    ``timezone``. ``today()`` and ``now()`` give the date/time in ``timezone``.
    """

    calendar: WorkCalendar | None = None
    now: Callable[[], datetime] = system_now
    timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)  # ZoneInfo caches instances per key

    def local_now(self) -> datetime:
        """``now()`` as an aware datetime in ``timezone``."""
        current = self.now()
        tz = self.tz
        if current.tzinfo is None:
            return current.replace(tzinfo=tz)
        return current.astimezone(tz)
