"""SPEC §2: the envelope is checked before any state, with stable reason codes."""

import json

import pytest

from domain.envelope import parse_line
from domain.errors import BadAmount, InvalidEvent

GOOD = {"event_id": "src-1", "type": "complaint.compensated", "complaint_id": "C-1",
        "occurred_at": "2026-11-02T09:30:00+08:00",
        "actor": {"id": "emp-1", "role": "hotline_agent", "unit": "huaian-cs"},
        "data": {"amount": "150.00", "kind": "credit"}}


def parse(**changes):
    env = {**GOOD, **changes}
    return parse_line(json.dumps({k: v for k, v in env.items() if v is not ...}))


def test_a_valid_envelope_is_normalised_to_utc_and_two_decimals():
    env = parse(data={"amount": "20", "kind": "gift"})
    assert env.occurred_at.isoformat() == "2026-11-02T01:30:00+00:00"
    assert env.data["amount"] == "20.00" and str(env.amount) == "20"


@pytest.mark.parametrize("changes", [
    {"event_id": ...}, {"event_id": ""}, {"type": "complaint.sent_flowers"}, {"complaint_id": 12},
    {"occurred_at": "2026-11-02T09:30:00"}, {"occurred_at": "yesterday"}, {"actor": ...},
    {"actor": {"id": "emp-1"}}, {"data": {"amount": "10.00"}}, {"data": {"amount": "10.00", "kind": "bitcoin"}},
    {"type": "complaint.deadline_missed", "data": {}},
    {"type": "complaint.closed", "data": {"satisfaction": "satisfied", "retained": "yes"}},
    {"type": "complaint.assigned", "data": {"to": {}}},
])
def test_invalid_event(changes):
    with pytest.raises(InvalidEvent) as e:
        parse(**changes)
    assert e.value.reason == "invalid_event"


def test_not_json_is_invalid_event():
    with pytest.raises(InvalidEvent):
        parse_line("{not json")
    with pytest.raises(InvalidEvent):
        parse_line("[1, 2]")


@pytest.mark.parametrize("amount", [150.0, 150, "150.001", "0", "0.00", "-5.00", "1e2", " 10", "abc", None])
def test_bad_amount(amount):
    with pytest.raises(BadAmount) as e:
        parse(data={"amount": amount, "kind": "credit"})
    assert e.value.reason == "bad_amount"


def test_invalid_event_wins_over_bad_amount():
    with pytest.raises(InvalidEvent):
        parse(data={"amount": 12.5, "kind": "bitcoin"})


def test_missing_amount_is_invalid_event():
    with pytest.raises(InvalidEvent):
        parse(data={"kind": "credit"})


def test_unknown_extra_keys_are_tolerated():
    env = parse(data={"amount": "10.00", "kind": "credit", "ticket": "T-9"}, extra="x")
    assert "ticket" not in env.data


def test_received_defaults_are_filled_in():
    env = parse(type="complaint.received", data={
        "customer_id": "c", "customer_tier": "vip", "channel": "hotline", "category": "network",
        "region": "huaian", "responsible": {"handler": "h", "team_lead": "t", "department_head": "d"}})
    assert (env.data["urgency"], env.data["coordination"], env.data["issue_key"]) == ("normal", "none", "network")
