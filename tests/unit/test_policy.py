from decimal import Decimal

import pytest

from domain.policy import PolicyError, load_policy


def test_shipped_defaults_equal_spec_section_3(policy):
    assert policy.timezone.key == "Asia/Shanghai"
    assert policy.tier_hours == {"vip": 8, "premium": 24, "standard": 48}
    assert policy.urgency_hours == {"critical": 8, "urgent": 24, "normal": 48}
    assert policy.coordination_working_days == {"cross_province": 4, "third_party": 7}
    assert (policy.quiet_start.isoformat(), policy.quiet_end.isoformat()) == ("22:00:00", "08:00:00")
    assert policy.timely_rate_target == Decimal("0.95")
    assert policy.compensation_limit("hotline_agent") == Decimal("100")
    assert policy.compensation_limit("team_lead") == Decimal("300")
    assert policy.compensation_limit("complaint_manager") == Decimal("500")
    assert policy.compensation_limit("counter_agent") == Decimal("100")
    assert policy.compensation_limit("store_manager") == Decimal("300")
    assert policy.compensation_limit("department_head") == Decimal("1000")
    assert policy.compensation_limit("executive") is None
    assert policy.compensation_limit("intern") == Decimal("0")
    assert policy.deadline_missed_handler == Decimal("100")
    assert policy.deadline_missed_team_lead == Decimal("50")
    assert policy.deadline_missed_channel_supervisor == Decimal("50")
    assert policy.service_fault_handler == Decimal("100")
    assert policy.repeat_handling_fault_department_head == Decimal("300")
    assert policy.unrecorded_points == Decimal("0.02")
    assert policy.unrecorded_monthly_points_cap == Decimal("2.00")
    assert policy.repeat_window_days == 30
    assert (policy.batch_threshold, policy.batch_window_minutes) == (10, 60)
    assert policy.file_lateness_seconds == 0 and policy.live_lateness_seconds == 60


def _policy_with(tmp_path, old, new):
    from importlib import resources

    text = resources.files("domain").joinpath("policy.toml").read_text()
    assert old in text
    path = tmp_path / "policy.toml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    "old,new,key",
    [
        ("vip = 8,", "vip = -8,", "time_limits.tier_hours.vip"),
        ('hotline_agent = "100.00"', 'hotline_agent = 100.5', "compensation_limits.hotline_agent"),
        ('timezone = "Asia/Shanghai"', 'timezone = "Mars/Olympus"', "timezone"),
        ("window_days = 30", "window_dayz = 30", "repeat.window_dayz"),
        ('start = "22:00"', 'start = "late"', "time_limits.quiet_hours.start"),
        ("holidays = []", 'holidays = ["2026-13-01"]', "time_limits.holidays"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_key(tmp_path, old, new, key):
    with pytest.raises(PolicyError, match=key.replace(".", r"\.")):
        load_policy(_policy_with(tmp_path, old, new))


def test_an_operator_can_change_a_limit_without_a_release(tmp_path):
    policy = load_policy(_policy_with(tmp_path, "vip = 8,", "vip = 6,"))
    assert policy.tier_hours["vip"] == 6


def test_events_may_run_at_most_five_minutes_ahead_of_the_clock_by_default():
    assert load_policy().max_future_minutes == 5


@pytest.mark.parametrize("value", ["-1", "2.5", '"5"', "true"])
def test_a_bad_max_future_minutes_is_refused_naming_the_key(tmp_path, value):
    path = _policy_with(tmp_path, "max_future_minutes = 5", f"max_future_minutes = {value}")
    with pytest.raises(PolicyError, match=r"watcher\.max_future_minutes"):
        load_policy(path)


def test_a_policy_copied_before_max_future_minutes_existed_still_loads(tmp_path):
    policy = load_policy(_policy_with(tmp_path, "max_future_minutes = 5\n", ""))
    assert policy.max_future_minutes == 5
    assert load_policy(_policy_with(tmp_path, "max_future_minutes = 5",
                                    "max_future_minutes = 0")).max_future_minutes == 0
