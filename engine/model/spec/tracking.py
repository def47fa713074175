"""The public tracking page: what it shows and its rate limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class RateSpec:
    """At most ``count`` attempts in ``minutes``."""

    count: int
    minutes: float


@dataclass(frozen=True, slots=True)
class TrackingSpec:
    """The public tracking page (``/track``): who may see which records, and how they prove it.

    ``contact_form`` holds the people outside (found by ``phone_field``; a one-time code goes
    to ``channel_field`` through ``via``); ``record_form`` is what they track, linked by its
    ref ``contact_ref``. Only ``number_field``, the ``show`` fields and the state history are
    ever shown.

    ``stages`` (optional) names what people outside see instead of the flow's states: each
    stage with the states it covers, in order; every state is in one stage or in
    ``hide_states`` (validate checks it); ``stage_colors`` gives a stage its badge colour.
    ``company`` heads the page instead of the app's title.
    """

    contact_form: str
    phone_field: str
    record_form: str
    contact_ref: str
    number_field: str
    show: tuple[str, ...]
    verify: Literal["code", "order_suffix"] = "code"
    channel_field: str | None = None
    name_field: str | None = None
    via: str | None = None
    template: str | None = None
    visible_to: tuple[str, ...] = ()
    code_length: int = 6
    code_minutes: float = 5.0
    suffix_length: int = 4
    session_minutes: float = 15.0
    max_attempts: int = 5
    max_attempts_ip: int = 20
    lockout_minutes: float = 15.0
    per_phone: RateSpec = RateSpec(3, 10.0)
    per_ip: RateSpec = RateSpec(20, 10.0)
    hide_states: tuple[str, ...] = ()
    limit: int = 20
    title: str | None = None
    stages: tuple[tuple[str, tuple[str, ...]], ...] = ()
    company: str | None = None
    stage_colors: tuple[tuple[str, str], ...] = ()  # (stage, badge colour); grey when absent

    def stage_of(self, state: str | None) -> str | None:
        """The stage people see for ``state`` (None when no stages are declared or the state
        is in none of them)."""
        for stage, states in self.stages:
            if state in states:
                return stage
        return None

    def color_of(self, stage: str | None) -> str:
        """The badge colour of ``stage`` (``grey`` unless declared)."""
        return dict(self.stage_colors).get(stage or "", "grey")
