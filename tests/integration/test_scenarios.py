"""Small histories with KPI values worked out by hand, checked through `recovery report --format
json`, on the embedded SQLite file and on PostgreSQL."""

from __future__ import annotations

import json

from support.feed import Feed
from support.histories import november_history

from app.cli import main


def run(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out) if "json" in args else capsys.readouterr().out


def test_november_kpis_match_the_hand_worked_values(store, tmp_path, capsys):
    feed = november_history().write(tmp_path / "nov.jsonl")
    assert main(["ingest", str(feed)]) == 0
    summary = capsys.readouterr().out
    assert "accepted 31, duplicates 1, rejected 4" in summary
    assert "invalid_event 1" in summary and "over_authority 1" in summary

    report = run(capsys, "report", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "json")
    assert (report["from"], report["to"], report["timezone"]) == ("2026-11-01", "2026-11-30", "Asia/Shanghai")
    t = report["totals"]
    assert {k: t[k] for k in ("received", "resolved", "closed", "open", "repeat", "upgraded", "on_time",
                              "late", "first_contact_resolved", "satisfied", "satisfaction_answered",
                              "recovered", "partially_recovered", "not_recovered", "lost", "unknown",
                              "quiet_hours_violations")} == {
        "received": 9, "resolved": 8, "closed": 7, "open": 2, "repeat": 2, "upgraded": 3, "on_time": 7,
        "late": 2, "first_contact_resolved": 3, "satisfied": 4, "satisfaction_answered": 6,
        "recovered": 1, "partially_recovered": 2, "not_recovered": 2, "lost": 1, "unknown": 1,
        "quiet_hours_violations": 1}
    assert t["repeat_rate"] == 0.2222 and t["upgraded_rate"] == 0.3333
    assert t["timely_rate"] == 0.7778 and t["fcr_rate"] == 0.375
    assert t["satisfaction_rate"] == 0.6667 and t["recovery_rate"] == 0.1667
    assert t["compensation_total"] == "80.00"

    penalties = {(p["who"], p["month"]): p for p in report["penalties"]}
    assert set(penalties) == {("h-1", "2026-11"), ("tl-1", "2026-11"), ("cs-1", "2026-11"),
                              ("dh-1", "2026-11"), ("xuzhou-cs", "2026-11")}
    assert penalties[("h-1", "2026-11")]["amount"] == "300.00"
    assert penalties[("h-1", "2026-11")]["reasons"] == {
        "deadline_missed": 2, "service_fault": 1, "repeat_handling_fault": 0, "unrecorded": 0}
    assert penalties[("tl-1", "2026-11")]["amount"] == "100.00"
    assert penalties[("cs-1", "2026-11")]["amount"] == "50.00"
    assert penalties[("dh-1", "2026-11")]["amount"] == "300.00"
    assert penalties[("dh-1", "2026-11")]["reasons"]["repeat_handling_fault"] == 1
    assert (penalties[("xuzhou-cs", "2026-11")]["amount"],
            penalties[("xuzhou-cs", "2026-11")]["points"]) == ("0.00", "0.02")

    assert report["ingest"] == {"accepted": 31, "duplicates": 1, "rejected": 4, "rejected_by_reason": {
        "invalid_event": 1, "unknown_complaint": 1, "invalid_transition": 1, "over_authority": 1},
        "unknown_fields": {}}
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert sorted(d["reason"] for d in dead) == ["invalid_event", "invalid_transition", "over_authority",
                                                 "unknown_complaint"]
    assert any(d["line"] == '{"event_id": "broken"' for d in dead)

    by_region = run(capsys, "report", "--from", "2026-11-01", "--to", "2026-11-30", "--by", "region",
                    "--format", "json")
    groups = {g["key"]: g for g in by_region["groups"]}
    assert (groups["huaian"]["received"], groups["xuzhou"]["received"]) == (5, 4)
    assert groups["huaian"]["late"] == 2 and groups["xuzhou"]["late"] == 0

    # Re-ingesting the same file changes no KPI and no accepted or rejected count, and writes no
    # second dead letter: every line is a duplicate, the refused ones included (SPEC §2).
    assert main(["ingest", str(feed)]) == 0
    again = run(capsys, "report", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "json")
    assert again["totals"] == t and again["penalties"] == report["penalties"]
    assert again["ingest"] == {**report["ingest"], "duplicates": 1 + 36}
    assert len((tmp_path / "dead.jsonl").read_text().splitlines()) == 4


def test_cohorts_follow_the_policy_time_zone_and_inclusive_dates(store, tmp_path, capsys):
    f = Feed()
    f.received("N1", "2026-11-30T23:30:00+08:00")
    f.received("D1", "2026-11-30T17:00:00+00:00")  # 01:00 on 1 December in Shanghai
    assert main(["ingest", str(f.write(tmp_path / "edge.jsonl"))]) == 0
    nov = run(capsys, "report", "--from", "2026-11-30", "--to", "2026-11-30", "--format", "json")
    dec = run(capsys, "report", "--from", "2026-12-01", "--to", "2026-12-01", "--format", "json")
    assert nov["totals"]["received"] == 1 and dec["totals"]["received"] == 1
    assert nov["totals"]["timely_rate"] is None  # no denominator yet


def test_table_report_prints(store, tmp_path, capsys):
    feed = november_history().write(tmp_path / "nov.jsonl")
    main(["ingest", str(feed)])
    out = run(capsys, "report", "--by", "tier")
    assert "total" in out and "vip" in out and "accepted 31" in out
