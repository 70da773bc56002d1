"""The complaint-handling policy (SPEC §3) as validated, immutable data.

Loaded from TOML; every problem is reported as a PolicyError naming the offending key, so an
operator who mistypes a limit is told where at start-up rather than finding out in a report.
"""

from __future__ import annotations

import tomllib
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, cast, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TIERS = ("vip", "premium", "standard")
URGENCIES = ("critical", "urgent", "normal")
COORDINATIONS = ("cross_province", "third_party")
AUTHOR_KINDS = ("dedicated_handler", "department")
# SPEC §7 defaults: a stored version adopted before the [cases] table existed reads as these.
CASE_DEFAULTS: dict[str, Any] = {"selected_per_round": 5, "monthly_quota": {"dedicated_handler": 2, "department": 1},
                                 "case_selected_reward": Decimal("100.00"), "organisation_award": Decimal("500.00")}


class PolicyError(ValueError):
    """The policy file is invalid; the message names the key."""


@dataclass(frozen=True)
class Policy:
    timezone: ZoneInfo
    tier_hours: dict[str, int]
    urgency_hours: dict[str, int]
    urgency_categories: frozenset[str]
    coordination_working_days: dict[str, int]
    holidays: frozenset[date]
    working_weekends: frozenset[date]
    quiet_start: time
    quiet_end: time
    timely_rate_target: Decimal
    file_lateness_seconds: int
    live_lateness_seconds: int
    max_future_minutes: int
    deadline_missed_handler: Decimal
    deadline_missed_team_lead: Decimal
    deadline_missed_channel_supervisor: Decimal
    supervised_channels: frozenset[str]
    service_fault_handler: Decimal
    repeat_handling_fault_department_head: Decimal
    unrecorded_points: Decimal
    unrecorded_monthly_points_cap: Decimal
    compensation_limits: dict[str, Decimal | None]  # None: no limit
    repeat_window_days: int
    batch_threshold: int
    batch_window_minutes: int
    upgrade_channels: frozenset[str]
    upgrade_escalation_targets: frozenset[str]
    quick_hours: int = 24  # retention by resolution (SPEC §4): a first resolve this soon after `received` is quick
    # SPEC §7, the typical-case library: [cases] in the file, optional (older versions lack it).
    selected_per_round: int = CASE_DEFAULTS["selected_per_round"]
    monthly_quota: dict[str, int] = field(default_factory=lambda: dict(CASE_DEFAULTS["monthly_quota"]))
    case_selected_reward: Decimal = CASE_DEFAULTS["case_selected_reward"]
    organisation_award: Decimal = CASE_DEFAULTS["organisation_award"]
    # SPEC §3.5: every version adopted so far, by effective_from (empty: this policy alone). The
    # latest version carries them, so a rule can ask for the version in force at its moment.
    versions: tuple[tuple[datetime, Policy], ...] = field(default=(), compare=False, repr=False)

    def at(self, moment: datetime) -> Policy:
        """The version in force at `moment`: the latest whose effective_from is at or before it
        (the first one before any)."""
        if not self.versions:
            return self
        i = bisect_right([since for since, _ in self.versions], moment)
        return self.versions[max(i - 1, 0)][1]

    def local(self, moment: datetime) -> datetime:
        """`moment` in the time zone of the version in force then: its day and month for reports."""
        return moment.astimezone(self.at(moment).timezone)

    def every_version(self) -> tuple[Policy, ...]:
        """Every version adopted (this policy alone when it carries none): for the widest window."""
        return tuple(p for _, p in self.versions) or (self,)

    def compensation_limit(self, role: str) -> Decimal | None:
        """The approver's limit; a role with no authority listed has a limit of zero."""
        return self.compensation_limits.get(role, Decimal("0"))


def load_policy(path: str | Path | None = None) -> Policy:
    """Load and validate the policy at `path`, or the shipped defaults (SPEC §3)."""
    if path is None:
        text = resources.files("domain").joinpath("policy.toml").read_text(encoding="utf-8")
        source = "policy.toml (defaults)"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise PolicyError(f"{path}: cannot read policy file: {e.strerror}") from None
        source = str(path)
    return parse_policy(text, source)


class _Reader:
    """Reads one TOML table, remembering which keys were used so unknown ones can be reported."""

    def __init__(self, table: dict[str, Any], prefix: str = ""):
        self.table, self.prefix, self.used = table, prefix, set[str]()

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def get(self, name: str) -> Any:
        self.used.add(name)
        if name not in self.table:
            known = set(self.used) | {name}
            strays = sorted(k for k in self.table if k not in known)
            hint = f" (unknown key {self.key(strays[0])}: a typo?)" if strays else ""
            raise PolicyError(f"{self.key(name)}: missing{hint}")
        return self.table[name]

    def sub(self, name: str) -> _Reader:
        value = self.get(name)
        if not isinstance(value, dict):
            raise PolicyError(f"{self.key(name)}: must be a table")
        return _Reader(value, f"{self.key(name)}.")

    def positive_int(self, name: str, default: int | None = None) -> int:
        if default is not None and name not in self.table:
            self.used.add(name)
            return default
        value = self.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise PolicyError(f"{self.key(name)}: must be a positive whole number, got {value!r}")
        return value

    def non_negative_int(self, name: str, default: int | None = None) -> int:
        if default is not None and name not in self.table:
            self.used.add(name)
            return default
        value = self.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise PolicyError(f"{self.key(name)}: must be a whole number >= 0, got {value!r}")
        return value

    @overload
    def amount(self, name: str) -> Decimal: ...
    @overload
    def amount(self, name: str, *, allow_unlimited: bool) -> Decimal | None: ...

    def amount(self, name: str, *, allow_unlimited: bool = False) -> Decimal | None:
        value = self.get(name)
        if allow_unlimited and value == "unlimited":
            return None
        if not isinstance(value, str):
            raise PolicyError(f"{self.key(name)}: must be a decimal string such as \"100.00\"")
        try:
            amount = Decimal(value)
        except InvalidOperation:
            raise PolicyError(f"{self.key(name)}: not a decimal: {value!r}") from None
        if not amount.is_finite() or amount < 0 or cast(int, amount.as_tuple().exponent) < -2:
            raise PolicyError(f"{self.key(name)}: must be >= 0 with at most 2 decimals: {value!r}")
        return amount

    def strings(self, name: str) -> frozenset[str]:
        value = self.get(name)
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise PolicyError(f"{self.key(name)}: must be a list of strings")
        return frozenset(value)

    def dates(self, name: str) -> frozenset[date]:
        value = self.get(name)
        if not isinstance(value, list):
            raise PolicyError(f"{self.key(name)}: must be a list of dates (\"YYYY-MM-DD\")")
        out = set()
        for item in value:
            if isinstance(item, date):
                out.add(item)
                continue
            try:
                out.add(date.fromisoformat(item))
            except (TypeError, ValueError):
                raise PolicyError(f"{self.key(name)}: not a date: {item!r}") from None
        return frozenset(out)

    def clock_time(self, name: str) -> time:
        value = self.get(name)
        try:
            return time.fromisoformat(value)
        except (TypeError, ValueError):
            raise PolicyError(f"{self.key(name)}: must be a time \"HH:MM\", got {value!r}") from None

    def hours_by(self, name: str, names: tuple[str, ...]) -> dict[str, int]:
        table = self.sub(name)
        out = {n: table.positive_int(n) for n in names}
        table.done()
        return out

    def done(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise PolicyError(f"{self.key(unknown[0])}: unknown key")


def _parse(raw: dict[str, Any]) -> Policy:
    top = _Reader(raw)
    tz_name = top.get("timezone")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise PolicyError(f"timezone: unknown time zone {tz_name!r}") from None

    limits = top.sub("time_limits")
    tier_hours = limits.hours_by("tier_hours", TIERS)
    urgency_hours = limits.hours_by("urgency_hours", URGENCIES)
    urgency_categories = limits.strings("urgency_categories")
    coordination = limits.hours_by("coordination_working_days", COORDINATIONS)
    holidays = limits.dates("holidays")
    working_weekends = limits.dates("working_weekends")
    quiet = limits.sub("quiet_hours")
    quiet_start, quiet_end = quiet.clock_time("start"), quiet.clock_time("end")
    quiet.done()
    quick_hours = limits.positive_int("quick_hours", default=24)  # optional: versions recorded before it exist
    target = limits.amount("timely_rate_target")
    if target is None or target > 1:
        raise PolicyError("time_limits.timely_rate_target: must be between 0 and 1")
    limits.done()

    watcher = top.sub("watcher")
    file_lateness = watcher.non_negative_int("file_lateness_seconds")
    live_lateness = watcher.non_negative_int("live_lateness_seconds")
    # Optional, so that a policy copied before the key existed still loads.
    max_future = watcher.non_negative_int("max_future_minutes", default=5)
    watcher.done()

    pen = top.sub("penalties")
    penalties: dict[str, Any] = {
        name: pen.amount(name)
        for name in (
            "deadline_missed_handler",
            "deadline_missed_team_lead",
            "deadline_missed_channel_supervisor",
            "service_fault_handler",
            "repeat_handling_fault_department_head",
            "unrecorded_points",
            "unrecorded_monthly_points_cap",
        )
    }
    supervised = pen.strings("supervised_channels")
    pen.done()

    comp = top.sub("compensation_limits")
    comp_limits = {role: comp.amount(role, allow_unlimited=True) for role in comp.table}
    comp.done()

    repeat = top.sub("repeat")
    window_days = repeat.positive_int("window_days")
    repeat.done()

    batch = top.sub("batch")
    threshold, window_minutes = batch.positive_int("threshold"), batch.positive_int("window_minutes")
    batch.done()

    upgrade = top.sub("upgrade")
    upgrade_channels, upgrade_targets = upgrade.strings("channels"), upgrade.strings("escalation_targets")
    upgrade.done()
    cases = _cases(top)
    top.done()

    return Policy(
        timezone=tz,
        tier_hours=tier_hours,
        urgency_hours=urgency_hours,
        urgency_categories=urgency_categories,
        coordination_working_days=coordination,
        holidays=holidays,
        working_weekends=working_weekends,
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        timely_rate_target=target,
        file_lateness_seconds=file_lateness,
        live_lateness_seconds=live_lateness,
        max_future_minutes=max_future,
        supervised_channels=supervised,
        compensation_limits=comp_limits,
        repeat_window_days=window_days,
        batch_threshold=threshold,
        batch_window_minutes=window_minutes,
        upgrade_channels=upgrade_channels,
        upgrade_escalation_targets=upgrade_targets,
        quick_hours=quick_hours,
        **penalties,
        **cases,
    )


def _cases(top: _Reader) -> dict[str, Any]:
    if "cases" not in top.table:
        top.used.add("cases")
        return dict(CASE_DEFAULTS)
    cases = top.sub("cases")
    out = {"selected_per_round": cases.positive_int("selected_per_round"),
           "monthly_quota": cases.hours_by("monthly_quota", AUTHOR_KINDS),
           "case_selected_reward": cases.amount("case_selected_reward"),
           "organisation_award": cases.amount("organisation_award")}
    cases.done()
    return out


def with_versions(versions: list[tuple[datetime, Policy]]) -> Policy:
    """The latest of these (effective_from, policy) versions, carrying them all (Policy.at)."""
    ordered = tuple(sorted(((since, replace(p, versions=())) for since, p in versions), key=lambda v: v[0]))
    return replace(ordered[-1][1], versions=ordered)


def policy_text(policy: Policy) -> str:
    """The policy as TOML that load_policy reads back to an equal policy: what an adoption records."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, Decimal):
            return f'"{v}"'
        if isinstance(v, (frozenset, list, tuple)):
            return "[" + ", ".join(value(x) for x in sorted(v, key=str)) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        if isinstance(v, (date, time)):
            return f'"{v.isoformat()}"' if isinstance(v, date) else f'"{v:%H:%M}"'
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    p = policy
    limits = {name: "unlimited" if limit is None else limit for name, limit in p.compensation_limits.items()}
    lines = [
        f"timezone = {value(p.timezone.key)}",
        "", "[time_limits]",
        f"tier_hours = {value(p.tier_hours)}",
        f"urgency_hours = {value(p.urgency_hours)}",
        f"urgency_categories = {value(p.urgency_categories)}",
        f"coordination_working_days = {value(p.coordination_working_days)}",
        f"holidays = {value(sorted(d.isoformat() for d in p.holidays))}",
        f"working_weekends = {value(sorted(d.isoformat() for d in p.working_weekends))}",
        f"quiet_hours = {{ start = {value(p.quiet_start)}, end = {value(p.quiet_end)} }}",
        f"timely_rate_target = {value(p.timely_rate_target)}",
        f"quick_hours = {p.quick_hours}",
        "", "[watcher]",
        f"file_lateness_seconds = {p.file_lateness_seconds}",
        f"live_lateness_seconds = {p.live_lateness_seconds}",
        f"max_future_minutes = {p.max_future_minutes}",
        "", "[penalties]",
        *(f"{name} = {value(getattr(p, name))}" for name in (
            "deadline_missed_handler", "deadline_missed_team_lead", "deadline_missed_channel_supervisor",
            "service_fault_handler", "repeat_handling_fault_department_head", "unrecorded_points",
            "unrecorded_monthly_points_cap")),
        f"supervised_channels = {value(p.supervised_channels)}",
        "", "[compensation_limits]",
        *(f"{role} = {value(limit)}" for role, limit in limits.items()),
        "", "[repeat]", f"window_days = {p.repeat_window_days}",
        "", "[batch]", f"threshold = {p.batch_threshold}", f"window_minutes = {p.batch_window_minutes}",
        "", "[upgrade]", f"channels = {value(p.upgrade_channels)}",
        f"escalation_targets = {value(p.upgrade_escalation_targets)}",
        "", "[cases]", f"selected_per_round = {p.selected_per_round}",
        f"monthly_quota = {value(p.monthly_quota)}",
        f"case_selected_reward = {value(p.case_selected_reward)}",
        f"organisation_award = {value(p.organisation_award)}",
    ]
    return "\n".join(lines) + "\n"


def parse_policy(text: str, source: str = "policy") -> Policy:
    """A policy from TOML text (an adopted version's content, or a file's)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{source}: not valid TOML: {e}") from None
    try:
        return _parse(raw)
    except PolicyError as e:
        raise PolicyError(f"{source}: {e}") from None
