"""What the tracking floor needs of the running app (``engine.runtime.LiveApp`` is one)."""

from __future__ import annotations

from typing import Protocol

from engine.flows.effects import Effects
from engine.forms.records import RecordService
from engine.model.spec import App

__all__ = ["Live"]


class Live(Protocol):
    @property
    def app(self) -> App: ...

    @property
    def records(self) -> RecordService: ...

    @property
    def effects(self) -> Effects: ...
