"""Rebuilds that never go dark: `recovery rebuild` builds the read model beside the live one and
switches readers over in one transaction; `recovery rebuild --check` is the auditor's proof that
the read model is what the log says. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.cli import main
from app.demo import generate
from app.platform import Platform

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(store, policy):
    with Platform(store, policy) as p:
        p.ingest_lines(generate(seed=31, complaints=600), batch_size=200)
    return store


def report(capsys) -> dict:
    capsys.readouterr()
    assert main(["report", "--by", "region", "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_rebuild_switches_in_the_same_figures(store, capsys):
    before = report(capsys)
    assert main(["rebuild"]) == 0
    assert "switched in one transaction" in capsys.readouterr().out
    assert report(capsys) == before
    assert main(["rebuild", "--check"]) == 0
    assert "MATCHES" in capsys.readouterr().out


def test_rebuild_check_fails_on_an_altered_read_model_row_and_names_it(store, capsys):
    assert main(["rebuild", "--check"]) == 0
    with Platform(store) as p, p.app.datastore.transaction(commit=True) as c:
        p.app.dialect.execute(c, "UPDATE kpi_daily SET received = received + 1 WHERE dim = 'all'"
                                 " AND day = (SELECT MIN(day) FROM kpi_daily)")
    capsys.readouterr()
    assert main(["rebuild", "--check"]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS kpi_daily: 1 row(s) only in the live read model, 1 only in the one rebuilt" in out
    assert "1 TABLE(S) DIFFER" in out
    assert main(["rebuild"]) == 0  # the remedy
    assert main(["rebuild", "--check"]) == 0


def test_reports_keep_answering_with_the_old_figures_during_a_rebuild(store, capsys, monkeypatch):
    """The rebuild is slowed down; meanwhile every report gives the figures of before."""
    from projections import beside

    before = report(capsys)
    build, started = beside.build, threading.Event()

    def slow_build(*args, **kwargs):
        started.set()
        time.sleep(1.5)
        return build(*args, **kwargs)

    monkeypatch.setattr(beside, "build", slow_build)
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(main(["rebuild"])))
    worker.start()
    assert started.wait(10)
    seen = 0
    while worker.is_alive():
        with Platform(store, read_only=True) as p:
            from projections.report import build_report
            during = build_report(p.app.dialect, p.app.datastore, p.policy, None, None, "region")
        assert {k: during[k] for k in ("totals", "groups", "penalties")} == {
            k: before[k] for k in ("totals", "groups", "penalties")}
        seen += 1
    worker.join()
    assert done == [0] and seen >= 2
    assert report(capsys) == before


def test_a_rebuild_killed_at_any_point_leaves_the_read_model_as_it_was(store, capsys):
    before = report(capsys)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RECOVERY_DATABASE_URL": store}
    for delay in (0.3, 0.8, 1.5):
        rebuild = subprocess.Popen([sys.executable, "-m", "app.cli", "rebuild"], env=env, cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        rebuild.send_signal(signal.SIGKILL)
        rebuild.wait()
        assert report(capsys) == before
    assert main(["rebuild", "--check"]) == 0
    import tempfile

    from projections.beside import SCRATCH_PREFIX
    left = [f for f in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*")
            if not Path(f"/proc/{f.name[len(SCRATCH_PREFIX):].split('-', 1)[0]}").exists()]
    assert left == []  # the killed rebuilds' scratch folders are gone
