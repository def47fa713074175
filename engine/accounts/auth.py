"""People who can sign in: passwords, the org chart in ``sl_users``, and API tokens.

No web code here: these functions take a SQLAlchemy connection and leave the transaction to
the caller (``with engine.begin() as conn``). Passwords are hashed with Argon2id
(argon2-cffi); API tokens are random (``sl_`` + 43 characters) and only their SHA-256 is
stored. Changes are appended to the event log under the form ``_auth`` — never with a
password, hash or token in the payload.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from engine.accounts.sessions import find_session, revoke_user_sessions
from engine.model.diagnostics import suggestion_hint
from engine.model.i18n import Text
from engine.model.spec import App
from engine.store.events import EventIn, append_events
from engine.store.system_tables import add_system_tables

__all__ = [
    "AUTH_FORM",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "TOKEN_PREFIX",
    "AuthError",
    "SyncReport",
    "TokenInfo",
    "User",
    "authenticate",
    "check_password_rules",
    "check_roles",
    "check_username",
    "create_token",
    "create_user",
    "get_user",
    "hash_password",
    "list_tokens",
    "needs_rehash",
    "revoke_token",
    "revoke_token_id",
    "set_password",
    "sync_org_chart",
    "user_for_session",
    "user_for_token",
    "verify_password",
]

AUTH_FORM = "_auth"
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; this only bounds the work per attempt
TOKEN_PREFIX = "sl_"
MAX_USERNAME_LENGTH = 64

_HASHER = PasswordHasher()
# The system tables are the same for every app, so this module keeps its own definitions.
_SYSTEM = sa.MetaData()
add_system_tables(_SYSTEM)
_USERS = _SYSTEM.tables["sl_users"]
_TOKENS = _SYSTEM.tables["sl_tokens"]
_dummy_hash: str | None = None
_SYNC_LOCK = 0x5EA411E  # pg_advisory_xact_lock key for sync_org_chart


class AuthError(ValueError):
    """A refused user or token operation, with a bilingual message and a stable code."""

    def __init__(self, code: str, message: Text) -> None:
        super().__init__(message.en)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class User:
    username: str
    name: str
    roles: frozenset[str]
    manager: str | None
    active: bool


@dataclass(frozen=True, slots=True)
class SyncReport:
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deactivated: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    username: str
    label: str | None
    created_at: datetime
    revoked: bool


# ---------------------------------------------------------------------------- passwords


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(
            "password-too-short",
            Text(
                f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
                f"密码至少需要 {MIN_PASSWORD_LENGTH} 个字符",
            ),
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AuthError(
            "password-too-long",
            Text(
                f"the password must have at most {MAX_PASSWORD_LENGTH} characters",
                f"密码最多 {MAX_PASSWORD_LENGTH} 个字符",
            ),
        )


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` (raises :class:`AuthError` when it is too short)."""
    check_password_rules(password)
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; False for a mismatch, a missing or a broken hash."""
    if not password_hash or len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker settings than the current ones."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


def _dummy() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _HASHER.hash(secrets.token_urlsafe(16))
    return _dummy_hash


# ---------------------------------------------------------------------------- users


def _user(row: Any) -> User:
    return User(
        username=row.username,
        name=row.name,
        roles=frozenset(row.roles or ()),
        manager=row.manager,
        active=bool(row.active),
    )


def _row(conn: sa.Connection, username: str) -> Any:
    return conn.execute(sa.select(_USERS).where(_USERS.c.username == username)).first()


def get_user(conn: sa.Connection, username: str) -> User | None:
    row = _row(conn, username)
    return _user(row) if row is not None else None


def check_roles(app: App, roles: Iterable[str]) -> tuple[str, ...]:
    """The roles, sorted and without repeats; :class:`AuthError` for a role the app lacks."""
    chosen = tuple(sorted(set(roles)))
    for role in chosen:
        if role not in app.roles:
            hint = suggestion_hint(role, app.roles, Text("roles", "角色"))
            raise AuthError(
                "unknown-role",
                Text(f"unknown role '{role}'", f"未知的角色 '{role}'") + Text(" — ", "——") + hint,
            )
    return chosen


def check_username(username: str) -> None:
    bad = (
        not username
        or len(username) > MAX_USERNAME_LENGTH
        or any(ch.isspace() or not ch.isprintable() for ch in username)
    )
    if bad:
        raise AuthError(
            "bad-username",
            Text(
                f"'{username}' is not a valid user name "
                f"(1 to {MAX_USERNAME_LENGTH} characters, no spaces)",
                f"'{username}' 不是有效的用户名（1 到 {MAX_USERNAME_LENGTH} 个字符，不能有空格）",
            ),
        )


def _unknown_user(username: str) -> AuthError:
    return AuthError(
        "unknown-user", Text(f"there is no user '{username}'", f"没有用户 '{username}'")
    )


def _log(conn: sa.Connection, actor: str, kind: str, payload: dict[str, Any]) -> None:
    append_events(conn, _SYSTEM, [EventIn(actor, AUTH_FORM, None, kind, payload)])


def create_user(
    conn: sa.Connection,
    username: str,
    roles: Iterable[str],
    name: str | None = None,
    password: str | None = None,
    *,
    app: App,
    actor: str = "system",
) -> User:
    """Add a user who is not in the org chart; ``password=None`` makes a token-only user."""
    check_username(username)
    chosen = check_roles(app, roles)
    password_hash = hash_password(password) if password is not None else None
    display = name or username
    if _row(conn, username) is not None:
        raise AuthError(
            "user-exists",
            Text(
                f"user '{username}' already exists; use set-password to change the password",
                f"用户 '{username}' 已存在；修改密码请用 set-password",
            ),
        )
    values = {
        "username": username,
        "name": display,
        "password_hash": password_hash,
        "roles": list(chosen),
        "manager": None,
        "active": True,
        "from_org_chart": False,
    }
    conn.execute(_USERS.insert().values(**values))
    _log(
        conn,
        actor,
        "user_created",
        {
            "username": username,
            "name": display,
            "roles": list(chosen),
            "has_password": password_hash is not None,
            "from_org_chart": False,
        },
    )
    return User(username, display, frozenset(chosen), None, True)


def set_password(
    conn: sa.Connection, username: str, password: str, *, actor: str = "system"
) -> None:
    """Replace the user's password (raises :class:`AuthError` for an unknown user)."""
    password_hash = hash_password(password)
    done = conn.execute(
        _USERS.update().where(_USERS.c.username == username).values(password_hash=password_hash)
    )
    if done.rowcount != 1:
        raise _unknown_user(username)
    ended = revoke_user_sessions(conn, username, "password")
    _log(conn, actor, "password_set", {"username": username, "sessions_ended": ended})


def authenticate(conn: sa.Connection, username: str, password: str) -> User | None:
    """The active user whose password matches, else None.

    Unknown users, users without a password and inactive users cost one Argon2 verification
    too, so the answer time does not tell which user names exist. A hash made with older
    settings is replaced by a fresh one (so call this inside ``engine.begin()``).
    """
    row = _row(conn, username) if username else None
    stored = row.password_hash if row is not None else None
    ok = verify_password(stored or _dummy(), password)
    if row is None or not stored or not ok or not row.active:
        return None
    if needs_rehash(stored):
        conn.execute(
            _USERS.update()
            .where(_USERS.c.username == username)
            .values(password_hash=_HASHER.hash(password))
        )
    return _user(row)


def user_for_session(conn: sa.Connection, session_id: object) -> tuple[User, bool] | None:
    """The active user of a live server-side session (:mod:`engine.accounts.sessions`) and whether
    its last-seen time is due to be written; None when the session is unknown, signed out,
    revoked by a new password or a deactivation, expired, or its user is inactive."""
    found = find_session(conn, session_id)
    if found is None:
        return None
    row, stale = found
    return _user(row), stale


# ---------------------------------------------------------------------------- org chart


def sync_org_chart(conn: sa.Connection, app: App, *, actor: str = "system") -> SyncReport:
    """Bring ``sl_users`` in line with the app's org chart.

    People in the chart are added or updated (name, roles, manager; re-activated when they
    come back); passwords are never touched. Org-chart users who left the chart are
    deactivated, never deleted (their names stay in the event log). Users created by hand
    are left alone unless the chart now lists them, in which case the chart takes over.
    """
    if conn.dialect.name == "postgresql":  # two processes syncing at once queue up
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SYNC_LOCK)))
    existing = {row.username: row for row in conn.execute(sa.select(_USERS))}
    created: list[str] = []
    updated: list[str] = []
    for person in app.people.values():
        values = {
            "name": person.name,
            "roles": sorted(set(person.roles)),
            "manager": person.manager,
            "active": True,
            "from_org_chart": True,
        }
        row = existing.get(person.user)
        if row is None:
            conn.execute(_USERS.insert().values(username=person.user, password_hash=None, **values))
            created.append(person.user)
        elif _differs(row, values):
            conn.execute(_USERS.update().where(_USERS.c.username == person.user).values(**values))
            updated.append(person.user)
    gone = sorted(
        name
        for name, row in existing.items()
        if row.from_org_chart and row.active and name not in app.people
    )
    if gone:
        conn.execute(_USERS.update().where(_USERS.c.username.in_(gone)).values(active=False))
        revoke_user_sessions(conn, gone, "deactivated")
    _log_sync(conn, actor, app, created, updated, gone)
    return SyncReport(tuple(created), tuple(updated), tuple(gone))


def _differs(row: Any, values: dict[str, Any]) -> bool:
    current = {
        "name": row.name,
        "roles": sorted(row.roles or ()),
        "manager": row.manager,
        "active": bool(row.active),
        "from_org_chart": bool(row.from_org_chart),
    }
    return current != values


def _log_sync(
    conn: sa.Connection,
    actor: str,
    app: App,
    created: list[str],
    updated: list[str],
    gone: list[str],
) -> None:
    events = []
    for kind, names in (("user_created", created), ("user_updated", updated)):
        for username in names:
            person = app.people[username]
            events.append(
                EventIn(
                    actor,
                    AUTH_FORM,
                    None,
                    kind,
                    {
                        "username": username,
                        "name": person.name,
                        "roles": sorted(set(person.roles)),
                        "manager": person.manager,
                        "from_org_chart": True,
                    },
                )
            )
    events += [
        EventIn(
            actor,
            AUTH_FORM,
            None,
            "user_deactivated",
            {"username": username, "reason": "left the org chart"},
        )
        for username in gone
    ]
    append_events(conn, _SYSTEM, events)


# ---------------------------------------------------------------------------- API tokens


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(
    conn: sa.Connection, username: str, label: str | None = None, *, actor: str = "system"
) -> str:
    """A new API token for ``username``; shown once, only its SHA-256 is kept."""
    row = _row(conn, username)
    if row is None:
        raise _unknown_user(username)
    if not row.active:
        raise AuthError(
            "inactive-user",
            Text(f"user '{username}' is deactivated", f"用户 '{username}' 已停用"),
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    inserted = conn.execute(
        _TOKENS.insert().values(
            username=username,
            token_hash=_token_hash(token),
            label=label,
            created_at=datetime.now(UTC),
            revoked=False,
        )
    ).inserted_primary_key
    assert inserted is not None
    token_id = int(inserted[0])
    _log(conn, actor, "token_created", {"username": username, "token_id": token_id, "label": label})
    return token


def user_for_token(conn: sa.Connection, token: str) -> User | None:
    """The active user owning this unrevoked token, else None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = conn.execute(_USER_BY_TOKEN, {"token_hash": _token_hash(token)}).first()
    if row is None or not row.active:
        return None
    return _user(row)


# built once: every API request runs it (a statement built per call costs its cache key)
_USER_BY_TOKEN = (
    sa.select(_USERS)
    .join(_TOKENS, _TOKENS.c.username == _USERS.c.username)
    .where(_TOKENS.c.token_hash == sa.bindparam("token_hash"), _TOKENS.c.revoked.is_(False))
)


def revoke_token(conn: sa.Connection, token: str, *, actor: str = "system") -> bool:
    """Revoke by the token itself; False when no such unrevoked token exists."""
    found = conn.execute(
        sa.select(_TOKENS.c.id).where(_TOKENS.c.token_hash == _token_hash(token))
    ).scalar_one_or_none()
    return found is not None and revoke_token_id(conn, found, actor=actor)


def revoke_token_id(conn: sa.Connection, token_id: int, *, actor: str = "system") -> bool:
    """Revoke by the id shown in :func:`list_tokens`; False when none was revoked."""
    row = conn.execute(
        sa.select(_TOKENS.c.username).where(_TOKENS.c.id == token_id, _TOKENS.c.revoked.is_(False))
    ).first()
    if row is None:
        return False
    conn.execute(_TOKENS.update().where(_TOKENS.c.id == token_id).values(revoked=True))
    _log(conn, actor, "token_revoked", {"username": row.username, "token_id": token_id})
    return True


def list_tokens(conn: sa.Connection, username: str | None = None) -> list[TokenInfo]:
    query = sa.select(_TOKENS).order_by(_TOKENS.c.id)
    if username is not None:
        query = query.where(_TOKENS.c.username == username)
    return [
        TokenInfo(row.id, row.username, row.label, row.created_at, bool(row.revoked))
        for row in conn.execute(query)
    ]
