"""What auditors rely on: projections rebuilt from the log come out identical, on SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest

from infra.cli import main
from infra.demo import generate
from infra.platform import Platform
from projections.kpi import VIEW_TABLES


@pytest.fixture
def store(store_url, tmp_path, monkeypatch):
    monkeypatch.setenv("RECOVERY_DATABASE_URL", store_url)
    monkeypatch.setenv("RECOVERY_DEAD_LETTER_FILE", str(tmp_path / "dead.jsonl"))
    return store_url


def tables(url: str) -> dict[str, list[tuple]]:
    platform = Platform(url)
    try:
        with platform.app.datastore.transaction(commit=False) as c:
            return {t: sorted(tuple(str(v) for v in row.values())
                              for row in platform.app.dialect.rows(c, f"SELECT * FROM {t}")) for t in VIEW_TABLES}
    finally:
        platform.close()


def test_rebuild_gives_the_live_tables_row_by_row(store, capsys):
    platform = Platform(store)
    # A long random history (a synthetic quarter with repeats, misses, refusals, resends), applied
    # live in small batches: each batch caught up on its own.
    platform.ingest_lines(generate(seed=5, complaints=1500), batch_size=250)
    events = platform.app.recorder.max_notification_id()
    platform.close()
    live = tables(store)
    assert len(live["kpi_complaints"]) == 1500 and live["kpi_penalties"] and live["kpi_penalty_totals"]

    capsys.readouterr()
    assert main(["rebuild"]) == 0
    assert f"rebuilt projection kpi from {events} recorded events" in capsys.readouterr().out
    assert tables(store) == live


def test_report_as_of_gives_the_figures_as_they_stood_then(store, capsys):
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from domain import clock
    from test_scenarios import november_history

    lines = november_history().lines
    month_end = datetime(2026, 12, 1, 0, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    previous = clock.use_clock(lambda: month_end - timedelta(hours=1))
    try:
        platform = Platform(store)
        platform.ingest_lines(lines[:20], batch_size=6)
        platform.close()
        capsys.readouterr()
        assert main(["report", "--format", "json", "--from", "2026-11-01", "--to", "2026-11-30"]) == 0
        at_month_end = capsys.readouterr().out

        # December: the rest of the history arrives, and a correction is recorded.
        clock.use_clock(lambda: month_end + timedelta(days=3))
        platform = Platform(store)
        platform.ingest_lines(lines[20:])
        platform.close()
        assert main(["report", "--format", "json", "--from", "2026-11-01", "--to", "2026-11-30"]) == 0
        today = capsys.readouterr().out
        assert today != at_month_end

        assert main(["report", "--format", "json", "--from", "2026-11-01", "--to", "2026-11-30",
                     "--as-of", "2026-12-01T00:00:00"]) == 0  # policy time zone
        import json
        then = json.loads(capsys.readouterr().out)
        assert then.pop("as_of") == "2026-12-01T00:00:00+08:00"
        assert then == json.loads(at_month_end)
        assert main(["report", "--from", "2026-11-01", "--to", "2026-11-30", "--as-of", "2026-12-01T00:00:00+08:00"]) == 0
        assert "as recorded at 2026-12-01T00:00:00+08:00" in capsys.readouterr().out
    finally:
        clock.use_clock(previous)
