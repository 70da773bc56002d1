"""SPEC §2 limits: no line, however hostile, stops the platform or poisons its store.

Every refusal is a reason code (invalid_event before bad_amount), never a crash; a refused line is
stored in a form every store accepts.
"""

import base64
import hashlib
import json
import time
from datetime import UTC, datetime

import pytest

from domain.envelope import parse_envelope, parse_line
from domain.errors import BadAmount, InvalidEvent
from domain.rawline import storable

MIB = 1024 * 1024
RESPONSIBLE = {"handler": "h-1", "team_lead": "tl-1", "department_head": "dh-1"}
RECEIVED = {"event_id": "src-1", "type": "complaint.received", "complaint_id": "C-1",
            "occurred_at": "2026-11-02T09:30:00+08:00",
            "actor": {"id": "emp-1", "role": "hotline_agent", "unit": "huaian-cs"},
            "data": {"customer_id": "cust-1", "customer_tier": "standard", "channel": "hotline",
                     "category": "billing", "region": "huaian", "responsible": RESPONSIBLE}}


def received(**data):
    return {**RECEIVED, "data": {**RECEIVED["data"], **data}}


def compensated(amount):
    return {**RECEIVED, "type": "complaint.compensated", "data": {"amount": amount, "kind": "credit"}}


def line(env, **changes):
    return json.dumps({**env, **changes})


def refused(raw, **kwargs):
    with pytest.raises(InvalidEvent) as e:
        parse_line(raw, **kwargs)
    assert e.value.reason == "invalid_event"
    return e.value.message


# Size, encoding, NUL, surrogates, depth

def test_a_line_longer_than_1_mib_is_refused_before_it_is_parsed():
    padded = line(received(summary="")).encode()
    too_long = padded[:-3] + b'"' + b" " * (MIB + 1 - len(padded)) + b"}}"
    assert len(too_long) == MIB + 1
    assert "1 MiB" in refused(too_long)
    assert "1 MiB" in refused(b"{" * (10 * MIB))  # not parsed: no depth or JSON error
    assert "1 MiB" in refused("中" * (MIB // 3 + 1))  # a str is measured in UTF-8 bytes


def test_a_line_of_exactly_1_mib_is_not_refused_for_its_size():
    env = line(received())
    exact = env[:-2] + " " * (MIB - len(env)) + "}}"
    assert len(exact.encode()) == MIB
    assert parse_line(exact + "\n").event_id == "src-1"  # the line ending is not counted


def test_bytes_that_are_not_utf8_are_refused():
    env = line(received(summary="ok")).encode()
    assert "not UTF-8" in refused(env.replace(b"ok", b"\xff\xfe"))
    assert "not UTF-8" in refused(env.replace(b"ok", b"\xed\xa0\x80"))  # an encoded surrogate
    assert "not UTF-8" in refused(line(received()).encode("utf-16"))


def test_a_nul_in_an_id_is_refused_raw_or_escaped():
    assert "NUL" in refused(line(RECEIVED).replace("src-1", "src\x00-1").encode())
    assert "event_id: holds a NUL" in refused(line(RECEIVED, event_id="src\x00-1"))  # JSON \u0000


def test_a_nul_anywhere_is_refused_even_in_an_unknown_key():
    assert "NUL" in refused(line(received(extra={"deep": ["x\x00"]})))
    assert "NUL" in refused(line({**RECEIVED, "k\x00": 1}))


@pytest.mark.parametrize("env", [
    {**RECEIVED, "event_id": "src-\ud800"},
    received(summary="fine \udfff text"),
    received(responsible={**RESPONSIBLE, "handler": "\udc00"}),
    {**RECEIVED, "\ud83d": "a key"},
], ids=["id", "summary", "nested", "key"])
def test_a_lone_surrogate_is_refused(env):
    escaped = json.dumps(env)  # ensure_ascii: the surrogate is sent as \udXXX
    assert "\\ud" in escaped
    assert "lone surrogate" in refused(escaped)
    assert "lone surrogate" in refused(json.dumps(env, ensure_ascii=False))  # raw in a str


def test_a_surrogate_pair_is_one_character_and_fine():
    assert parse_line(json.dumps(received(summary="\U0001F600"))).data["summary"] == "\U0001F600"


def test_100000_levels_of_nesting_are_refused_quickly():
    for deep in ("[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000,
                 line(received(extra="X")).replace('"X"', "[" * 100_000 + "]" * 100_000)):
        start = time.monotonic()
        assert "deeper than 32" in refused(deep)
        assert time.monotonic() - start < 1


def test_32_levels_are_allowed_and_33_refused():
    def nested(levels):  # the envelope is level 1, data 2, extra 3...
        return line(received(extra="X")).replace('"X"', "[" * (levels - 2) + "]" * (levels - 2))
    assert parse_line(nested(32)).event_id == "src-1"
    assert "deeper than 32" in refused(nested(33))


def test_an_already_decoded_envelope_is_held_to_the_same_limits():
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(InvalidEvent, match="deeper than 32"):
        parse_envelope(received(extra=deep))
    with pytest.raises(InvalidEvent, match="NUL"):
        parse_envelope(received(summary="a\x00"))


def test_brackets_inside_strings_do_not_count_as_nesting():
    env = parse_line(line(received(summary="{[" * 100 + '"\\' * 10)))
    assert env.data["summary"].startswith("{[{[")


# Identifiers

@pytest.mark.parametrize("where", [
    "event_id", "complaint_id", "actor.id", "actor.role", "actor.unit", "data.customer_id", "data.region",
    "data.issue_key", "data.repeat_of", "data.unrecorded_by_unit", "data.responsible.handler",
    "data.responsible.team_lead", "data.responsible.department_head", "data.responsible.channel_supervisor",
])
@pytest.mark.parametrize("value,ok", [
    ("x" * 128, True), ("中" * 128, True), ("x" * 129, False), ("", False),
    ("emp\n1", False), ("emp\t1", False), ("emp\x7f1", False), ("emp\x851", False),
], ids=["128", "128-cjk", "129", "empty", "newline", "tab", "del", "c1"])
def test_identifiers_are_1_to_128_characters_without_control_characters(where, value, ok):
    env = json.loads(line(received()))
    *parents, key = where.split(".")
    target = env
    for p in parents:
        target = target[p]
    target[key] = value
    if ok:
        assert parse_line(json.dumps(env)).event_id == env["event_id"]
    else:
        assert where in refused(json.dumps(env))


@pytest.mark.parametrize("env,where", [
    ({**RECEIVED, "type": "complaint.assigned", "data": {"to": {"handler": "h\n2"}}}, "data.to.handler"),
    ({**RECEIVED, "type": "complaint.assigned", "data": {"to": {"team_lead": "t" * 129}}}, "data.to.team_lead"),
    ({**compensated("10.00"), "data": {"amount": "10.00", "kind": "credit",
                                       "approved_by": {"id": "a" * 129, "role": "team_lead"}}},
     "data.approved_by.id"),
    ({**compensated("10.00"), "data": {"amount": "10.00", "kind": "credit",
                                       "approved_by": {"id": "a", "role": "team\rlead"}}},
     "data.approved_by.role"),
    ({**RECEIVED, "type": "complaint.repeated", "data": {"channel": "x" * 129}}, "data.channel"),
])
def test_the_people_named_and_the_repeat_channel_are_identifiers(env, where):
    assert where in refused(json.dumps(env))


def test_a_5000_character_region_is_refused():
    assert "data.region" in refused(line(received(region="r" * 5000)))


# Free text

@pytest.mark.parametrize("env", [
    lambda text: received(summary=text),
    lambda text: {**RECEIVED, "type": "complaint.assigned", "data": {"to": {"handler": "h-2"}, "reason": text}},
    lambda text: {**RECEIVED, "type": "complaint.verified", "data": {
        "liability": "company", "service_fault": False, "handling_fault": False, "notes": text}},
    lambda text: {**RECEIVED, "type": "complaint.resolved", "data": {"outcome": "resolved", "summary": text}},
    lambda text: {**RECEIVED, "type": "complaint.reopened", "data": {"reason": text}},
], ids=["received.summary", "assigned.reason", "verified.notes", "resolved.summary", "reopened.reason"])
def test_free_text_is_at_most_4000_characters(env):
    assert parse_line(json.dumps(env("說" * 4000))).event_id == "src-1"
    assert parse_line(json.dumps(env("a\nb\tc"))).event_id == "src-1"  # free text may hold line breaks
    refused(json.dumps(env("x" * 4001)))


# occurred_at

@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_a_time_that_overflows_utc_is_refused(at):
    assert "occurred_at" in refused(line(RECEIVED, occurred_at=at))


def test_nothing_before_2000_is_accepted():
    assert "before 2000" in refused(line(RECEIVED, occurred_at="1999-12-31T23:59:59Z"))
    assert "before 2000" in refused(line(RECEIVED, occurred_at="2000-01-01T07:59:59+08:00"))
    assert parse_line(line(RECEIVED, occurred_at="2000-01-01T00:00:00Z")).occurred_at == \
        datetime(2000, 1, 1, tzinfo=UTC)
    assert parse_line(line(RECEIVED, occurred_at="9999-12-31T23:59:59+00:00")).occurred_at.year == 9999


def test_an_event_after_not_after_is_refused_naming_both_times():
    not_after = datetime(2026, 11, 30, 8, 5, tzinfo=UTC)
    message = refused(line(RECEIVED, occurred_at="2999-01-01T00:00:00+00:00"), not_after=not_after)
    assert "2999-01-01T00:00:00+00:00" in message and "2026-11-30T08:05:00+00:00" in message
    assert parse_line(line(RECEIVED, occurred_at="2026-11-30T16:05:00+08:00"), not_after=not_after)
    refused(line(RECEIVED, occurred_at="2026-11-30T16:05:00.000001+08:00"), not_after=not_after)
    assert parse_line(line(RECEIVED, occurred_at="2999-01-01T00:00:00+00:00"))  # no bound given


# Numbers

@pytest.mark.parametrize("number", ["9" * 10_000, "-" + "9" * 10_000, "1e999999", "-1e400", "NaN", "Infinity"])
def test_a_number_that_is_no_amount_cannot_crash_the_parser(number):
    refused(line(received(extra="X")).replace('"X"', number))


def test_ordinary_numbers_in_unknown_keys_are_tolerated():
    assert parse_line(line(received(score=12, ratio=0.5, big=10**100))).unknown_fields


# Amounts

@pytest.mark.parametrize("amount", ["10.00\n", "10\n", "10000000.01", "99999999999999999999.99",
                                    "1" + "0" * 5000, "0", "0.00", "-1.00", " 10.00", "１０.00"])
def test_bad_amount(amount):
    with pytest.raises(BadAmount) as e:
        parse_line(line(compensated(amount)))
    assert e.value.reason == "bad_amount"


@pytest.mark.parametrize("amount,stored", [("10000000.00", "10000000.00"), ("0.01", "0.01"), ("007.5", "7.50")])
def test_amounts_up_to_ten_million_are_accepted(amount, stored):
    assert parse_line(line(compensated(amount))).data["amount"] == stored


def test_every_invalid_event_check_comes_before_bad_amount():
    refused(line(compensated("99999999999999999999.99"), event_id="x" * 129))
    refused(line(compensated("10.00\n"), occurred_at="1999-01-01T00:00:00Z"))
    refused(json.dumps({**compensated("0"), "data": {"amount": "0", "kind": "credit", "reason": "r" * 4001}}))


# Unknown keys: tolerated, listed, never in data

def test_unknown_keys_are_listed_by_type_and_path():
    env = {**received(coordinaton="cross_province", responsible={**RESPONSIBLE, "deputy": "d-1"}),
           "trace_id": "t-1", "actor": {**RECEIVED["actor"], "shift": "night"}}
    parsed = parse_line(json.dumps(env))
    assert set(parsed.unknown_fields) == {"complaint.received.trace_id", "complaint.received.actor.shift",
                                          "complaint.received.coordinaton",
                                          "complaint.received.responsible.deputy"}
    assert parsed.data == parse_line(line(received())).data
    assert "deputy" not in parsed.data["responsible"] and "shift" not in parsed.actor


def test_unknown_keys_of_assigned_and_compensated_people():
    assigned = {**RECEIVED, "type": "complaint.assigned", "data": {"to": {"handler": "h-2", "desk": 4}}}
    assert parse_line(json.dumps(assigned)).unknown_fields == ("complaint.assigned.to.desk",)
    paid = {**compensated("10.00"), "data": {"amount": "10.00", "kind": "credit",
                                             "approved_by": {"id": "a", "role": "team_lead", "at": 1}}}
    assert parse_line(json.dumps(paid)).unknown_fields == ("complaint.compensated.approved_by.at",)


def test_a_valid_envelope_has_no_unknown_fields():
    assert parse_line(line(received())).unknown_fields == ()


# Whatever the line, a refusal and never a crash

@pytest.mark.parametrize("raw", [
    b"", b"\n", b"\xef\xbb\xbf", b"\x00", "\ud800", b"\xff" * 100, "[" * 33, "[" * 40 + "]" * 30,
    '"' + '\\"' * 1000, "{" * 50 + '"' * 50, b"\x80abc", "1" * 5000, '{"a": 1e-999999}', "null", "[]",
])
def test_hostile_lines_are_refused_as_invalid_event(raw):
    refused(raw)


# The stored form of a refused line

def test_a_clean_line_is_stored_as_it_is():
    raw = line(received(summary="投诉"))
    stored = storable(raw.encode())
    assert (stored.text, stored.original_b64) == (raw, None)
    assert stored.length == len(raw.encode()) and stored.sha256 == hashlib.sha256(raw.encode()).hexdigest()
    assert storable(raw) == stored


@pytest.mark.parametrize("raw,text", [
    (b'{"id": "a\x00b"}', '{"id": "a\\x00b"}'),
    ('{"id": "a\ud800b"}', '{"id": "a\\ud800b"}'),
    (b'{"id": "a\xffb"}', '{"id": "a\ufffdb"}'),
    (b'{"id": "a\xed\xa0\x80b"}', '{"id": "a\\ud800b"}'),
], ids=["nul", "surrogate", "bad-byte", "encoded-surrogate"])
def test_nul_surrogates_and_bad_bytes_are_made_visible_and_the_original_kept(raw, text):
    stored = storable(raw)
    original = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    assert stored.text == text
    assert base64.b64decode(stored.original_b64) == original
    assert stored.length == len(original) and stored.sha256 == hashlib.sha256(original).hexdigest()
    assert "\x00" not in stored.text and stored.text.encode("utf-8")
    json.dumps({"line": stored.text}, ensure_ascii=False).encode("utf-8")


def test_a_line_over_1_mib_keeps_its_first_64_kib_its_length_and_its_hash():
    raw = b'{"summary": "x' + "中".encode() * (4 * MIB) + b'"}'  # 64 KiB falls inside a 中
    stored = storable(raw)
    assert stored.length == len(raw) and stored.sha256 == hashlib.sha256(raw).hexdigest()
    assert base64.b64decode(stored.original_b64) == raw[:64 * 1024]
    assert stored.text.encode() == raw[:64 * 1024 - 2]  # the cut does not split a character


def test_a_long_line_of_nul_is_cut_and_escaped():
    stored = storable(b"\x00" * (MIB + 1))
    assert stored.text == "\\x00" * (64 * 1024) and stored.length == MIB + 1
