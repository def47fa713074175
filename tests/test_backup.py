"""docs/operations.md, "Backup and restore", done exactly as written, on SQLite and PostgreSQL:
data with a sealed approval PDF, a backup taken while the app is running, a restore into a new
database, ``seamline audit verify`` on the copy (exit 0), then the copy tampered with — the PDF's
bytes, an event of the chain — and ``audit verify`` says so (exit 1).

The approval PDFs live in the database (``sl_files``, bytes included; engine/store/files.py),
so the database backup carries them; the app folder is configuration kept in version control.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from apihelp import PACK, Api, start_api
from composehelp import seamline_command
from fakes import fake_dingtalk, fake_wecom
from test_approvals import _decide, _order, _task_for

from engine.outbox.worker import Worker

PG_URL = os.environ.get("SEAMLINE_TEST_PG_URL")
COUNTED = ("f_order", "f_customer", "sl_events", "sl_files", "sl_approvals")


@pytest.fixture
def sealed(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The pack with an order approved by the production director and its PDF sealed."""
    with fake_dingtalk(secret="ding-secret") as ding, fake_wecom() as wecom:
        monkeypatch.setenv("DINGTALK_WEBHOOK", ding.url)
        monkeypatch.setenv("WECOM_WEBHOOK", wecom.url)
        monkeypatch.setenv("DINGTALK_SECRET", "ding-secret")
        api = start_api(db_url)
        worker = Worker(api.engine, lambda: api.live.flows, name="backup-test", schedules=False)
        order = _order(api, "VIP", "rush", 120, 100)
        task = _task_for(api, "zhou.pd", order)
        assert _decide(api, "zhou.pd", task["id"], "approve", "同意，优先排产").status_code == 200
        worker.run_until_idle()
        with api.engine.connect() as conn:
            sealed_pdfs = conn.execute(
                sa.text("SELECT count(*) FROM sl_events WHERE kind = 'approval_record'")
            ).scalar_one()
        assert sealed_pdfs == 1
        yield api
        api.live.flows.connectors.close()
        api.engine.dispose()


def audit_verify(db_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *seamline_command(),
            "--app",
            str(PACK),
            "--db",
            db_url,
            "--lang",
            "en",
            "audit",
            "verify",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def counts(db_url: str) -> dict[str, int]:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return {
                t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in COUNTED
            }
    finally:
        engine.dispose()


def tamper_and_verify(db_url: str) -> None:
    """The restored copy verifies; a changed PDF byte and then a changed event do not."""
    clean = audit_verify(db_url)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert re.search(
        r"event chain intact: \d+ events checked; 1 approval records match", clean.stdout
    ), clean.stdout
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            file_id = json.loads(
                conn.execute(
                    sa.text("SELECT payload FROM sl_events WHERE kind = 'approval_record'")
                ).scalar_one()
            )["file_id"]
            data = conn.execute(
                sa.text("SELECT data FROM sl_files WHERE id = :id"), {"id": file_id}
            ).scalar_one()
            original = bytes(data)
            middle = len(original) // 2  # one bit of one byte, as a careless edit would
            spoiled = original[:middle] + bytes([original[middle] ^ 1]) + original[middle + 1 :]
            conn.execute(
                sa.text("UPDATE sl_files SET data = :d WHERE id = :id"),
                {"d": spoiled, "id": file_id},
            )
        altered = audit_verify(db_url)
        assert altered.returncode == 1, altered.stdout + altered.stderr
        assert f"approval record {file_id}" in altered.stderr and "altered" in altered.stderr
        with engine.begin() as conn:  # put the PDF back, change history instead
            conn.execute(
                sa.text("UPDATE sl_files SET data = :d WHERE id = :id"),
                {"d": original, "id": file_id},
            )
            event = conn.execute(
                sa.text(
                    "SELECT id, payload FROM sl_events WHERE kind = 'created' AND form = 'order' "
                    "ORDER BY id LIMIT 1"
                )
            ).one()
            payload = json.loads(event.payload)
            payload["quantity"] = 1
            conn.execute(
                sa.text("UPDATE sl_events SET payload = :p WHERE id = :id"),
                {"p": json.dumps(payload, ensure_ascii=False), "id": event.id},
            )
        broken = audit_verify(db_url)
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert f"event chain BROKEN at event {event.id}" in broken.stderr, broken.stderr
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- SQLite


def sqlite_path(db_url: str) -> Path:
    return Path(sa.engine.make_url(db_url).database or "")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("method", ["vacuum-into", "backup-api"])
def test_sqlite_backup_restore_verify(
    sealed: Api, db_url: str, tmp_path: Path, method: str
) -> None:
    live = sqlite_path(db_url)
    backup = tmp_path / "backup.db"
    # the app keeps running (its engine holds connections) while the backup is taken
    with sealed.engine.connect() as busy:
        busy.execute(sa.text("SELECT count(*) FROM f_order")).scalar_one()
        if method == "vacuum-into":
            if shutil.which("sqlite3"):
                subprocess.run(["sqlite3", str(live), f"VACUUM INTO '{backup}'"], check=True)
            else:  # the same statement without the sqlite3 shell
                with sqlite3.connect(live) as source:
                    source.execute("VACUUM INTO ?", (str(backup),))
        else:
            source, target = sqlite3.connect(live), sqlite3.connect(backup)
            try:
                source.backup(target)
            finally:
                target.close()
                source.close()
    # restore: with the servers stopped, the backup file becomes the database
    restored = tmp_path / "restored" / "seamline.db"
    restored.parent.mkdir()
    shutil.copyfile(backup, restored)
    with sqlite3.connect(restored) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    restored_url = f"sqlite:///{restored}"
    assert counts(restored_url) == counts(db_url)
    tamper_and_verify(restored_url)


# ---------------------------------------------------------------------------- PostgreSQL


def libpq(url: str) -> str:
    """SQLAlchemy's URL as pg_dump and pg_restore take it."""
    return (
        sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    )


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_dump_restore_verify(sealed: Api, db_url: str, tmp_path: Path) -> None:
    for tool in ("pg_dump", "pg_restore"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed here")
    with sealed.engine.connect() as conn:
        server = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one()) // 10000
    client = subprocess.run(["pg_dump", "--version"], capture_output=True, text=True, check=True)
    major = int(re.search(r"(\d+)\.", client.stdout)[1])  # type: ignore[index]
    if major < server:
        pytest.skip(f"pg_dump {major} cannot dump a PostgreSQL {server} server")
    dump = tmp_path / "seamline.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(dump), libpq(db_url)], check=True, timeout=300)
    target = sa.engine.make_url(db_url)
    name = f"{target.database}_restored"
    admin = sa.create_engine(PG_URL or db_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        restored_url = target.set(database=name).render_as_string(hide_password=False)
        subprocess.run(
            ["pg_restore", "--no-owner", "--exit-on-error", "-d", libpq(restored_url), str(dump)],
            check=True,
            timeout=300,
        )
        assert counts(restored_url) == counts(db_url)
        tamper_and_verify(restored_url)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
