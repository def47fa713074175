"""The one permission model: ``allowed(app, actor, action, resource)`` answers every "may this
person do this?" the API, the pages, the operator pages and the exports ask, and
``refusal(...)`` says why not in words a person understands.

The rules, in one place (README "Who may do what" repeats them for IT staff):

* ``read`` / ``create`` / ``update`` a form's records: the roles in the form's
  ``permissions:`` for that action; an action the form does not list is open to every
  signed-in person.
* ``transition``: a transition marked ``by: system`` is fired only by the engine (automations
  and approval outcomes), never by a person. A transition with ``roles:`` is fired by holders of
  those roles (its roles are the permission: they need not be allowed to ``update``). A
  transition without ``roles:`` is fired by whoever may ``update`` the form.
* ``confirm`` (a transition's confirmation gate): the roles in its ``confirm.by``.
* ``child_append`` / ``child_edit``: whoever may ``update`` the record, narrowed by the child
  table's ``editable_by`` when it has one. ``field_edit``: a field's ``editable_by`` (when it
  has one) — callers ask it after ``create`` or ``update``; the state rules (``editable_in``,
  editable states) come after.
* ``file_download``: whoever may ``read`` the form the file is attached to.
* ``dashboard`` / ``insight``: the roles the dashboard or insight report lists (none listed: all).
* ``operate`` (flow runs, the outbox, retrying dead letters): the built-in ``admin`` role.
* ``track_codes`` (the tracking page's one-time codes as sent, on /runs): the roles in
  ``tracking.code.visible_to`` — administrators only when listed there.
* ``use``: any signed-in person (their own inbox, delegations, the home page).

The engine itself (automations, imports: the role ``*``) may do everything. Callers never test
roles themselves; the route-table test proves every HTTP route asks this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Literal, Protocol

from engine.model.errors import FieldError, Forbidden
from engine.model.i18n import Text
from engine.model.spec import App, DashboardSpec, FieldSpec, FormSpec, InsightSpec, TransitionSpec

__all__ = [
    "ADMIN_ROLE",
    "Action",
    "Resource",
    "allowed",
    "checked_actions",
    "is_system",
    "refusal",
    "require",
]

ADMIN_ROLE = "admin"

Action = Literal[
    "read",
    "create",
    "update",
    "transition",
    "confirm",
    "child_append",
    "child_edit",
    "field_edit",
    "file_download",
    "dashboard",
    "insight",
    "operate",
    "track_codes",
    "use",
]


class Actor(Protocol):
    @property
    def username(self) -> str: ...
    @property
    def roles(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class Resource:
    """What an action is done to: a form, with the transition or child table it names; or a
    dashboard or insight report. ``None`` parts are not involved."""

    form: FormSpec | None = None
    transition: TransitionSpec | None = None
    field: FieldSpec | None = None  # the field or child table edited
    dashboard: DashboardSpec | None = None
    insight: InsightSpec | None = None


# Every call is noted here when a request set a list (the route-table test does): cheap, and
# the proof that a route asked before it answered.
_LOG: ContextVar[list[str] | None] = ContextVar("seamline_permission_log", default=None)


@contextmanager
def checked_actions() -> Iterator[list[str]]:
    """Collect the actions ``allowed`` is asked about inside the block (thread pools run in a
    copy of the context but append to the same list)."""
    log: list[str] = []
    token = _LOG.set(log)
    try:
        yield log
    finally:
        _LOG.reset(token)


def is_system(actor: Actor) -> bool:
    return "*" in actor.roles


def _holds(actor: Actor, roles: tuple[str, ...]) -> bool:
    """No roles listed means everyone; else the actor holds one of them."""
    return not roles or bool(actor.roles & set(roles))


def _form_roles(form: FormSpec, action: str) -> tuple[str, ...]:
    return tuple(form.permissions.get(action) or ())


def allowed(
    app: App,
    actor: Actor,
    action: Action,
    resource: Resource | None = None,
    *,
    shown_only: bool = False,
) -> bool:
    """May ``actor`` do ``action`` to ``resource``? The rules are in the module docstring.
    ``shown_only``: the answer only decides what a page shows (a menu link), so it is not
    noted as the check a route made."""
    log = _LOG.get()
    if log is not None and not shown_only:
        res = resource or Resource()
        named = res.form or res.dashboard or res.insight
        log.append(f"{action}:{named.name}" if named is not None else action)
    if is_system(actor):
        return True
    res = resource or Resource()
    form = res.form
    if action == "use":
        return True
    if action == "operate":
        return ADMIN_ROLE in actor.roles
    if action == "track_codes":  # the tracking page's one-time codes, for customer service
        return app.tracking is not None and bool(actor.roles & set(app.tracking.visible_to))
    if action == "dashboard":
        return res.dashboard is not None and _holds(actor, res.dashboard.roles)
    if action == "insight":
        return res.insight is not None and _holds(actor, res.insight.roles)
    if form is None:
        return False
    if action in ("read", "create", "update"):
        return _holds(actor, _form_roles(form, action))
    if action == "file_download":
        return _holds(actor, _form_roles(form, "read"))
    if action == "transition":
        t = res.transition
        if t is None or t.by_system:
            return False
        return _holds(actor, t.roles) if t.roles else _holds(actor, _form_roles(form, "update"))
    if action == "confirm":
        t = res.transition
        return t is not None and t.confirm is not None and _holds(actor, t.confirm.by)
    if action == "field_edit":
        return res.field is None or _holds(actor, res.field.editable_by)
    if action in ("child_append", "child_edit"):
        if not _holds(actor, _form_roles(form, "update")):
            return False
        return res.field is None or _holds(actor, res.field.editable_by)
    return False


def _labels(app: App, roles: tuple[str, ...]) -> tuple[str, str]:
    names = [app.roles[r].label if r in app.roles else r for r in roles]
    return ", ".join(names), "、".join(names)


_VERBS = {
    "read": ("see", "查看"),
    "create": ("create", "新建"),
    "update": ("edit", "修改"),
    "file_download": ("download files of", "下载附件："),
}


def refusal(app: App, action: Action, resource: Resource | None = None) -> Text:
    """Why ``allowed`` said no, naming who may (en/zh)."""
    res = resource or Resource()
    form = res.form
    if action == "track_codes":
        return Text(
            "only the roles the tracking page names may see its one-time codes",
            "只有查询页配置中指定的角色可以查看验证码消息",
        )
    if action == "operate":
        return Text(
            "only administrators (role 'admin') may see flow runs and the outbox",
            "只有系统管理员（admin 角色）可以查看流程运行和发件箱",
        )
    if action == "dashboard" and res.dashboard is not None:
        en, zh = _labels(app, res.dashboard.roles)
        return Text(f"this dashboard is for {en}", f"此看板仅限{zh}查看")
    if action == "insight" and res.insight is not None:
        en, zh = _labels(app, res.insight.roles)
        return Text(f"this report is for {en}", f"此报告仅限{zh}查看")
    if form is None:
        return Text("you may not do this", "您没有执行此操作的权限")
    if action == "transition" and res.transition is not None:
        t = res.transition
        if t.by_system:
            return Text(
                f"'{t.label}' happens by itself (the system fires it); nobody may fire it by hand",
                f"“{t.label}”由系统自动执行，任何人都不能手动执行",
            )
        roles = t.roles or _form_roles(form, "update")
        en, zh = _labels(app, roles)
        return Text(f"only {en} may '{t.label}'", f"只有{zh}可以执行“{t.label}”")
    if action == "confirm" and res.transition is not None and res.transition.confirm:
        t = res.transition
        en, zh = _labels(app, res.transition.confirm.by)
        return Text(f"only {en} may confirm at '{t.label}'", f"只有{zh}可以确认“{t.label}”")
    if action in ("child_append", "child_edit", "field_edit") and res.field is not None:
        spec = res.field
        roles = spec.editable_by if spec.editable_by else _form_roles(form, "update")
        en, zh = _labels(app, roles)
        return Text(
            f"{spec.label} may only be changed by: {en}", f"{spec.label}只能由以下角色修改：{zh}"
        )
    en, zh = _VERBS.get(action, ("edit", "修改"))
    return Text(f"you may not {en} {form.title} records", f"您没有{zh}{form.title}的权限")


def require(
    app: App,
    actor: Actor,
    action: Action,
    resource: Resource | None = None,
    field: str | None = None,
) -> None:
    """Raise a 403 refusal (naming who may, on ``field`` when given) unless ``allowed``."""

    if not allowed(app, actor, action, resource):
        raise Forbidden([FieldError(field, "forbidden", refusal(app, action, resource))])
