"""SPEC §3.1: tier and urgency limits, coordination in working days, quiet hours."""

from dataclasses import replace
from datetime import date, datetime

import pytest

from domain.timelimits import deadline_for, in_quiet_hours


def at(text):
    return datetime.fromisoformat(text)


def due(policy, received, tier="standard", category="billing", urgency="normal", coordination="none"):
    d = deadline_for(at(received), tier=tier, category=category, urgency=urgency,
                     coordination=coordination, policy=policy)
    return d.astimezone(policy.timezone).isoformat()


@pytest.mark.parametrize("tier,expected", [
    ("vip", "2026-11-02T17:30:00+08:00"),
    ("premium", "2026-11-03T09:30:00+08:00"),
    ("standard", "2026-11-04T09:30:00+08:00"),
])
def test_calendar_hour_limit_by_tier(policy, tier, expected):
    assert due(policy, "2026-11-02T09:30:00+08:00", tier=tier) == expected


def test_network_complaint_takes_the_stricter_of_tier_and_urgency(policy):
    assert due(policy, "2026-11-02T09:00:00+08:00", tier="standard", category="network",
               urgency="critical") == "2026-11-02T17:00:00+08:00"
    assert due(policy, "2026-11-02T09:00:00+08:00", tier="vip", category="network",
               urgency="normal") == "2026-11-02T17:00:00+08:00"


def test_urgency_applies_to_network_complaints_only(policy):
    assert due(policy, "2026-11-02T09:00:00+08:00", category="billing",
               urgency="critical") == "2026-11-04T09:00:00+08:00"


def test_deadline_landing_in_quiet_hours_moves_to_eight(policy):
    # 14:00 + 8 h = 22:00, which is inside quiet hours
    assert due(policy, "2026-11-02T14:00:00+08:00", tier="vip") == "2026-11-03T08:00:00+08:00"
    # 23:30 + 8 h = 07:30 next morning, still quiet
    assert due(policy, "2026-11-02T23:30:00+08:00", tier="vip") == "2026-11-03T08:00:00+08:00"
    # 13:59 + 8 h = 21:59, just before quiet hours
    assert due(policy, "2026-11-02T13:59:00+08:00", tier="vip") == "2026-11-02T21:59:00+08:00"


def test_quiet_hours_boundaries(policy):
    assert in_quiet_hours(at("2026-11-02T22:00:00+08:00"), policy)
    assert in_quiet_hours(at("2026-11-02T07:59:59+08:00"), policy)
    assert not in_quiet_hours(at("2026-11-02T08:00:00+08:00"), policy)
    assert not in_quiet_hours(at("2026-11-02T21:59:59+08:00"), policy)
    assert in_quiet_hours(at("2026-11-02T14:30:00+00:00"), policy)  # 22:30 in Shanghai


def test_working_days_skip_the_weekend(policy):
    # Thursday + 4 working days: Fri, Mon, Tue, Wed
    assert due(policy, "2026-11-05T10:00:00+08:00", coordination="cross_province") == "2026-11-11T10:00:00+08:00"
    # third party: 7 working days from Thursday -> the Monday after next... Fri,Mon..Fri(5),Mon(7)
    assert due(policy, "2026-11-05T10:00:00+08:00", coordination="third_party") == "2026-11-16T10:00:00+08:00"


def test_working_days_skip_a_listed_holiday_and_count_a_make_up_weekend(policy):
    with_holiday = replace(policy, holidays=frozenset({date(2026, 11, 9)}))
    assert due(with_holiday, "2026-11-05T10:00:00+08:00", coordination="cross_province") == "2026-11-12T10:00:00+08:00"
    make_up = replace(with_holiday, working_weekends=frozenset({date(2026, 11, 7)}))
    assert due(make_up, "2026-11-05T10:00:00+08:00", coordination="cross_province") == "2026-11-11T10:00:00+08:00"


def test_coordination_replaces_tier_limit_even_for_vip(policy):
    assert due(policy, "2026-11-05T10:00:00+08:00", tier="vip",
               coordination="cross_province") == "2026-11-11T10:00:00+08:00"


def test_working_day_deadline_in_quiet_hours_moves_to_eight(policy):
    assert due(policy, "2026-11-05T23:00:00+08:00", coordination="cross_province") == "2026-11-12T08:00:00+08:00"
