"""The engine's clock for timers, due times and SLAs (UTC). Tests turn it to any moment.

Record timestamps come from the records service; jobs, waits, approval due times and
escalations read ``now()`` here, so a test can walk the whole system across a weekend
or a holiday without waiting.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

_override: Callable[[], datetime] | None = None


def now() -> datetime:
    return _override() if _override is not None else datetime.now(UTC)


def set_clock(source: Callable[[], datetime] | None) -> None:
    """Make ``now()`` answer from ``source`` (None: the real clock again)."""
    global _override
    _override = source
