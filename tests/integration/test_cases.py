"""The typical-case library (SPEC §7): case envelopes and reason codes, the round limit, rewards
(the organisation award by occurred_at, whatever the arrival order), the monthly quota, and figures
that survive a rebuild, an erasure and a policy change. On SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from support.casefeed import case_env, selected, submitted
from support.feed import Feed

from app.cli import main
from app.platform import Platform
from domain.envelope import parse_line
from domain.errors import InvalidEvent
from projections.report import build_report

NOV = "2026-11-{:02d}T{}+08:00"


def at(day: int, hhmm: str = "10:00") -> str:
    return NOV.format(day, hhmm)


def outcomes(p: Platform, lines: list[str]) -> list[tuple[str, str | None]]:
    return [(o.result, o.reason) for o in p.ingest_lines(lines)]


def report(p: Platform, start=None, end=None) -> dict:
    p.catch_up()
    return build_report(p.app.dialect, p.app.datastore, p.policy, start, end)


def rewards(r: dict) -> dict[tuple[str, str], tuple[str, int, int]]:
    return {(x["who"], x["month"]): (x["amount"], x["reasons"]["case_selected"], x["reasons"]["organisation_award"])
            for x in r["rewards"]}


# -- the envelope ---------------------------------------------------------------------------------

@pytest.mark.parametrize("line, why", [
    (case_env("e", "submitted", "K1", at(2), {"author": {"id": "h", "unit": "u", "kind": "dedicated_handler"}},
              ), "title"),
    (submitted("K1", at(2), kind="handler"), "kind"),
    (case_env("e", "submitted", "K1", at(2), {"author": {"id": "h", "kind": "department"}, "title": "t"}), "unit"),
    (submitted("K1", at(2), title="x" * 4001), "title"),
    (submitted("K1", at(2), author="h\u0007"), "control"),
    (selected("K1", at(2), round_="2027Q1"), "round"),
    (selected("K1", at(2), round_="2027-Q5"), "round"),
    (case_env("e", "selected", "K1", at(2), {"round": "2027-Q1"}, key="complaint_id"), "case_id"),
    (case_env("e", "selected", "K" * 129, at(2), {"round": "2027-Q1"}), "case_id"),
    (json.dumps({"event_id": "e", "type": "complaint.repeated", "case_id": "C1", "occurred_at": at(2),
                 "actor": {"id": "a", "role": "r"}, "data": {}}), "complaint_id"),
])
def test_a_case_envelope_that_breaks_the_contract_is_invalid_event(line, why):
    with pytest.raises(InvalidEvent, match=why):
        parse_line(line)


def test_the_other_streams_key_is_tolerated_and_counted_like_any_key_the_contract_does_not_define():
    """SPEC §2: the type says which stream an envelope belongs to; a stray key is counted, not refused."""
    case = parse_line(json.dumps({"event_id": "e", "type": "case.selected", "case_id": "K1", "complaint_id": "C1",
                                  "occurred_at": at(2), "actor": {"id": "a", "role": "r"},
                                  "data": {"round": "2027-Q1"}}))
    assert (case.case_id, case.complaint_id, case.unknown_fields) == ("K1", "", ("case.selected.complaint_id",))
    complaint = parse_line(json.dumps({"event_id": "e", "type": "complaint.repeated", "complaint_id": "C1",
                                       "case_id": "K1", "occurred_at": at(2), "actor": {"id": "a", "role": "r"},
                                       "data": {}}))
    assert (complaint.complaint_id, complaint.case_id) == ("C1", None)
    assert complaint.unknown_fields == ("complaint.repeated.case_id",)


def test_a_case_envelope_is_read_with_its_case_id_and_its_optional_fields():
    env = parse_line(submitted("K1", at(2), complaint_id="C1", summary="won back", extra="x"))
    assert (env.case_id, env.complaint_id, env.type) == ("K1", "", "case.submitted")
    assert env.data["author"] == {"id": "h-1", "unit": "huaian-cs", "kind": "dedicated_handler"}
    assert env.data["complaint_id"] == "C1" and env.unknown_fields == ("case.submitted.extra",)


# -- reason codes and the round limit ---------------------------------------------------------------

def test_reason_codes_of_case_events(platform):
    got = outcomes(platform, [
        selected("K9", at(3)),  # never submitted
        selected("K9", at(3), round_="Q4", event_id="sel-K9-bad"),  # the envelope is checked first
        submitted("K1", at(2)),
        case_env("sub-K1-again", "submitted", "K1", at(2), json.loads(submitted("K1", at(2)))["data"]),
        selected("K1", at(3)),
        selected("K1", at(4), event_id="sel-K1-again"),  # selected twice
        selected("K1", at(3)),  # the same event id again: a duplicate
    ])
    assert got == [("rejected", "unknown_complaint"), ("rejected", "invalid_event"), ("accepted", None),
                   ("rejected", "complaint_exists"), ("accepted", None), ("rejected", "invalid_transition"),
                   ("duplicate", None)]
    counts = report(platform)["ingest"]
    assert counts["accepted"] == 2 and counts["duplicates"] == 1 and counts["rejected_by_reason"] == {
        "unknown_complaint": 1, "invalid_event": 1, "complaint_exists": 1, "invalid_transition": 1}


def test_a_round_selects_at_most_five_and_refusals_do_not_count(platform):
    cases = [f"K{i}" for i in range(1, 9)]
    lines = [submitted(c, at(2), author=f"h-{c}") for c in cases]
    lines += [selected("K-UNKNOWN", at(3)), selected("K1", at(3))]
    lines += [selected("K1", at(3), event_id="sel-K1-twice")]  # refused: does not take a place
    assert outcomes(platform, lines)[-3:] == [("rejected", "unknown_complaint"), ("accepted", None),
                                              ("rejected", "invalid_transition")]
    # Over two batches: the index counts what earlier batches selected.
    got = outcomes(platform, [selected(c, at(4)) for c in cases[1:6]] + [selected("K8", at(4), "2027-Q1")])
    assert got == [("accepted", None)] * 4 + [("rejected", "invalid_transition"), ("accepted", None)]
    r = report(platform)
    assert sum(x["reasons"]["case_selected"] for x in r["rewards"]) == 6


# -- rewards ---------------------------------------------------------------------------------------

def library() -> list[list[str]]:
    """Streams of cases, each in its own order: unit A gets three selected in 2026-Q4 (the award once,
    at its second by time: 2 December), unit B one in each of two rounds (no award)."""
    return [
        [submitted("A1", at(2), author="a-1", unit="unit-A"), selected("A1", "2026-12-05T10:00:00+08:00")],
        [submitted("A2", at(3), author="a-2", unit="unit-A"), selected("A2", at(30, "23:30"))],
        [submitted("A3", at(4), author="a-1", unit="unit-A"), selected("A3", "2026-12-02T09:00:00+08:00")],
        [submitted("B1", at(5), author="b-1", unit="unit-B", kind="department"), selected("B1", at(20))],
        [submitted("B2", at(6), author="b-1", unit="unit-B", kind="department"),
         selected("B2", "2027-01-10T10:00:00+08:00", "2027-Q1")],
    ]


def test_the_organisation_award_follows_occurred_at_whatever_the_arrival_order(platform, store_url, tmp_path, policy):
    streams = library()
    outcomes(platform, [line for s in streams for line in s])
    first = report(platform)
    assert rewards(first) == {
        ("a-1", "2026-12"): ("200.00", 2, 0), ("a-2", "2026-11"): ("100.00", 1, 0),
        ("b-1", "2026-11"): ("100.00", 1, 0), ("b-1", "2027-01"): ("100.00", 1, 0),
        ("unit-A", "2026-12"): ("500.00", 0, 1)}  # the second by time is A3 on 2 December, not A1
    # The history again into fresh stores: the selections arrive in other orders, each case's own kept.
    for n, order in enumerate(([3, 4, 0, 1, 2], [2, 1, 0, 4, 3])):
        late = [streams[i] for i in order]
        lines = [s[0] for s in late] + [s[1] for s in late]
        url = f"sqlite:///{tmp_path / f'order-{n}.db'}"
        with Platform(url, policy) as other:
            outcomes(other, lines)
            assert report(other) == first
    # The award's earlier selection arriving last moves it from December to November.
    outcomes(platform, [submitted("A4", at(7), author="a-3", unit="unit-A"), selected("A4", at(8))])
    assert rewards(report(platform))[("unit-A", "2026-11")] == ("500.00", 0, 1)
    assert ("unit-A", "2026-12") not in rewards(report(platform))
    # The report's range filters rewards by the month they fall in, like penalties.
    december = report(platform, *map(_date, ("2026-12-01", "2026-12-31")))
    assert {x["who"] for x in december["rewards"]} == {"a-1"}


def _date(text: str):
    from datetime import date
    return date.fromisoformat(text)


def test_the_quota_per_author_and_month_shows_the_shortfall(platform):
    outcomes(platform, [
        submitted("H1", at(2), author="h-1"),  # dedicated handler, one case: short of 2
        submitted("H2", at(3), author="h-2"), submitted("H3", at(4), author="h-2"),  # two: on quota
        submitted("D1", at(5), author="dept-1", unit="huaian-dept", kind="department"),  # department: 1
        # 00:30 on 1 December in Shanghai is still 30 November in UTC: it counts for December.
        submitted("H4", "2026-12-01T00:30:00+08:00", author="h-1"),
    ])
    rows = {(c["author"], c["month"]): (c["unit"], c["submitted"], c["quota"]) for c in report(platform)["cases"]}
    assert rows == {("h-1", "2026-11"): ("huaian-cs", 1, 2), ("h-2", "2026-11"): ("huaian-cs", 2, 2),
                    ("dept-1", "2026-11"): ("huaian-dept", 1, 1), ("h-1", "2026-12"): ("huaian-cs", 1, 2)}
    december = report(platform, _date("2026-12-01"), _date("2026-12-31"))
    assert [(c["author"], c["month"]) for c in december["cases"]] == [("h-1", "2026-12")]


def test_rewards_survive_a_rebuild_and_the_erasure_of_a_customer(store, policy, capsys, tmp_path):
    f = Feed()
    f.received("C1", at(2, "09:00"), customer="cust-A")
    lines = f.lines + [line for s in library() for line in s]
    lines.insert(1, submitted("AC", at(2, "12:00"), author="a-9", unit="unit-A", complaint_id="C1",
                              summary="Mrs A's bill, put right the same day"))
    lines.append(selected("AC", at(25)))
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["ingest", str(tmp_path / "events.jsonl")]) == 0

    def figures() -> dict:
        capsys.readouterr()
        assert main(["report", "--format", "json"]) == 0
        r = json.loads(capsys.readouterr().out)
        return {"rewards": r["rewards"], "cases": r["cases"]}

    def summary() -> str:
        capsys.readouterr()
        assert main(["history", "AC", "--format", "json"]) == 0
        return json.loads(capsys.readouterr().out)["events"][0]["data"]["summary"]

    before = figures()
    assert rewards(before)[("unit-A", "2026-11")] == ("500.00", 0, 1)  # AC (25 Nov) and A2 (30 Nov)
    assert main(["rebuild"]) == 0 and figures() == before
    # A case about a recorded complaint keeps its write-up sealed with that customer's key: the
    # erasure reaches it, and nothing else of the case.
    assert summary() == "Mrs A's bill, put right the same day"
    assert main(["erase", "cust-A"]) == 0 and figures() == before
    assert summary() == "[erased]"
    assert main(["rebuild", "--check"]) == 0 and "MATCHES" in capsys.readouterr().out
    capsys.readouterr()
    assert main(["history", "AC", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["case_id"] == "AC" and shown["state"]["round"] == "2026-Q4" and shown["state"]["reward"] == "100.00"
    assert [e["type"] for e in shown["events"]] == ["case.submitted", "case.selected"]
    assert main(["history", "AC"]) == 0 and "Case AC" in capsys.readouterr().out
    assert main(["report"]) == 0
    table = capsys.readouterr().out
    assert "rewards:" in table and "unit-A" in table and "SHORT" in table


def test_reward_amounts_follow_the_policy_version_in_force_at_the_selection(
        store, monkeypatch, capsys, tmp_path, replay_policy_file):
    (tmp_path / "nov.jsonl").write_text("\n".join([
        submitted("K1", at(2), unit="unit-A"), submitted("K2", at(3), author="h-2", unit="unit-A"),
        submitted("K3", at(4), author="h-3", unit="unit-B"), submitted("K4", at(5), author="h-4", unit="unit-B"),
        selected("K1", at(10)), selected("K2", at(11)), selected("K3", at(12))]) + "\n")
    assert main(["ingest", str(tmp_path / "nov.jsonl")]) == 0
    text = replay_policy_file.read_text(encoding="utf-8")
    v2 = text.replace('case_selected_reward = "100.00"', 'case_selected_reward = "150.00"').replace(
        'organisation_award = "500.00"', 'organisation_award = "800.00"')
    assert v2 != text
    (tmp_path / "v2.toml").write_text(v2, encoding="utf-8")
    assert main(["policy", "adopt", str(tmp_path / "v2.toml"), "--effective-from", "2026-12-01T00:00:00+08:00",
                 "--by", "wang.li"]) == 0
    (tmp_path / "dec.jsonl").write_text(selected("K4", "2026-12-03T10:00:00+08:00") + "\n")
    assert main(["ingest", str(tmp_path / "dec.jsonl")]) == 0
    capsys.readouterr()
    assert main(["report", "--format", "json"]) == 0
    got = rewards(json.loads(capsys.readouterr().out))
    assert got[("h-1", "2026-11")] == ("100.00", 1, 0) and got[("unit-A", "2026-11")] == ("500.00", 0, 1)
    assert got[("h-4", "2026-12")] == ("150.00", 1, 0) and got[("unit-B", "2026-12")] == ("800.00", 0, 1)
    monkeypatch.setenv("RECOVERY_POLICY_FILE", str(tmp_path / "v2.toml"))
    assert main(["rebuild"]) == 0
    capsys.readouterr()
    assert main(["report", "--format", "json"]) == 0
    assert rewards(json.loads(capsys.readouterr().out)) == got


def test_metrics_give_rewards_and_the_quota_by_month_without_per_person_labels(platform):
    from datetime import UTC, datetime

    from domain import clock
    from projections.metrics import KpiCollector

    outcomes(platform, [submitted("K1", at(2)), submitted("K2", at(3), author="h-2", unit="huaian-cs"),
                        submitted("K3", at(4), author="d-1", kind="department"),
                        selected("K1", at(10)), selected("K2", at(11))])
    platform.catch_up()
    previous = clock.use_clock(lambda: datetime(2026, 12, 15, tzinfo=UTC))
    try:
        families = {m.name: m for m in KpiCollector(platform.app, platform.view, platform.policy).collect()}
    finally:
        clock.use_clock(previous)
    def values(name: str) -> dict[tuple[str, ...], float]:
        return {tuple(s.labels.values()): s.value for s in families[name].samples}
    assert values("recovery_rewards_cny")[("previous", "case_selected")] == 200.0
    assert values("recovery_rewards_cny")[("previous", "organisation_award")] == 500.0
    assert values("recovery_rewards_cny")[("current", "case_selected")] == 0.0
    assert values("recovery_cases_submitted")[("previous", "dedicated_handler")] == 2
    assert values("recovery_cases_quota")[("previous", "dedicated_handler")] == 4
    assert values("recovery_cases_shortfall")[("previous", "dedicated_handler")] == 2
    assert values("recovery_cases_quota")[("previous", "department")] == 1
    assert all(set(s.labels) <= {"month", "reason", "kind"} for name in
               ("recovery_rewards_cny", "recovery_cases_submitted", "recovery_cases_quota", "recovery_cases_shortfall")
               for s in families[name].samples)
