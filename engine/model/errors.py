"""What a refused action raises, in the terms of the domain — never an HTTP status.

Every refusal carries field errors (``FieldError``: which field, a code, the message in en/zh).
The class says what kind of refusal it is; the web floor maps each class to its status once
(:func:`engine.web.jsonio.status_of`), the CLI prints the messages.

* :class:`Invalid` — the values were refused (a field, a rule, a guard);
* :class:`BadRequest` — the request itself is malformed (an unknown filter, a bad cursor);
* :class:`Forbidden` — this person may not do this;
* :class:`Conflict` — the record moved on meanwhile (state changed, already decided, stale);
* :class:`Locked` — the record is locked while an approval or gate runs;
* :class:`TooLarge` — an upload or body over its limit;
* :class:`Unsupported` — an upload or body of a type that is not accepted;
* :class:`Missing` — the thing the action names does not exist (a task, a job);
* :class:`NotFound` — no such record (or not one this person may know of).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.model.i18n import Lang, Text

__all__ = [
    "BadRequest",
    "Conflict",
    "FieldError",
    "Forbidden",
    "Invalid",
    "Locked",
    "Missing",
    "NotFound",
    "TooLarge",
    "Unsupported",
    "ValidationFailed",
    "refused",
]


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str | None
    code: str
    message: Text

    def to_json(self, lang: Lang) -> dict[str, Any]:
        return {"field": self.field, "code": self.code, "message": self.message(lang)}


class ValidationFailed(Exception):
    """An action was refused; ``errors`` says why, field by field. Raise a subclass."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message.en}" for e in errors))
        self.errors = errors


class Invalid(ValidationFailed):
    """The values were refused."""


class BadRequest(ValidationFailed):
    """The request is malformed (not a value a person typed)."""


class Forbidden(ValidationFailed):
    """This person may not do this."""


class Conflict(ValidationFailed):
    """The record moved on meanwhile."""


class Locked(Conflict):
    """The record is locked while an approval or a gate runs."""


class TooLarge(ValidationFailed):
    """An upload or body over its limit."""


class Unsupported(ValidationFailed):
    """An upload or body of a type that is not accepted."""


class Missing(ValidationFailed):
    """The thing the action names does not exist."""


def refused(
    kind: type[ValidationFailed], code: str, en: str, zh: str, field: str | None = None
) -> ValidationFailed:
    """One field error of ``kind`` (the common case)."""
    return kind([FieldError(field, code, Text(en, zh))])


class NotFound(Exception):
    def __init__(self, form: str, record_id: int | None = None) -> None:
        super().__init__(f"{form} {record_id}")
        self.form, self.record_id = form, record_id
