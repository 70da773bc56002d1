"""SPEC §2-3 rules held by the complaint aggregate."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from domain.complaint import Complaint
from domain.envelope import parse_envelope
from domain.errors import InvalidTransition, OverAuthority, RefundUnverified

AGENT = {"id": "emp-1", "role": "hotline_agent", "unit": "huaian-cs"}


def env(kind, data=None, at="2026-11-02T10:00:00+08:00", actor=AGENT):
    return parse_envelope({"event_id": f"e-{kind}-{at}", "type": f"complaint.{kind}", "complaint_id": "C-1",
                           "occurred_at": at, "actor": actor, "data": data or {}})


@pytest.fixture
def complaint(policy):
    received = env("received", {"customer_id": "c", "customer_tier": "standard", "channel": "hotline",
                                "category": "billing", "region": "huaian",
                                "responsible": {"handler": "h", "team_lead": "t", "department_head": "d"}},
                   at="2026-11-02T09:00:00+08:00")
    return Complaint.receive(received, policy, None)


def pay(amount, kind="credit", approver=None):
    data = {"amount": amount, "kind": kind}
    if approver:
        data["approved_by"] = approver
    return env("compensated", data)


def test_cannot_close_before_resolving(complaint, policy):
    with pytest.raises(InvalidTransition):
        complaint.handle(env("closed", {"satisfaction": "satisfied"}), policy)


def test_full_lifecycle_and_states(complaint, policy):
    complaint.handle(env("resolved", {"outcome": "resolved"}), policy)
    complaint.handle(env("resolved", {"outcome": "resolved"}), policy)  # a second resolve is allowed
    complaint.handle(env("closed", {"satisfaction": "satisfied"}), policy)
    for kind, data in [("compensated", {"amount": "10.00", "kind": "credit"}), ("assigned", {"to": {"handler": "x"}}),
                       ("apologised", {"mode": "verbal"}),
                       ("verified", {"liability": "company", "service_fault": False, "handling_fault": False}),
                       ("resolved", {"outcome": "resolved"}), ("closed", {"satisfaction": "neutral"})]:
        with pytest.raises(InvalidTransition):
            complaint.handle(env(kind, data), policy)
    # customers do escalate, come back and get called after closing
    complaint.handle(env("escalated", {"to": "regulator"}), policy)
    complaint.handle(env("repeated", {"channel": "hotline"}), policy)
    complaint.handle(env("responded", {"channel": "call"}), policy)
    complaint.handle(env("reopened", {"reason": "again"}), policy)
    with pytest.raises(InvalidTransition):
        complaint.handle(env("reopened", {}), policy)
    with pytest.raises(InvalidTransition):
        complaint.handle(env("closed", {"satisfaction": "satisfied"}), policy)  # reopened: resolve first
    complaint.handle(env("resolved", {"outcome": "resolved"}), policy)
    complaint.handle(env("closed", {"satisfaction": "satisfied"}), policy)


def test_refund_needs_a_prior_verification_with_company_or_shared_liability(complaint, policy):
    with pytest.raises(RefundUnverified):
        complaint.handle(pay("50.00", "refund"), policy)
    complaint.handle(env("verified", {"liability": "customer", "service_fault": False, "handling_fault": False}),
                     policy)
    with pytest.raises(RefundUnverified):
        complaint.handle(pay("50.00", "refund"), policy)
    complaint.handle(env("verified", {"liability": "shared", "service_fault": False, "handling_fault": False}), policy)
    complaint.handle(pay("50.00", "refund"), policy)
    assert complaint.compensated == Decimal("50.00")


def test_other_kinds_need_no_verification(complaint, policy):
    complaint.handle(pay("30.00", "gift"), policy)


def test_split_compensation_over_the_limit_is_refused(complaint, policy):
    complaint.handle(pay("60.00"), policy)
    with pytest.raises(OverAuthority):
        complaint.handle(pay("40.01", "gift"), policy)  # every kind counts, cumulatively
    complaint.handle(pay("40.00"), policy)  # exactly at the limit is allowed
    assert complaint.compensated == Decimal("100.00")


def test_approver_given_sets_the_limit(complaint, policy):
    complaint.handle(pay("1000.00", approver={"id": "boss", "role": "department_head"}), policy)
    with pytest.raises(OverAuthority):
        complaint.handle(pay("0.01", approver={"id": "boss", "role": "department_head"}), policy)
    complaint.handle(pay("5000.00", approver={"id": "ceo", "role": "executive"}), policy)


def test_refund_unverified_wins_over_over_authority(complaint, policy):
    with pytest.raises(RefundUnverified):
        complaint.handle(pay("5000.00", "refund"), policy)


def test_escalation_beyond_the_branch_upgrades(complaint, policy):
    complaint.handle(env("escalated", {"to": "province"}), policy)
    complaint.handle(env("escalated", {"to": "department"}), policy)
    upgrades = [e.upgrades for e in complaint.collect_events() if type(e).__name__ == "Escalated"]
    assert upgrades == [True, False]


def test_contacts_in_quiet_hours_are_recorded_as_violations(complaint, policy):
    complaint.handle(env("responded", {"channel": "call"}, at="2026-11-02T22:00:00+08:00"), policy)
    complaint.handle(env("responded", {"channel": "call", "customer_requested_time": True},
                         at="2026-11-02T23:00:00+08:00"), policy)
    complaint.handle(env("resolved", {"outcome": "resolved"}, at="2026-11-03T08:00:00+08:00"), policy)
    flags = [e.quiet_hours_violation for e in complaint.collect_events() if hasattr(e, "quiet_hours_violation")]
    assert flags == [True, False, False]


def test_deadline_missed_is_stamped_with_the_deadline(complaint):
    assert complaint.is_overdue(datetime(2026, 11, 5, tzinfo=UTC))
    complaint.miss_deadline()
    event = complaint.collect_events()[-1]
    assert event.occurred_at == complaint.deadline and event.actor["role"] == "system"
    assert not complaint.is_overdue(datetime(2026, 11, 6, tzinfo=UTC))
