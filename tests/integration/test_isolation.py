"""No line stops a batch, and no event wedges the read model: a failure that is not a refusal (a
bug, a value the store cannot hold) refuses that one line, or passes over that one event on record.
Blank lines are counted, and re-runs change nothing (SPEC §2). On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from unittest import mock

from support.feed import Feed

from app.cli import main
from domain.complaint import Complaint
from projections.report import build_report


def results(outcomes):
    return [(o.result, o.reason) for o in outcomes]


def report(platform):
    platform.catch_up()
    return build_report(platform.app.dialect, platform.app.datastore, platform.policy, None, None)


def three_complaints() -> Feed:
    f = Feed()
    for n in (1, 2, 3):
        f.received(f"C{n}", f"2026-11-02T09:0{n}:00+08:00")
        f.resolved(f"C{n}", f"2026-11-02T10:0{n}:00+08:00")
    return f


def test_a_line_whose_processing_fails_is_refused_and_the_batch_goes_on(platform):
    record = Complaint.record

    def fails_for_c2(self, env, policy):
        if env.complaint_id == "C2":
            raise KeyError("a bug in a rule")
        return record(self, env, policy)

    with mock.patch.object(Complaint, "record", fails_for_c2):
        outcomes = platform.ingest_lines(three_complaints().lines)
    assert results(outcomes) == [("accepted", None)] * 3 + [("rejected", "invalid_event")] + [("accepted", None)] * 2
    assert "KeyError" in outcomes[3].message
    r = report(platform)
    assert (r["totals"]["received"], r["totals"]["resolved"]) == (3, 2)


def test_a_line_the_store_cannot_hold_is_found_and_refused_alone(platform):
    """A write that fails while the store answers is halved down to the line that breaks it."""
    insert = type(platform.app.recorder)._insert_events

    def refuses_c2s_resolve(recorder, cursor, stored_events, **kwargs):
        if any(b"src-000004" in bytes(e.state) for e in stored_events):
            raise ValueError("value too long for the index")
        return insert(recorder, cursor, stored_events, **kwargs)

    with mock.patch.object(type(platform.app.recorder), "_insert_events", refuses_c2s_resolve):
        outcomes = platform.ingest_lines(three_complaints().lines)
    assert results(outcomes) == [("accepted", None)] * 3 + [("rejected", "invalid_event")] + [("accepted", None)] * 2
    assert "could not be stored" in outcomes[3].message
    r = report(platform)
    assert (r["totals"]["received"], r["totals"]["resolved"], r["ingest"]["rejected"]) == (3, 2, 1)


def test_an_event_the_read_model_cannot_apply_is_passed_over_on_record(platform):
    from projections.facts import FactsUpdater

    apply = FactsUpdater.apply

    def fails_on_c2s_resolve(self, event):
        if type(event).__name__ == "Resolved" and event.event_id == "src-000004":
            raise ZeroDivisionError("a bug in a figure")
        return apply(self, event)

    with mock.patch.object(FactsUpdater, "apply", fails_on_c2s_resolve):
        platform.ingest_lines(three_complaints().lines)
        r = report(platform)
    assert (r["totals"]["received"], r["totals"]["resolved"]) == (3, 2)
    with platform.app.datastore.transaction(commit=False) as c:
        faults = platform.app.dialect.rows(c, "SELECT position, error FROM kpi_faults")
    assert len(faults) == 1 and "ZeroDivisionError" in faults[0]["error"]
    from projections.metrics import KpiCollector
    collected = {m.name: m for m in KpiCollector(platform.app, platform.view, platform.policy).collect()}
    assert collected["recovery_read_model_faults"].samples[0].value == 1
    platform.rebuild()  # the fixed release: every event applied, no fault left
    assert report(platform)["totals"]["resolved"] == 3
    with platform.app.datastore.transaction(commit=False) as c:
        assert platform.app.dialect.rows(c, "SELECT COUNT(*) AS n FROM kpi_faults")[0]["n"] == 0


def test_every_line_is_counted_once_blank_lines_as_blank(store, tmp_path, capsys):
    f = three_complaints()
    f.raw("")
    f.raw("   ")
    f.raw('{"not": "an envelope"}')
    f.resend(json.loads(f.lines[0]))
    path = f.write(tmp_path / "feed.jsonl")
    assert main(["ingest", str(path)]) == 0
    first = capsys.readouterr().out
    assert first.startswith("accepted 6, duplicates 1, rejected 1 (invalid_event 1), blank 2")

    # A re-run, whole or after a crash, changes neither accepted nor rejected and writes no
    # second dead letter; blank lines are blank again.
    assert main(["ingest", str(path)]) == 0
    assert capsys.readouterr().out.startswith("accepted 0, duplicates 8, rejected 0, blank 2")
    assert len((tmp_path / "dead.jsonl").read_text().splitlines()) == 1

    # After a fix, refused lines are evaluated again on request; refused again, they count as
    # duplicates in the report, not as second rejections.
    assert main(["ingest", "--retry-refused", str(path)]) == 0
    assert capsys.readouterr().out.startswith("accepted 0, duplicates 7, rejected 1 (invalid_event 1), blank 2")
    assert main(["report", "--format", "json"]) == 0
    ingest = json.loads(capsys.readouterr().out)["ingest"]
    assert (ingest["accepted"], ingest["rejected"], ingest["duplicates"]) == (6, 1, 1 + 8 + 8)


def test_a_line_refused_for_its_state_comes_back_the_same_on_a_re_run(platform):
    """The over_authority compensation of a complaint closed since is still a duplicate of the
    refused line, not an invalid_transition."""
    f = Feed()
    f.received("C1", "2026-11-02T09:00:00+08:00")
    f.envelope("compensated", "C1", "2026-11-02T09:30:00+08:00", {"amount": "500.00", "kind": "credit"})
    f.resolved("C1", "2026-11-02T10:00:00+08:00")
    f.closed("C1", "2026-11-02T11:00:00+08:00")
    assert results(platform.ingest_lines(f.lines))[1] == ("rejected", "over_authority")
    assert results(platform.ingest_lines(f.lines)) == [("duplicate", None)] * 4
    assert report(platform)["ingest"]["rejected_by_reason"] == {"over_authority": 1}
