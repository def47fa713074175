"""The peer comparison of bench/bench_approvals.py --in-process still runs: Seamline, the
hand-written baseline and SpiffWorkflow (the ``bench`` extra, part of ``dev``) each complete
their approval instances in the same database, and the report names where the peer's figure
came from. Only that it runs and what it checks — never how fast (no wall-clock asserts)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import bench_approvals
import spiff_peer

from engine.store.storage import create_db_engine


def test_spiff_peer_runs_the_countersign_persisted(db_url: str) -> None:
    pytest.importorskip("SpiffWorkflow")
    engine = create_db_engine(db_url)
    try:
        run = spiff_peer.spiff_runner(engine)
        for number in (1, 2, 3):
            run(number, {"finance": "huang.fin", "warehouse": "liu.wh"})
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    spiff_peer.INSTANCES.c.order_id, spiff_peer.INSTANCES.c.completed
                ).order_by(spiff_peer.INSTANCES.c.id)
            ).all()
        assert [(r.order_id, r.completed) for r in rows] == [(1, True), (2, True), (3, True)]
    finally:
        engine.dispose()


def test_in_process_bench_compares_against_spiffworkflow_run_beside_it(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("SpiffWorkflow")
    bench_approvals.bench_in_process(db_url, n=2, rounds=1)
    out = capsys.readouterr().out
    assert "SpiffWorkflow" in out and "(measured in this run)" in out
    assert "Seamline" in out and "hand-written Core" in out
