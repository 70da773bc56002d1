"""What auditors rely on: projections rebuilt from the log come out identical, on SQLite and
PostgreSQL."""

from __future__ import annotations

import pytest

from app.cli import main
from app.demo import generate
from app.platform import Platform
from projections.schema import VIEW_TABLES


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

    from support.histories import november_history

    from domain import clock

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
        assert main(["report", "--from", "2026-11-01", "--to", "2026-11-30",
                     "--as-of", "2026-12-01T00:00:00+08:00"]) == 0
        assert "as recorded at 2026-12-01T00:00:00+08:00" in capsys.readouterr().out
    finally:
        clock.use_clock(previous)


def record_as_it_happened(url: str, lines: list[str]) -> None:
    """Each envelope recorded a minute after it occurred, so `--as-of` reads like the timeline."""
    import json
    from datetime import datetime, timedelta

    from domain import clock

    platform = Platform(url)
    previous = clock.use_clock(clock.now)
    try:
        for line in lines:
            try:
                moment = datetime.fromisoformat(json.loads(line)["occurred_at"]) + timedelta(minutes=1)
                clock.use_clock(lambda m=moment: m)
            except (ValueError, KeyError):
                pass  # a malformed line: recorded at the previous moment
            platform.ingest_lines([line])
    finally:
        clock.use_clock(previous)
        platform.close()


def history(capsys, *args: str) -> dict:
    import json

    capsys.readouterr()
    assert main(["history", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_history_shows_every_event_and_the_state_as_of_a_moment(store, capsys):
    from support.histories import november_history

    record_as_it_happened(store, november_history().lines)

    c8 = history(capsys, "C8")
    assert [e["type"] for e in c8["events"]] == ["complaint.received", "complaint.escalated", "complaint.verified",
                                               "complaint.resolved", "complaint.closed"]
    received = c8["events"][0]
    assert (received["actor"], received["role"], received["unit"]) == ("emp-1001", "hotline_agent", "huaian-cs")
    assert received["repeat_of"] == "C1" and received["data"]["region"] == "xuzhou"
    assert c8["events"][1]["upgrades"] is True
    assert c8["state"]["status"] == "closed" and c8["state"]["recovery_outcome"] == "recovered"
    assert c8["state"]["timeliness"] == "on_time" and c8["state"]["upgraded"] is True
    assert c8["penalties"] == [{"reason": "repeat_handling_fault", "role": "department_head", "who": "dh-1",
                                "unit": "huaian-cs", "at": "2026-11-14T11:00:00+08:00", "amount": "300.00",
                                "points": "0.00"}]

    # Before the handling fault was found: escalated, no penalty yet.
    early = history(capsys, "C8", "--as-of", "2026-11-14T10:30:00+08:00")
    assert early["as_of"] == "2026-11-14T10:30:00+08:00"
    assert [e["type"] for e in early["events"]] == ["complaint.received", "complaint.escalated"]
    assert early["state"]["status"] == "open" and early["state"]["recovery_outcome"] is None
    assert early["penalties"] == []

    # C1 was recovered until C8 repeated it after closing.
    assert history(capsys, "C1", "--as-of", "2026-11-10T00:00:00")["state"]["recovery_outcome"] == "recovered"
    assert history(capsys, "C1")["state"]["recovery_outcome"] == "partially_recovered"

    # C5: never resolved; the watcher's miss and its three penalties; C4: refund kept, gift refused.
    c5 = history(capsys, "C5")
    assert c5["state"]["timeliness"] == "late" and c5["state"]["overdue"] is True
    assert c5["events"][-1]["type"] == "complaint.deadline_missed" and c5["events"][-1]["role"] == "system"
    assert sorted((p["role"], p["amount"]) for p in c5["penalties"]) == [
        ("channel_supervisor", "50.00"), ("handler", "100.00"), ("team_lead", "50.00")]
    c4 = history(capsys, "C4")
    assert c4["state"]["compensation_total"] == "80.00" and c4["state"]["compensation_by_kind"] == {"refund": "80.00"}
    assert c4["state"]["responsible"]["handler"] == "h-2"

    capsys.readouterr()
    assert main(["history", "C6"]) == 0
    table = capsys.readouterr().out
    assert "Complaint C6" in table and "complaint.closed" in table and "quiet_hours_violation" in table
    assert main(["history", "C99"]) == 2
    assert "unknown_complaint" in capsys.readouterr().err
    assert main(["history", "C9", "--as-of", "2026-11-01T00:00:00+08:00"]) == 2


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_export_reimported_into_an_empty_store_gives_the_same_reports(store, fmt, tmp_path, capsys, monkeypatch):
    import json

    from support.histories import november_history

    platform = Platform(store)
    platform.ingest_lines(november_history().lines + generate(seed=9, complaints=300), batch_size=200)
    platform.close()

    def report() -> dict:
        capsys.readouterr()
        assert main(["report", "--by", "region", "--format", "json"]) == 0
        return json.loads(capsys.readouterr().out)

    before = report()
    export = tmp_path / f"events.{fmt}"
    assert main(["export", "--format", fmt, "--output", str(export)]) == 0
    text = export.read_text(encoding="utf-8")
    assert "recovery_keys" not in text and ("hash" in text.splitlines()[0])
    if fmt == "jsonl":  # a case's rows name it (SPEC §7); an export without the column imports the same
        rows = [json.loads(line) for line in text.splitlines()]
        cases = [r for r in rows if r["type"].startswith("case.")]
        assert cases and all(r["case_id"] and r["complaint_id"] is None for r in cases)
        assert all(r["case_id"] is None for r in rows if not r["type"].startswith("case."))
        export.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "case_id"}) + "\n" for r in rows))

    monkeypatch.setenv("RECOVERY_DATABASE_URL", f"sqlite:///{tmp_path / 'imported.db'}")
    capsys.readouterr()
    assert main(["import", str(export)]) == 0
    assert "hashes checked" in capsys.readouterr().out
    assert report() == before
    assert main(["audit", "verify"]) == 0
    assert main(["import", str(export)]) == 2  # not an empty store any more
    assert "needs an empty store" in capsys.readouterr().err
    # The write-side indexes came back too: the same envelopes again are duplicates, not new events.
    again = november_history().write(tmp_path / "again.jsonl")
    capsys.readouterr()
    assert main(["ingest", str(again)]) == 0
    assert "accepted 0, duplicates 36, rejected 0" in capsys.readouterr().out  # refused lines too (SPEC §2)


def test_export_rows_carry_position_type_complaint_and_hash_and_a_range_narrows_them(store, tmp_path, capsys,
                                                                                     monkeypatch):
    import json
    from datetime import UTC, datetime

    from support.histories import november_history

    from domain import clock

    lines = november_history().lines
    previous = clock.use_clock(lambda: datetime(2026, 11, 30, 4, 0, tzinfo=UTC))
    try:
        platform = Platform(store)
        platform.ingest_lines(lines[:10])
        clock.use_clock(lambda: datetime(2026, 12, 2, 4, 0, tzinfo=UTC))
        platform.ingest_lines(lines[10:])
        platform.close()
    finally:
        clock.use_clock(previous)
    capsys.readouterr()
    assert main(["export"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["position"] for r in rows] == sorted(r["position"] for r in rows)
    assert rows[0]["type"] == "PolicyVersion"  # the first version, recorded with the first write (SPEC §3.5)
    first = rows[1]
    assert (first["type"], first["complaint_id"], first["version"], len(first["hash"])) == (
        "complaint.received", "C1", 1, 64)
    assert json.loads(first["state"])["complaint_id"] == "C1"
    assert main(["export", "--from", "2026-12-01"]) == 0
    december = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert 0 < len(december) < len(rows) and all(r["recorded_at"] >= "2026-12" for r in december)

    # A partial export cannot be imported; neither can an altered one.
    partial = tmp_path / "december.jsonl"
    partial.write_text("\n".join(json.dumps(r) for r in december) + "\n")
    altered = tmp_path / "altered.jsonl"
    rows[3]["state"] = rows[3]["state"].replace("huaian", "xuzhou")
    altered.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    monkeypatch.setenv("RECOVERY_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    assert main(["import", str(partial)]) == 2
    assert "needs a whole export" in capsys.readouterr().err
    assert main(["import", str(altered)]) == 2
    assert f"position {rows[3]['position']}: event does not match its hash" in capsys.readouterr().err
