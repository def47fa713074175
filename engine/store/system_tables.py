"""The engine's own tables: event log, chain head, counters, deployments, people, tokens,
sessions, files, approvals, tracking codes, to-dos."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def add_system_tables(metadata: sa.MetaData) -> None:
    """Define the system tables on ``metadata`` (every app has them)."""
    sa.Table(
        "sl_events",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("form", sa.String(64), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Index("ix_sl_events_record", "form", "record_id", "id"),
        sa.Index("ix_sl_events_kind_at", "kind", "at"),
    )
    sa.Table(
        "sl_kpi_snapshots",  # closed trend buckets, refreshed by the worker (dashboards)
        metadata,
        sa.Column("dashboard", sa.String(64), primary_key=True),
        sa.Column("kpi", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.String(16), primary_key=True),
        sa.Column("start", sa.Date, primary_key=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("definition", sa.String(64), nullable=False),
        sa.Column("computed_at", TS, nullable=False),
    )
    sa.Table(
        "sl_chain_head",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_id", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    sa.Table(
        "sl_counters",
        metadata,
        sa.Column("series", sa.String(200), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    sa.Table(
        "sl_deployments",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("app", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False, index=True),
        sa.Column("bundle", JSON, nullable=False),
        sa.Column("deployed_at", TS, nullable=False),
        sa.Column("deployed_by", sa.String(64), nullable=False),
        sa.Column("steps", JSON, nullable=False),
    )
    sa.Table(
        "sl_users",
        metadata,
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=True),
        sa.Column("roles", JSON, nullable=False),
        sa.Column("manager", sa.String(64), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False, default=True),
        sa.Column("from_org_chart", sa.Boolean, nullable=False, default=False),
    )
    sa.Table(
        "sl_tokens",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), sa.ForeignKey("sl_users.username"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False, default=False),
    )
    sa.Table(
        "sl_sessions",  # signed-in browsers (engine.accounts.sessions); the cookie holds the id
        metadata,
        sa.Column("id_hash", sa.String(64), primary_key=True),  # SHA-256 of the session id
        sa.Column("username", sa.String(64), sa.ForeignKey("sl_users.username"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),  # written at most every few minutes
        sa.Column("expires_at", TS, nullable=False),  # the absolute limit
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("revoked_reason", sa.String(32), nullable=True),  # logout password …
        sa.Column("user_agent", sa.String(200), nullable=True),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Index("ix_sl_sessions_user", "username", "revoked_at"),
        sa.Index("ix_sl_sessions_expires", "expires_at"),
    )
    sa.Table(
        "sl_flow_runs",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("automation", sa.String(64), nullable=False),
        sa.Column("form", sa.String(64), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),  # running waiting done failed
        sa.Column("position", JSON, nullable=False),  # path of the next step, e.g. [1, "then", 0]
        sa.Column("results", JSON, nullable=False),  # steps.<id>.<name>
        sa.Column("trigger", JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Index("ix_sl_flow_runs_record", "form", "record_id"),
    )
    sa.Table(
        "sl_jobs",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),  # flow | effect
        sa.Column("key", sa.String(200), nullable=False, unique=True),  # idempotency key
        sa.Column("run_id", sa.BigInteger, nullable=True),
        sa.Column("form", sa.String(64), nullable=True),
        sa.Column("record_id", sa.BigInteger, nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),  # ready running done dead
        sa.Column("due_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("locked_by", sa.String(100), nullable=True),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("done_at", TS, nullable=True),
        sa.Index("ix_sl_jobs_due", "status", "due_at"),
    )
    sa.Table(
        "sl_files",
        metadata,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("uploaded_by", sa.String(64), nullable=False),
        sa.Column("uploaded_at", TS, nullable=False),
    )

    add_approval_tables(metadata)
    add_tracking_tables(metadata)
    add_todo_tables(metadata)


def add_approval_tables(metadata: sa.MetaData) -> None:
    """Approvals in flight and decided, their tasks, who may act on them, delegations."""
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    sa.Table(
        "sl_approvals",
        metadata,
        sa.Column("id", big, primary_key=True),
        sa.Column("approval", sa.String(64), nullable=False),
        sa.Column("form", sa.String(64), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("route", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),  # active approved rejected …
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("plan", JSON, nullable=False),  # route, steps and people, fixed at start
        sa.Column("submitter", sa.String(64), nullable=True),
        sa.Column("config_hash", sa.String(64), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("outcome_hash", sa.String(64), nullable=True),  # event of the last decision
        sa.Column("record_file", sa.String(64), nullable=True),  # the sealed PDF record
        sa.Index("ix_sl_approvals_record", "form", "record_id", "status"),
    )
    sa.Table(
        "sl_approval_tasks",
        metadata,
        sa.Column("id", big, primary_key=True),
        sa.Column("approval_id", sa.BigInteger, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("slot", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),  # open approved rejected …
        sa.Column("created_at", TS, nullable=False),
        sa.Column("due_at", TS, nullable=True),
        sa.Column("remind_at", TS, nullable=True),
        sa.Column("escalations", sa.Integer, nullable=False, default=0),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("on_behalf_of", sa.String(64), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Index("ix_sl_approval_tasks_approval", "approval_id", "step"),
        sa.Index("ix_sl_approval_tasks_status", "status", "due_at"),
    )
    sa.Table(
        "sl_task_assignees",
        metadata,
        sa.Column("task_id", sa.BigInteger, primary_key=True),
        sa.Column("user", sa.String(64), primary_key=True),
        sa.Index("ix_sl_task_assignees_user", "user"),
    )
    sa.Table(
        "sl_delegations",
        metadata,
        sa.Column("id", big, primary_key=True),
        sa.Column("user", sa.String(64), nullable=False),  # who is away
        sa.Column("delegate", sa.String(64), nullable=False),  # who acts for them
        sa.Column("starts_at", TS, nullable=False),
        sa.Column("ends_at", TS, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Index("ix_sl_delegations_delegate", "delegate", "starts_at"),
    )


def add_tracking_tables(metadata: sa.MetaData) -> None:
    """The tracking page's one-time codes (hashes only), visits and attempts (rate limits)."""
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    sa.Table(
        "sl_track_codes",
        metadata,
        sa.Column("id", big, primary_key=True),
        sa.Column("phone_key", sa.String(64), nullable=False),  # HMAC of the phone number
        sa.Column("code_hash", sa.String(64), nullable=False),  # HMAC of phone key and code
        sa.Column("contacts", JSON, nullable=False),  # ids found for the phone (may be empty)
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False, default=0),
        sa.Column("used_at", TS, nullable=True),  # verified, replaced or burnt by a lockout
        sa.Index("ix_sl_track_codes_phone", "phone_key", "id"),
    )
    sa.Table(
        "sl_track_visits",  # a verified visit; the cookie holds only its id (and is checked)
        metadata,
        sa.Column("id_hash", sa.String(64), primary_key=True),  # SHA-256 of the visit id
        sa.Column("contacts", JSON, nullable=False),
        sa.Column("phone_key", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),  # left with POST /track/logout
        sa.Index("ix_sl_track_visits_expires", "expires_at"),
    )
    sa.Table(
        "sl_track_hits",  # one row per counted attempt, e.g. "fail-phone:<key>"
        metadata,
        sa.Column("id", big, primary_key=True),
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Index("ix_sl_track_hits_key", "key", "at"),
        sa.Index("ix_sl_track_hits_at", "at"),
    )


def add_todo_tables(metadata: sa.MetaData) -> None:
    """In-app to-dos a ``notify`` step with ``todo: true`` leaves (engine.flows.todos): one
    per person named, or one per role (whoever holds it may mark it done)."""
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    sa.Table(
        "sl_todos",
        metadata,
        sa.Column("id", big, primary_key=True),
        sa.Column("key", sa.String(200), nullable=False, unique=True),  # run, step, recipient
        sa.Column("form", sa.String(64), nullable=False),
        sa.Column("record_id", sa.BigInteger, nullable=False),
        sa.Column("user", sa.String(64), nullable=True),  # a person …
        sa.Column("role", sa.String(64), nullable=True),  # … or everyone holding a role
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),  # the automation that left it
        sa.Column("created_at", TS, nullable=False),
        sa.Column("done_at", TS, nullable=True),
        sa.Column("done_by", sa.String(64), nullable=True),
        sa.Index("ix_sl_todos_user", "user", "done_at"),
        sa.Index("ix_sl_todos_role", "role", "done_at"),
        sa.Index("ix_sl_todos_record", "form", "record_id"),
    )


def system_metadata() -> sa.MetaData:
    """A MetaData holding only the system tables (the same in every configuration)."""
    metadata = sa.MetaData()
    add_system_tables(metadata)
    return metadata
