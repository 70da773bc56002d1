"""Small histories with KPI values worked out by hand, checked through `recovery report --format
json`, on the embedded SQLite file and on PostgreSQL."""

from __future__ import annotations

import json

import pytest
from feed import Feed

from app.cli import main

D = "2026-11-{:02d}T{}:00+08:00"


def at(day: int, hhmm: str) -> str:
    return D.format(day, hhmm)


def november_history() -> Feed:
    f = Feed()
    # C1: VIP, resolved and closed satisfied the same morning. Later repeated by C8 after closing.
    f.received("C1", at(2, "09:00"), tier="vip", customer="cust-A")
    # C2: same customer and issue an hour later -> detected repeat of C1; resolved late (due 18:00).
    f.received("C2", at(2, "10:00"), tier="vip", customer="cust-A")
    f.resolved("C1", at(2, "12:00"))
    c1_closed = f.closed("C1", at(2, "13:00"), retained=True)
    f.resend(c1_closed)  # a resent event: a duplicate, not a rejection
    f.resolved("C2", at(2, "20:00"))
    # C3: came in through the regulator (upgraded at intake); network + urgent -> 24 h.
    f.received("C3", at(3, "09:00"), channel="regulator", category="network", urgency="urgent")
    f.resolved("C3", at(3, "15:00"), outcome="partially_resolved")
    f.closed("C3", at(3, "16:00"), satisfaction="neutral")
    # C4: store complaint; staff error verified; refund 80 ok; a gift of 30 would exceed 100 in total.
    store = {"id": "emp-3001", "role": "counter_agent", "unit": "huaian-store-1"}
    f.received("C4", at(4, "10:00"), channel="store", actor=store,
               responsible={"handler": "h-1", "team_lead": "tl-1", "department_head": "dh-1",
                            "channel_supervisor": "cs-1"})
    f.envelope("verified", "C4", at(4, "11:00"), {"liability": "company", "service_fault": True,
                                                  "handling_fault": False})
    f.envelope("compensated", "C4", at(4, "12:00"), {"amount": "80.00", "kind": "refund"}, store)
    f.envelope("compensated", "C4", at(4, "12:30"), {"amount": "30.00", "kind": "gift"}, store)  # over_authority
    f.envelope("assigned", "C4", at(4, "13:00"), {"to": {"handler": "h-2"}})
    # C5: online, never resolved: due 11-07 09:00, missed when the clock passes it (at C6).
    f.received("C5", at(5, "09:00"), channel="online",
               responsible={"handler": "h-1", "team_lead": "tl-1", "department_head": "dh-1",
                            "channel_supervisor": "cs-1"})
    f.resolved("C4", at(5, "09:00"))
    f.closed("C4", at(5, "10:00"), satisfaction="dissatisfied", retained=True)
    f.closed("C5", at(6, "10:00"))  # invalid_transition: not resolved
    f.envelope("responded", "C99", at(6, "11:00"), {"channel": "call"})  # unknown_complaint
    f.raw('{"event_id": "broken"')  # invalid_event
    # C6: premium, a unit failed to record an earlier contact; closed at 23:00 (quiet hours); not retained.
    f.received("C6", at(10, "09:00"), tier="premium", region="xuzhou", unrecorded_by_unit="xuzhou-cs")
    f.resolved("C6", at(10, "10:00"))
    f.closed("C6", at(10, "23:00"), retained=False)
    # C7: called at 22:30 at the customer's request; resolution unresolved; customer unreachable.
    f.received("C7", at(12, "09:00"), region="xuzhou")
    f.envelope("responded", "C7", at(12, "22:30"), {"channel": "call", "customer_requested_time": True})
    f.resolved("C7", at(13, "09:00"), outcome="unresolved")
    f.closed("C7", at(13, "10:00"), satisfaction="unreachable")
    # C8: explicitly repeats C1; went to the media; handling fault found -> 300 to C1's department head.
    f.received("C8", at(14, "09:00"), region="xuzhou", repeat_of="C1")
    f.envelope("escalated", "C8", at(14, "10:00"), {"to": "media"})
    f.envelope("verified", "C8", at(14, "11:00"), {"liability": "company", "service_fault": False,
                                                   "handling_fault": True})
    f.resolved("C8", at(14, "12:00"))
    f.closed("C8", at(14, "13:00"), retained=True)
    # C9: closed satisfied, then the customer called the government hotline: upgraded after closing.
    f.received("C9", at(20, "09:00"), region="xuzhou")
    f.resolved("C9", at(20, "10:00"))
    f.closed("C9", at(20, "11:00"))
    f.envelope("escalated", "C9", at(21, "09:00"), {"to": "government_hotline"})
    return f


def run(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out) if "json" in args else capsys.readouterr().out


@pytest.fixture
def store(store_url, tmp_path, monkeypatch):
    monkeypatch.setenv("RECOVERY_DATABASE_URL", store_url)
    monkeypatch.setenv("RECOVERY_DEAD_LETTER_FILE", str(tmp_path / "dead.jsonl"))
    return tmp_path


def test_november_kpis_match_the_hand_worked_values(store, capsys):
    feed = november_history().write(store / "nov.jsonl")
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
    dead = [json.loads(line) for line in (store / "dead.jsonl").read_text().splitlines()]
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
    assert len((store / "dead.jsonl").read_text().splitlines()) == 4


def test_cohorts_follow_the_policy_time_zone_and_inclusive_dates(store, capsys):
    f = Feed()
    f.received("N1", "2026-11-30T23:30:00+08:00")
    f.received("D1", "2026-11-30T17:00:00+00:00")  # 01:00 on 1 December in Shanghai
    assert main(["ingest", str(f.write(store / "edge.jsonl"))]) == 0
    nov = run(capsys, "report", "--from", "2026-11-30", "--to", "2026-11-30", "--format", "json")
    dec = run(capsys, "report", "--from", "2026-12-01", "--to", "2026-12-01", "--format", "json")
    assert nov["totals"]["received"] == 1 and dec["totals"]["received"] == 1
    assert nov["totals"]["timely_rate"] is None  # no denominator yet


def test_table_report_prints(store, capsys):
    feed = november_history().write(store / "nov.jsonl")
    main(["ingest", str(feed)])
    out = run(capsys, "report", "--by", "tier")
    assert "total" in out and "vip" in out and "accepted 31" in out
