import contextlib
import json

from app.cli import main
from app.demo import generate


def test_the_generator_is_seeded_and_covers_every_event_type_and_tier():
    lines = generate(seed=7, complaints=800)
    assert lines == generate(seed=7, complaints=800)
    parsed = []
    for line in lines:
        with contextlib.suppress(ValueError):
            parsed.append(json.loads(line))
    types = {e.get("type") for e in parsed}
    assert {f"complaint.{t}" for t in ("received", "assigned", "apologised", "verified", "compensated",
                                      "escalated", "responded", "resolved", "closed", "reopened",
                                      "repeated")} <= types
    tiers = {e["data"].get("customer_tier") for e in parsed if e.get("type") == "complaint.received"}
    assert tiers == {"vip", "premium", "standard"}
    ids = [e.get("event_id") for e in parsed]
    assert len(ids) > len(set(ids))  # some resent envelopes


def test_demo_ingests_into_a_fresh_store_and_prints_the_report(tmp_path, capsys):
    assert main(["demo", "--dir", str(tmp_path / "demo"), "--complaints", "400"]) == 0
    out = capsys.readouterr().out
    assert "Service recovery report" in out and "huaian" in out
    assert "rejected" in out and "duplicates" in out


def test_the_demo_quarter_is_accepted_whole_on_the_day_it_runs(tmp_path, monkeypatch):
    """Under the shipped policy (events at most 5 minutes ahead of the clock) nothing the demo
    generates is refused for lying in the future: its quarter ends at midnight today."""
    from app.demo import QUARTER_DAYS, quarter_start
    from app.platform import Platform
    from domain.policy import load_policy

    monkeypatch.delenv("RECOVERY_POLICY_FILE")
    lines = generate(seed=3, complaints=300, start=quarter_start(), days=QUARTER_DAYS)
    with Platform(f"sqlite:///{tmp_path / 'demo.db'}", load_policy()) as platform:
        outcomes = platform.ingest_lines(lines)
    assert [o.message for o in outcomes if o.message and "latest allowed time" in o.message] == []
    assert sum(o.result == "accepted" for o in outcomes) > 0.95 * len(lines)


def test_the_live_feed_plays_each_complaint_in_order_stamped_no_later_than_it_is_sent():
    """`demo --live`: offsets from the generated timeline, ids tagged per run, occurred_at the moment
    of sending (never ahead of the clock), broken lines still broken, resent lines identical."""
    from datetime import UTC, datetime, timedelta

    from app.feeder import UPLOADED_LATE_BY, stamped, timeline, uploaded_late

    lines = generate(seed=5, complaints=300)
    arrivals = list(timeline(lines))
    assert arrivals[0].due == 0 and all(a.due <= b.due for a, b in zip(arrivals, arrivals[1:]))
    received = {a.envelope["complaint_id"] for a in arrivals if a.envelope and a.envelope.get("type") ==
                "complaint.received"}
    played = {a.envelope.get("complaint_id") for a in arrivals if a.envelope and "case_id" not in a.envelope}
    assert played - received <= {c for c in played if c.startswith("C-UNKNOWN-")}  # no orphaned complaint
    start = datetime(2026, 12, 1, 9, tzinfo=UTC)
    sent = [stamped(a, "Lt", start + timedelta(seconds=i)) for i, a in enumerate(arrivals)]
    for i, (key, value) in enumerate(sent):
        try:
            envelope = json.loads(value)
        except ValueError:
            assert key is None
            continue
        stream = envelope.get("complaint_id") or envelope["case_id"]
        assert key == stream.encode() and stream.startswith("Lt-") and envelope["event_id"].startswith("Lt-")
        moment = datetime.fromisoformat(envelope["occurred_at"])
        late = envelope["type"] == "complaint.received" and uploaded_late(stream.removeprefix("Lt-"))
        if moment.tzinfo:  # a late upload was received two days before it is sent (SPEC 2.1)
            assert moment == start + timedelta(seconds=i) - (UPLOADED_LATE_BY if late else timedelta(0))
        else:  # the generator's envelope without an offset stays without one
            assert len(envelope["occurred_at"]) == 19
    from app.feeder import Arrival

    assert stamped(Arrival(0.0, "{this is not json", None), "Lt", start) == (None, b"{this is not json")
    assert 0.05 < sum(late for late in map(uploaded_late, received)) / len(received) < 0.15


def test_each_timeline_of_the_live_feed_selects_in_rounds_of_its_own():
    """A round selects five only once: the next timeline's selections go to rounds a cycle of years
    on, and a case names the complaint of its own timeline."""
    from datetime import UTC, datetime

    from app.feeder import Arrival, stamped, timeline

    now = datetime(2026, 12, 1, 9, tzinfo=UTC)
    selection = {"event_id": "e1", "type": "case.selected", "case_id": "K1", "occurred_at": now.isoformat(),
                 "actor": {"id": "a", "role": "r"}, "data": {"round": "2026-Q4"}}
    rounds = [json.loads(stamped(Arrival(0.0, json.dumps(selection), selection), tag, now, cycle)[1])["data"]["round"]
              for tag, cycle in (("La", 0), ("Lb", 1), ("Lc", 2))]
    assert rounds == ["2026-Q4", "2027-Q4", "2028-Q4"]
    submission = {**selection, "type": "case.submitted", "data": {"complaint_id": "C-1", "title": "t"}}
    key, value = stamped(Arrival(0.0, json.dumps(submission), submission), "Lb", now, 1)
    assert key == b"Lb-K1" and json.loads(value)["data"]["complaint_id"] == "Lb-C-1"

    night = {**submission, "occurred_at": "2026-11-02T03:00:00+08:00"}  # before the first opening hour
    day = {**selection, "case_id": "K2", "occurred_at": "2026-11-02T09:00:00+08:00"}
    broken = "{this is not json"
    played = [a.line for a in timeline([json.dumps(night), json.dumps(day), broken])]
    assert played == [json.dumps(day), broken]  # the night's case is passed over, nothing after it
