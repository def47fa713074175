"""What automations and approvals share: which record events start them, what expressions and
templates see of a record, and outbox messages rendered from the app's templates.

Both :class:`~engine.flows.runner.FlowRuntime` and
:class:`~engine.flows.approvals.service.ApprovalRuntime` hold one :class:`Effects`; neither
calls the other (``engine.runtime`` wires them to the records service).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
import sqlalchemy as sa

from engine.flows.messages import render_message
from engine.forms.records import RecordEvent, RecordService
from engine.model.spec import App, EventSpec, PersonSpec
from engine.outbox.connectors import Connectors, Recipient

__all__ = ["Effects", "matches", "recipient_json", "recipient_of"]


def matches(on: EventSpec, event: RecordEvent, initial: str | None) -> bool:
    """Does ``event`` start an automation (or approval) listening ``on``?"""
    if on.kind == "created":
        return event.kind == "created"
    if on.kind == "updated":
        return event.kind == "changed"
    if on.kind == "field_changed":
        return event.kind in ("changed", "transition") and bool(set(on.names) & set(event.changes))
    if on.kind == "transition":
        return event.kind == "transition" and event.transition in on.names
    if on.kind == "state_entered":
        if event.kind == "transition":
            return event.to_state in on.names
        return event.kind == "created" and initial in on.names
    return False  # schedules are started by the worker's clock, not by record events


def recipient_of(p: PersonSpec) -> Recipient:
    return Recipient(p.user, p.name, p.email, p.dingtalk_id, p.wecom_id, p.phone)


def recipient_json(r: Recipient) -> dict[str, Any]:
    return {
        "user": r.user,
        "name": r.name,
        "email": r.email,
        "dingtalk_id": r.dingtalk_id,
        "wecom_id": r.wecom_id,
        "phone": r.phone,
    }


@dataclass
class Effects:
    """The records service, the connectors and the message templates of one compiled App."""

    app: App
    records: RecordService
    connectors: Connectors
    templates: jinja2.Environment

    def context(
        self,
        conn: sa.Connection,
        form: str,
        row: Mapping[str, Any],
        results: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """What expressions and templates see of a record (refs loaded; ``steps``: the results
        of the run's earlier steps)."""
        spec = self.records.form(form)
        loaded = self.records.load_refs(conn, spec, row)
        context = self.records.context(spec, row, row.get("state"), row.get("id"), loaded)
        context["steps"] = dict(results or {})
        return context

    def message_payload(
        self,
        via: str,
        template: str,
        todo: bool,
        recipients: Sequence[Recipient],
        context: Mapping[str, Any],
    ) -> dict[str, Any]:
        """The outbox payload of a message rendered from one of the app's templates."""
        message = render_message(self.templates, template, context, todo=todo, to=recipients)
        return {
            "connector": via,
            "title": message.title,
            "text": message.text,
            "todo": message.todo,
            "to": [recipient_json(r) for r in recipients],
        }

    def attempts(self, via: str | None) -> int:
        """How many times an outbox message through ``via`` is tried."""
        connector = self.app.connectors.get(via or "")
        return (connector.retries if connector else 5) + 1
