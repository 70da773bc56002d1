"""SPEC §6, public opinion (舆情): a complaint handled badly inside becomes public opinion outside.
Its stages only move forward; turning public after the latest closing makes the complaint
not_recovered; the report counts conversions by furthest stage and the time to the next contact.
And SPEC §4's retention by resolution, beside the OCA survey's shares. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.feed import Feed

from app.platform import Platform
from app.table import render_table
from domain.policy import policy_text
from projections.history import complaint_history
from projections.metrics import KpiCollector
from projections.report import build_report

TZ = ZoneInfo("Asia/Shanghai")


def at(day: int, hm: str) -> str:
    return f"2026-11-{day:02d}T{hm}:00+08:00"


def results(outcomes):
    return [(o.result, o.reason) for o in outcomes]


def report(platform, by=None):
    platform.catch_up()
    return build_report(platform.app.dialect, platform.app.datastore, platform.policy, None, None, by)


def test_stages_only_move_forward_and_each_refusal_has_its_reason_code(platform):
    f = Feed()
    f.received("P1", at(2, "09:00"))
    f.public_opinion("P1", at(2, "10:00"), "latent", "forum")
    f.public_opinion("P1", at(2, "11:00"), "surge", "media")  # skipping outbreak is allowed
    f.public_opinion("P1", at(2, "12:00"), "surge")  # the same stage again
    f.public_opinion("P1", at(2, "13:00"), "outbreak")  # an earlier stage
    f.public_opinion("P1", at(2, "14:00"), "decline")
    f.public_opinion("P-NONE", at(2, "14:00"), "latent")  # never received
    f.public_opinion("P1", at(2, "15:00"), "viral")  # no such stage
    f.envelope("public_opinion", "P1", at(2, "15:00"), {"stage": "decline", "source": "tv"})
    f.envelope("public_opinion", "P1", at(2, "15:00"), {"source": "news"})  # stage missing
    assert results(platform.ingest_lines(f.lines)) == [
        ("accepted", None), ("accepted", None), ("accepted", None),
        ("rejected", "invalid_transition"), ("rejected", "invalid_transition"), ("accepted", None),
        ("rejected", "unknown_complaint"), ("rejected", "invalid_event"), ("rejected", "invalid_event"),
        ("rejected", "invalid_event")]
    history = complaint_history(platform.app, platform.policy, "P1")
    assert [e["type"] for e in history["events"]].count("complaint.public_opinion") == 3
    assert history["state"]["public_opinion"] == "decline"


def test_public_opinion_is_allowed_after_closing_and_then_the_complaint_is_not_recovered(platform):
    f = Feed()
    # Before closing: it went public, was calmed, resolved and closed satisfied: recovered.
    f.received("BEFORE", at(3, "09:00"))
    f.public_opinion("BEFORE", at(3, "10:00"), "outbreak")
    f.resolved("BEFORE", at(3, "12:00"))
    f.closed("BEFORE", at(3, "13:00"), retained=True)
    # After closing: closed satisfied, then the customer posted it: not_recovered.
    f.received("AFTER", at(3, "09:00"))
    f.resolved("AFTER", at(3, "10:00"))
    f.closed("AFTER", at(3, "11:00"), retained=True)
    f.public_opinion("AFTER", at(4, "09:00"), "latent", "social")
    # After a closing that a later closing replaces: judged on the latest closing again.
    f.received("AGAIN", at(3, "09:00"))
    f.resolved("AGAIN", at(3, "10:00"))
    f.closed("AGAIN", at(3, "11:00"), retained=True)
    f.public_opinion("AGAIN", at(4, "09:00"), "latent")
    f.envelope("reopened", "AGAIN", at(4, "10:00"), {"reason": "posted online"})
    f.resolved("AGAIN", at(4, "11:00"))
    f.closed("AGAIN", at(4, "12:00"), retained=True)
    assert {o.result for o in platform.ingest_lines(f.lines)} == {"accepted"}
    t = report(platform)["totals"]
    assert (t["recovered"], t["not_recovered"]) == (2, 1)
    assert t["public_opinion"] == 3 and t["public_opinion_rate"] == 1.0
    assert complaint_history(platform.app, platform.policy, "AFTER")["state"]["recovery_outcome"] == "not_recovered"


def test_the_report_counts_each_complaint_once_under_its_furthest_stage(platform):
    f = Feed()
    for n in range(1, 6):
        f.received(f"S{n}", at(5, "09:00"), region="huaian" if n <= 3 else "xuzhou")
    f.public_opinion("S1", at(5, "10:00"), "latent")
    f.public_opinion("S1", at(5, "11:00"), "outbreak")
    f.public_opinion("S2", at(5, "10:00"), "surge")
    f.public_opinion("S3", at(5, "10:00"), "outbreak")
    f.public_opinion("S3", at(5, "12:00"), "decline")
    assert {o.result for o in platform.ingest_lines(f.lines)} == {"accepted"}
    r = report(platform, by="region")
    t = r["totals"]
    assert t["public_opinion"] == 3 and t["public_opinion_rate"] == 0.6
    assert t["public_opinion_by_stage"] == {"latent": 0, "outbreak": 1, "surge": 1, "decline": 1}
    assert t["public_opinion_active"] == 2  # in outbreak or surge now
    groups = {g["key"]: g for g in r["groups"]}
    assert groups["huaian"]["public_opinion_rate"] == 1.0 and groups["xuzhou"]["public_opinion_rate"] == 0.0
    assert "public opinion: 3 complaints (latent 0, outbreak 1, surge 1, decline 1); 2 in outbreak" \
        in render_table(r)

    registry = CollectorRegistry()
    registry.register(KpiCollector(platform.app, platform.view, platform.policy))
    active = [s for family in text_string_to_metric_families(generate_latest(registry).decode())
              for s in family.samples if s.name == "recovery_public_opinion_active_complaints"]
    assert sum(s.value for s in active) == 2


def test_the_time_to_the_next_contact_after_going_public(platform):
    f = Feed()
    # Went public at 10:00; the next contact, a call at 12:30: within 4 hours (速答).
    f.received("T1", at(6, "09:00"))
    f.envelope("responded", "T1", at(6, "09:30"), {"channel": "call"})  # before: does not count
    f.public_opinion("T1", at(6, "10:00"), "outbreak")
    f.envelope("responded", "T1", at(6, "12:30"), {"channel": "call"})
    # Went public; the next contact is the resolve, two days later.
    f.received("T2", at(6, "09:00"))
    f.public_opinion("T2", at(6, "09:30"), "latent")
    f.resolved("T2", at(8, "09:00"))
    # Went public, nobody has called since.
    f.received("T3", at(6, "09:00"))
    f.public_opinion("T3", at(6, "09:30"), "surge")
    assert {o.result for o in platform.ingest_lines(f.lines)} == {"accepted"}
    t = report(platform)["totals"]
    hours = t["time_to_public_opinion_response_hours"]
    assert (hours["le_4h"], hours["le_48h"], sum(hours.values())) == (1, 1, 2)
    assert t["public_opinion_awaiting_contact"] == 1


def _retention_history() -> Feed:
    f = Feed()
    # Unresolved (rejected, even if fast): stayed, and did not.
    f.received("U1", at(9, "09:00"))
    f.resolved("U1", at(9, "10:00"), outcome="rejected")
    f.closed("U1", at(9, "11:00"), satisfaction="dissatisfied", retained=True)
    f.received("U2", at(9, "09:00"))
    f.resolved("U2", at(9, "10:00"), outcome="unresolved")
    f.closed("U2", at(9, "11:00"), satisfaction="dissatisfied", retained=False)
    # Resolved quickly (within 24 h): stayed.
    f.received("Q1", at(9, "09:00"))
    f.resolved("Q1", at(10, "09:00"))
    f.closed("Q1", at(10, "10:00"), retained=True)
    # Resolved, slowly (first resolve after 24 h), and the latest outcome partial: one stayed of two.
    f.received("R1", at(9, "09:00"))
    f.resolved("R1", at(11, "09:00"), outcome="partially_resolved")
    f.closed("R1", at(11, "10:00"), retained=True)
    f.received("R2", at(9, "09:00"))
    f.resolved("R2", at(10, "09:01"))
    f.closed("R2", at(10, "10:00"), satisfaction="neutral", retained=False)
    # Closed without saying whether the customer stayed: not counted.
    f.received("N1", at(9, "09:00"))
    f.resolved("N1", at(9, "10:00"))
    f.closed("N1", at(9, "11:00"))
    return f


def test_retention_by_resolution_beside_the_survey(platform):
    assert {o.result for o in platform.ingest_lines(_retention_history().lines)} == {"accepted"}
    r = report(platform)
    t = r["totals"]
    assert t["retention_by_resolution"] == {"unresolved": 0.5, "resolved": 0.5, "resolved_quickly": 1.0}
    assert t["retention_by_resolution_closed"] == {"unresolved": 2, "resolved": 2, "resolved_quickly": 1}
    assert r["retention_benchmark"] == {"unresolved": 0.19, "resolved": 0.54, "resolved_quickly": 0.82}
    assert "recovered_satisfaction_rate" not in t  # SPEC 2 §5: 1.0 by definition
    assert "retention by resolution (ours / survey): unresolved 50.0% / 19.0% of 2" in render_table(r)


def test_quick_is_judged_with_the_version_in_force_at_received(platform, policy):
    platform.record_first_policy()
    platform.book.adopt(policy_text(replace(policy, quick_hours=48)),
                        datetime(2026, 11, 9, 12, 0, tzinfo=TZ), "test")
    platform.refresh_policy()
    f = Feed()
    # Both resolved 30 hours after received: slow under 24 h (v1), quick under 48 h (v2).
    f.received("V1", at(9, "09:00"))
    f.resolved("V1", at(10, "15:00"))
    f.closed("V1", at(10, "16:00"), retained=True)
    f.received("V2", at(9, "13:00"))
    f.resolved("V2", at(10, "19:00"))
    f.closed("V2", at(10, "20:00"), retained=True)
    assert {o.result for o in platform.ingest_lines(f.lines)} == {"accepted"}
    assert report(platform)["totals"]["retention_by_resolution_closed"] == {
        "unresolved": 0, "resolved": 1, "resolved_quickly": 1}


def test_the_figures_do_not_depend_on_the_order_complaints_arrive_in(tmp_path, policy):
    """Each complaint's own events in order, the complaints interleaved three ways (SQLite here;
    tests/test_arrival_order.py runs the demo month, public opinion included, on both backends)."""
    f = _retention_history()
    f.received("W1", at(12, "09:00"))
    f.resolved("W1", at(12, "10:00"))
    f.closed("W1", at(12, "11:00"), retained=True)
    f.public_opinion("W1", at(12, "12:00"), "outbreak")
    f.public_opinion("W1", at(12, "13:00"), "decline")
    f.received("W2", at(12, "09:00"))
    f.public_opinion("W2", at(12, "09:30"), "surge")
    f.envelope("responded", "W2", at(12, "10:00"), {"channel": "visit"})
    streams: dict[str, list[str]] = {}
    for line in f.lines:
        streams.setdefault(json.loads(line)["complaint_id"], []).append(line)

    def interleaved(seed: int) -> list[str]:
        rng, queues, out = random.Random(seed), {k: list(v) for k, v in streams.items()}, []
        while queues:
            key = rng.choice(sorted(queues))
            out.append(queues[key].pop(0))
            if not queues[key]:
                del queues[key]
        return out

    reports = []
    patient = replace(policy, file_lateness_seconds=14 * 86400)  # no delay here is beyond the lateness
    for seed in (1, 2, 3):
        with Platform(f"sqlite:///{tmp_path / f'order-{seed}.db'}", patient) as p:
            p.ingest_lines(interleaved(seed), batch_size=3)
            reports.append(report(p, by="region"))
    assert reports[0]["totals"]["public_opinion"] == 2 and reports[0]["totals"]["not_recovered"] == 2
    assert reports[1] == reports[0] and reports[2] == reports[0]
