"""The hostile corpus (SPEC §2 limits), through the whole platform on both stores.

Each hostile line sits between two valid `received` lines. No line stops the batch or poisons the
store: every line has exactly one outcome, a hostile line is refused with its reason code (the
envelope before the amount), the valid lines beside it are accepted, and afterwards the store
catches up, reports, rebuilds to the same figures and tells a complaint's history. Re-running the
file changes no count; --retry-refused evaluates the refused lines again without counting them twice.

Identifiers that merely look dangerous (SQL, shell) are valid identifiers under SPEC §2: they are
accepted and stored as the text they are, never executed.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest
from support.feed import Feed

from app.platform import Platform
from domain.complaint import complaint_uuid
from domain.policy import load_policy
from projections.history import complaint_history
from projections.report import build_report

AT = "2026-11-02T09:00:00+08:00"
HOME = "C-HOME"  # a valid complaint the hostile follow-ups name
SQL = "'; DROP TABLE recovery_inbound; --"
SHELL = "$(rm -rf /)"
DIGITS = "9" * 10_000

_templates = Feed()
RECEIVED = _templates.received("C-TEMPLATE", AT)
RESPONDED = _templates.envelope("responded", HOME, AT, {"channel": "call"})
COMPENSATED = _templates.envelope("compensated", HOME, AT, {"amount": "10.00", "kind": "credit"})


def received(name: str, **data: Any) -> dict[str, Any]:
    env = copy.deepcopy(RECEIVED)
    env.update(event_id=f"hx-{name}", complaint_id=f"C-HX-{name}")
    env["data"].update(data)
    return env


def follow_up(template: dict[str, Any], name: str, **data: Any) -> dict[str, Any]:
    env = copy.deepcopy(template)
    env["event_id"] = f"hx-{name}"
    env["data"].update(data)
    return env


def with_(env: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {**env, **top}


def responsible(handler: str) -> dict[str, str]:
    return {"handler": handler, "team_lead": "tl-1", "department_head": "dh-1"}


def dumps(env: Any, **kw: Any) -> str:
    return json.dumps(env, **kw)


def paid(name: str, amount: Any) -> str:
    return dumps(follow_up(COMPENSATED, name, amount=amount))


INVALID, BAD_AMOUNT = ("rejected", "invalid_event"), ("rejected", "bad_amount")
BLANK, ACCEPTED = ("blank", None), ("accepted", None)

# (name, line, (result, reason)). A line is str, or bytes where the bytes themselves are the point.
CORPUS: list[tuple[str, str | bytes, tuple[str, str | None]]] = [
    # Shape
    ("nested-100000-arrays", '{"event_id": "hx-deep", "data": ' + "[" * 100_000 + "]" * 100_000 + "}", INVALID),
    ("nested-100000-objects", '{"a": ' * 100_000 + "1" + "}" * 100_000, INVALID),
    ("empty-object", "{}", INVALID),
    ("json-array", dumps([received("in-array")]), INVALID),
    ("null", "null", INVALID),
    ("bare-string", '"complaint.received"', INVALID),
    ("not-json", '{"event_id": "hx-not-json", ', INVALID),
    ("unknown-type", dumps(with_(received("unknown-type"), type="complaint.teleported")), INVALID),
    ("sender-deadline-missed", dumps(with_(follow_up(RESPONDED, "sender-missed"), type="complaint.deadline_missed")),
     INVALID),
    ("nan-literal", dumps(received("nan", score="X")).replace('"X"', "NaN"), INVALID),
    ("infinity-literal", dumps(received("inf", score="X")).replace('"X"', "-Infinity"), INVALID),
    # Timestamps
    ("year-1-plus-8", dumps(with_(received("y1p8"), occurred_at="0001-01-01T00:00:00+08:00")), INVALID),
    ("year-1-minus-8", dumps(with_(received("y1m8"), occurred_at="0001-01-01T00:00:00-08:00")), INVALID),
    ("year-9999-plus-8", dumps(with_(received("y9999p8"), occurred_at="9999-12-31T23:59:59+08:00")), INVALID),
    ("year-9999-minus-8", dumps(with_(received("y9999m8"), occurred_at="9999-12-31T23:59:59-08:00")), INVALID),
    ("1999-12-31", dumps(with_(received("y1999"), occurred_at="1999-12-31T23:59:59+08:00")), INVALID),
    ("no-offset", dumps(with_(received("no-offset"), occurred_at="2026-11-02T09:00:00")), INVALID),
    ("garbage-time", dumps(with_(received("garbage-time"), occurred_at="yesterday at noon")), INVALID),
    ("numeric-time", dumps(with_(received("numeric-time"), occurred_at=1_793_000_000)), INVALID),
    # Encodings
    ("surrogate-escape-complaint-id", dumps(with_(received("sur-cid"), complaint_id="C-\ud800")), INVALID),
    ("surrogate-escape-summary", dumps(received("sur-summary", summary="a\ud800b")), INVALID),
    ("surrogate-raw-summary", dumps(received("sur-raw", summary="a\udfffb"), ensure_ascii=False), INVALID),
    ("nul-raw-event-id", dumps(with_(received("nul-raw-eid"), event_id="hx-\x00")).replace("\\u0000", "\x00"), INVALID),
    ("nul-escape-event-id", dumps(with_(received("nul-esc-eid"), event_id="hx-\x00-esc")), INVALID),
    ("nul-raw-region", dumps(received("nul-raw-region", region="hu\x00aian")).replace("\\u0000", "\x00").encode(),
     INVALID),
    ("nul-escape-region", dumps(received("nul-esc-region", region="hu\x00aian")), INVALID),
    ("control-in-id", dumps(with_(received("ctl"), complaint_id="C-\x1b[31m")), INVALID),
    ("not-utf8-ff", dumps(received("ff", summary="@@")).encode().replace(b"@@", b"\xff\xfe"), INVALID),
    ("not-utf8-overlong", dumps(received("overlong", summary="@@")).encode().replace(b"@@", b"\xc0\xaf"), INVALID),
    ("not-utf8-encoded-surrogate", dumps(received("enc-sur", summary="@@")).encode().replace(b"@@", b"\xed\xa0\x80"),
     INVALID),
    ("latin-1", dumps(received("latin1", summary="café"), ensure_ascii=False).encode("latin-1"), INVALID),
    # Lengths
    ("event-id-10000", dumps(with_(received("eid-long"), event_id="e" * 10_000)), INVALID),
    ("complaint-id-10000", dumps(with_(received("cid-long"), complaint_id="C" * 10_000)), INVALID),
    ("region-5000", dumps(received("region-long", region="r" * 5_000)), INVALID),
    ("handler-5000", dumps(received("handler-long", responsible=responsible("h" * 5_000))), INVALID),
    ("summary-4001", dumps(follow_up(RESPONDED, "summary-long", summary="s" * 4_001)), INVALID),
    ("line-10mb", dumps(received("ten-mb", summary="x" * 10_000_000)), INVALID),
    # Amounts: the envelope first (invalid_event), then the amount (bad_amount)
    ("amount-above-ten-million", paid("amount-huge", "99999999999999999999.99"), BAD_AMOUNT),
    ("amount-trailing-newline", paid("amount-newline", "10.00\n"), BAD_AMOUNT),
    ("amount-exponent", paid("amount-exp", "1e5"), BAD_AMOUNT),
    ("amount-number", paid("amount-number", 10), BAD_AMOUNT),
    ("amount-negative", paid("amount-negative", "-5.00"), BAD_AMOUNT),
    ("amount-10000-digit-string", paid("amount-digit-string", "1" + "0" * 10_000), BAD_AMOUNT),
    # A 10,000-digit number is refused by the parser's number limit (MAX_INT_DIGITS) before any
    # field is looked at: invalid_event, which comes before bad_amount.
    ("amount-10000-digit-number", paid("amount-digits", "X").replace('"X"', DIGITS), INVALID),
    ("amount-nan", paid("amount-nan", "X").replace('"X"', "NaN"), INVALID),
    ("number-10000-digits-elsewhere", dumps(received("digits", extra="X")).replace('"X"', DIGITS), INVALID),
    ("event-id-10000-digit-number", dumps(with_(received("eid-digits"), event_id="X")).replace('"X"', DIGITS), INVALID),
    # Dangerous-looking identifiers are identifiers: stored as text, never executed
    ("sql-injection-ids", dumps(with_(received("sql"), event_id=SQL, complaint_id=SQL)), ACCEPTED),
    ("shell-injection-ids", dumps(with_(received("shell", region="`reboot`"), event_id=SHELL, complaint_id=SHELL)),
     ACCEPTED),
    ("sql-injection-unknown-complaint", dumps(with_(follow_up(RESPONDED, "sql-unknown"), complaint_id="x' OR '1'='1")),
     ("rejected", "unknown_complaint")),
    ("sql-injection-summary", dumps(follow_up(RESPONDED, "sql-summary", summary="Robert'); DROP TABLE kpi_daily;--")),
     ACCEPTED),
    # Blank lines are not envelopes
    ("blank", "", BLANK),
    ("whitespace-only", " \t  ", BLANK),
]


def corpus_file(cases=CORPUS, at_minute: int = 0) -> tuple[list[str | bytes], list[tuple[str, tuple[str, str | None]]]]:
    """The corpus as one file: the home complaint, then each hostile line between two valid ones.
    Returns the lines and, per line, its name and expected (result, reason)."""
    f = Feed()
    f.received(HOME, "2026-11-02T08:00:00+08:00")
    lines: list[str | bytes] = [f.lines[-1]]
    expected: list[tuple[str, tuple[str, str | None]]] = [("home", ACCEPTED)]
    for i, (name, line, outcome) in enumerate(cases):
        minute = at_minute + i
        for side, hour in (("before", 9), ("after", 10)):
            f.received(f"C-OK-{i}-{side}", f"2026-11-02T{hour:02d}:{minute % 60:02d}:{minute // 60:02d}+08:00")
            if side == "before":
                lines += [f.lines[-1], line]
                expected += [(f"{name} (before)", ACCEPTED), (name, outcome)]
            else:
                lines.append(f.lines[-1])
                expected.append((f"{name} (after)", ACCEPTED))
    return lines, expected


def tally(outcomes) -> Counter:
    return Counter(o.result for o in outcomes)


def report(platform: Platform) -> dict[str, Any]:
    platform.catch_up()
    return build_report(platform.app.dialect, platform.app.datastore, platform.policy, None, None)


def mismatches(outcomes, expected) -> list[str]:
    return [f"{name}: expected {want}, got {(o.result, o.reason)} {o.message!r:.120}"
            for o, (name, want) in zip(outcomes, expected) if (o.result, o.reason) != want]


@pytest.fixture(scope="module")
def corpus():
    return corpus_file()


def test_every_hostile_line_has_one_outcome_and_its_reason_code(platform, corpus):
    lines, expected = corpus
    outcomes = platform.ingest_lines(lines)
    counts = tally(outcomes)
    assert len(outcomes) == len(lines)
    assert counts["accepted"] + counts["duplicate"] + counts["rejected"] + counts["blank"] == len(lines)
    assert mismatches(outcomes, expected) == []
    r = report(platform)["ingest"]
    assert (r["accepted"], r["duplicates"], r["rejected"]) == (counts["accepted"], 0, counts["rejected"])
    assert r["rejected_by_reason"] == dict(Counter(o.reason for o in outcomes if o.result == "rejected"))


def test_after_the_corpus_the_store_catches_up_reports_rebuilds_and_tells_history(platform, corpus):
    lines, _ = corpus
    platform.ingest_lines(lines)
    platform.catch_up()
    before = report(platform)
    assert before["totals"]["received"] == 2 * len(CORPUS) + 3  # the valid ones beside, home, SQL, shell
    applied = platform.rebuild()
    assert applied > 0
    after = report(platform)
    assert after["totals"] == before["totals"]
    assert after["penalties"] == before["penalties"] and after["ingest"] == before["ingest"]
    home = complaint_history(platform.app, platform.policy, HOME, None)
    assert home["complaint_id"] == HOME
    assert [e["type"] for e in home["events"]] == ["complaint.received", "complaint.responded"]
    assert complaint_history(platform.app, platform.policy, "C-OK-0-after", None)["state"]["status"] == "open"


def test_dangerous_looking_ids_are_kept_as_text_and_every_table_survives(platform, corpus):
    lines, expected = corpus
    platform.ingest_lines(lines)
    for cid in (SQL, SHELL):
        history = complaint_history(platform.app, platform.policy, cid, None)
        assert history["complaint_id"] == cid and history["events"][0]["event_id"] == cid
    summary = complaint_history(platform.app, platform.policy, HOME, None)["events"][1]["data"]["summary"]
    assert summary == "Robert'); DROP TABLE kpi_daily;--"
    assert report(platform)["ingest"]["accepted"] == sum(1 for _, want in expected if want == ACCEPTED)


def test_re_running_the_corpus_changes_no_count(platform, corpus):
    lines, _ = corpus
    platform.ingest_lines(lines)
    first = report(platform)["ingest"]
    again = platform.ingest_lines(lines, batch_size=25)
    blank = sum(1 for line in lines if not line.strip())
    assert tally(again) == Counter({"duplicate": len(lines) - blank, "blank": blank})
    second = report(platform)["ingest"]
    assert (second["accepted"], second["rejected"]) == (first["accepted"], first["rejected"])
    assert second["rejected_by_reason"] == first["rejected_by_reason"]
    assert second["duplicates"] == first["duplicates"] + len(lines) - blank


def test_retry_refused_evaluates_the_refused_lines_again_without_counting_them_twice(platform, corpus):
    lines, expected = corpus
    first_outcomes = platform.ingest_lines(lines)
    first = report(platform)
    retried = platform.ingest_lines(lines, retry_refused=True)
    assert len(retried) == len(lines)
    for name, before, after in zip((n for n, _ in expected), first_outcomes, retried):
        if before.result == "rejected":
            assert (after.result, after.reason) == ("rejected", before.reason), name
        elif before.result == "accepted":
            assert after.result == "duplicate", name
        else:
            assert after.result == "blank", name
    second = report(platform)
    assert second["ingest"]["rejected"] == first["ingest"]["rejected"]
    assert second["ingest"]["rejected_by_reason"] == first["ingest"]["rejected_by_reason"]
    assert second["ingest"]["accepted"] == first["ingest"]["accepted"]
    assert second["totals"] == first["totals"]


def test_a_5000_character_handler_cannot_poison_a_missed_deadline(platform):
    """A vip complaint misses its deadline while hostile lines name a 5,000-character handler for
    it and for another vip complaint: the miss is recorded against the valid handler, and the store
    still reports and rebuilds."""
    long = "h" * 5_000
    f = Feed()
    f.received("C-VIP", "2026-11-02T09:00:00+08:00", tier="vip")  # due 17:00
    f.received("C-VIP-LONG", "2026-11-02T09:01:00+08:00", tier="vip", responsible=responsible(long))
    f.envelope("assigned", "C-VIP", "2026-11-02T10:00:00+08:00", {"to": {"handler": long}})
    f.envelope("responded", "C-VIP", "2026-11-02T11:00:00+08:00", {"channel": "call", "summary": "s" * 4_000})
    f.received("C-LATER", "2026-11-03T09:00:00+08:00")  # moves the event-time watcher past 17:00
    outcomes = platform.ingest_lines(f.lines)
    assert [(o.result, o.reason) for o in outcomes] == [
        ACCEPTED, INVALID, INVALID, ACCEPTED, ACCEPTED]
    stream = [type(e).__name__ for e in platform.app.events.get(complaint_uuid("C-VIP"))]
    assert stream == ["Received", "Responded", "DeadlineMissed"]
    before = report(platform)
    assert before["totals"]["deadline_missed"] == 1
    assert {p["who"] for p in before["penalties"]} == {"h-1", "tl-1"}
    platform.rebuild()
    after = report(platform)
    assert (after["totals"], after["penalties"]) == (before["totals"], before["penalties"])
    history = complaint_history(platform.app, platform.policy, "C-VIP", None)
    assert history["state"]["deadline_missed_recorded"] and history["state"]["responsible"]["handler"] == "h-1"
    assert {p["who"] for p in history["penalties"]} == {"h-1", "tl-1"}


def test_a_responded_event_dated_2999_is_refused_by_the_future_guard(store_url):
    """Under the shipped defaults (max_future_minutes 5) a mistyped year is invalid_event and does
    not move the watcher's clock: the vip complaint before it is not missed."""
    p = Platform(store_url, load_policy())
    try:
        assert p.policy.max_future_minutes == 5
        f = Feed()
        f.received("C-VIP", "2026-11-02T09:00:00+08:00", tier="vip")
        f.envelope("responded", "C-VIP", "2999-11-02T10:00:00+08:00", {"channel": "call"})
        f.received("C-NEXT", "2026-11-02T09:05:00+08:00")
        outcomes = p.ingest_lines(f.lines)
        assert [(o.result, o.reason) for o in outcomes] == [ACCEPTED, INVALID, ACCEPTED]
        assert "2999" in outcomes[1].message
        assert [type(e).__name__ for e in p.app.events.get(complaint_uuid("C-VIP"))] == ["Received"]
        before = report(p)
        assert before["totals"]["deadline_missed"] == 0
        assert before["ingest"]["rejected_by_reason"] == {"invalid_event": 1}
        p.rebuild()
        assert report(p)["totals"] == before["totals"]
    finally:
        p.close()


# A refused line naming a complaint id (on any line but a readable `received`) or a customer id
# (on a `received`) that holds a lone surrogate: sealing its dead letter looks the id up, which
# once raised UnicodeEncodeError out of ingest_lines (found by the fuzz test).
_surrogate_follow_up = dumps(with_(follow_up(RESPONDED, "sur-follow-up"), complaint_id="C-\ud800"))
NAMED_SURROGATES = [
    ("surrogate-escape-complaint-id-on-a-follow-up", _surrogate_follow_up),
    ("surrogate-raw-complaint-id-on-a-follow-up", _surrogate_follow_up.replace("\\ud800", "\ud800")),
    ("surrogate-utf8-bytes-complaint-id-on-a-follow-up",
     _surrogate_follow_up.replace("\\ud800", "@@").encode().replace(b"@@", b"\xed\xa0\x80")),
    ("surrogate-complaint-id-on-an-unknown-type",
     dumps(with_(received("sur-unknown-type"), type="complaint.teleported", complaint_id="C-\ud800"))),
    ("surrogate-escape-customer-id-on-a-received", dumps(received("sur-customer", customer_id="cust-\ud800"))),
]


@pytest.mark.parametrize("name,line", NAMED_SURROGATES, ids=[name for name, _ in NAMED_SURROGATES])
def test_a_lone_surrogate_in_a_named_id_is_refused_not_raised(platform, name, line):
    lines, expected = corpus_file([(name, line, INVALID)])
    outcomes = platform.ingest_lines(lines)
    assert mismatches(outcomes, expected) == []
    r = report(platform)["ingest"]
    assert (r["accepted"], r["rejected"]) == (3, 1)
