"""Time limits (SPEC §3.1): deadlines, working days and quiet hours, judged in the policy time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from domain.policy import Policy


def in_quiet_hours(moment: datetime, policy: Policy) -> bool:
    """[start, end) local time; the window may wrap midnight (22:00 inside, 08:00 outside)."""
    local = moment.astimezone(policy.timezone).time()
    start, end = policy.quiet_start, policy.quiet_end
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def is_working_day(day: date, policy: Policy) -> bool:
    if day in policy.working_weekends:
        return True
    return day.weekday() < 5 and day not in policy.holidays


def add_working_days(start: datetime, days: int, policy: Policy) -> datetime:
    """The same local time of day on the `days`-th working day after the start's date."""
    local = start.astimezone(policy.timezone)
    day, found = local.date(), 0
    while found < days:
        day += timedelta(days=1)
        if is_working_day(day, policy):
            found += 1
    return datetime.combine(day, local.timetz().replace(tzinfo=None), policy.timezone)


def _out_of_quiet_hours(moment: datetime, policy: Policy) -> datetime:
    """A deadline that falls in quiet hours moves to the following quiet-hours end (08:00)."""
    if not in_quiet_hours(moment, policy):
        return moment
    local = moment.astimezone(policy.timezone)
    end = datetime.combine(local.date(), policy.quiet_end, policy.timezone)
    if end <= local:
        end = datetime.combine(local.date() + timedelta(days=1), policy.quiet_end, policy.timezone)
    return end


def limit_hours(tier: str, category: str, urgency: str, policy: Policy) -> int:
    """Calendar-hour limit: the tier's, or the stricter of tier and urgency for network complaints."""
    hours = policy.tier_hours[tier]
    if category in policy.urgency_categories:
        hours = min(hours, policy.urgency_hours[urgency])
    return hours


def deadline_for(
    received_at: datetime, *, tier: str, category: str, urgency: str, coordination: str, policy: Policy
) -> datetime:
    """When the complaint must be resolved by, as a UTC instant."""
    if coordination in policy.coordination_working_days:
        due = add_working_days(received_at, policy.coordination_working_days[coordination], policy)
    else:
        due = received_at + timedelta(hours=limit_hours(tier, category, urgency, policy))
    return _out_of_quiet_hours(due, policy).astimezone(UTC)
