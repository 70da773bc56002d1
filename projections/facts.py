"""What the KPI read model knows about one complaint, how each recorded event changes it, and what
it contributes to the counters of its cohort (SPEC §4–5). Pure: no SQL here.

Every rate is a ratio of counters, and every counter is the sum of `contributions()` over the
complaints of a cohort. The read model keeps those sums per day and dimension by adding
`contributions(after) - contributions(before)` whenever an event changes a complaint, so a report
never scans complaints or events.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal
from operator import attrgetter
from typing import Any, Protocol

from domain.clock import from_us, to_us
from domain.envelope import OPINION_STAGES
from domain.events import (
    APOLOGISED,
    ASSIGNED,
    CLOSED,
    COMPENSATED,
    DEADLINE_MISSED,
    ESCALATED,
    PUBLIC_OPINION,
    RECEIVED,
    REOPENED,
    REPEAT_LINKED,
    REPEATED,
    RESOLVED,
    RESPONDED,
    VERIFIED,
)
from domain.policy import Policy

COMPENSATION_KINDS = ("refund", "credit", "gift", "points", "voucher", "cash")
HOUR_BUCKETS = (1, 2, 4, 8, 24, 48, 72, 168)  # upper bounds, hours; one more bucket for above
OUTCOMES = ("recovered", "partially_recovered", "not_recovered", "lost", "unknown")
DIMENSIONS = ("region", "unit", "tier", "category", "channel")
# Retention by resolution (SPEC §4), beside the OCA / White House survey's shares (source 002).
RESOLUTIONS = ("unresolved", "resolved", "resolved_quickly")


def bucket_names(prefix: str) -> list[str]:
    return [f"{prefix}_le_{h}h" for h in HOUR_BUCKETS] + [f"{prefix}_gt_{HOUR_BUCKETS[-1]}h"]


COUNTERS = (
    "received", "resolved", "closed", "open", "repeat", "upgraded", "important", "on_time", "late",
    "first_contact_resolved", "satisfied", "satisfaction_answered", "compensation_fen",
    *(f"compensation_{k}_fen" for k in COMPENSATION_KINDS),
    *OUTCOMES, "service_fault", "service_fault_satisfied",
    "quiet_hours_violations", "deadline_missed", "major_batch", "overdue",
    *bucket_names("response"), *bucket_names("resolution"), "response_seconds", "resolution_seconds",
    "public_opinion", *(f"public_opinion_{stage}" for stage in OPINION_STAGES), "public_opinion_active",
    "public_opinion_awaiting_contact", *bucket_names("opinion_response"), "opinion_response_seconds",
    *(f"retention_{r}" for r in RESOLUTIONS), *(f"retention_{r}_retained" for r in RESOLUTIONS),
)


def fen(amount: str | Decimal) -> int:
    return int(Decimal(amount) * 100)


@dataclass(slots=True)  # slots: thousands are cached between batches
class Facts:
    uuid: str
    complaint_id: str
    received_at: int
    day: str
    region: str
    unit: str
    tier: str
    category: str
    channel: str
    deadline: int
    handler: str
    team_lead: str
    department_head: str
    channel_supervisor: str | None
    repeat_of: str | None  # uuid of the complaint this one repeats
    repeat_at: int | None  # when it became a repeat complaint
    upgraded: int
    sensitive: int
    transferred: int  # any assigned, escalated or reopened
    status: str
    first_resolved_at: int | None
    first_outcome: str | None
    latest_outcome: str | None
    first_response_at: int | None
    closed_at: int | None  # latest closing
    satisfaction: str | None
    retained: int | None
    repeat_after_close: int
    upgrade_after_close: int
    missed: int
    service_fault: int
    handling_fault_at: int | None
    quiet_violations: int
    major_batch: int  # one of >= threshold complaints with its category and region within the window
    comp_refund: int
    comp_credit: int
    comp_gift: int
    comp_points: int
    comp_voucher: int
    comp_cash: int
    # Who is answerable when: the handler and team lead responsible at the deadline (assignments by
    # their occurred_at), the handler when staff error was first verified, and every department head
    # with the time they took over ([[at, who], ...] as JSON), for the repeat penalty's moment.
    handler_at_deadline: str = ""
    team_lead_at_deadline: str = ""
    service_fault_at: int | None = None
    service_fault_handler: str | None = None
    department_heads: str = "[]"
    latest_repeat_at: int | None = None  # the latest `received` of the complaints that repeat this one
    assessed: str = "[]"  # the penalties these facts trigger (penalties_of), as JSON: what the read model holds
    quick_until: int = 0  # a first resolve at or before this is quick (received + the policy's quick_hours)
    # Public opinion (SPEC §6): the furthest stage reached, when it first went public, whether it
    # did after the latest closing, and the first customer contact at or after it went public.
    opinion_stage: str | None = None
    opinion_at: int | None = None
    opinion_after_close: int = 0
    opinion_response_at: int | None = None


FACT_FIELDS = [f.name for f in fields(Facts)]
fact_values = attrgetter(*FACT_FIELDS)  # a Facts as a tuple in field order: Facts(*fact_values(f)) copies it


def recovery_outcome(f: Facts) -> str | None:
    """SPEC §5, judged on the latest closing and latest resolve outcome; none while not closed."""
    if f.status != "closed":
        return None
    if f.satisfaction == "unreachable":
        return "unknown"
    if f.retained == 0:
        return "lost"
    if (f.satisfaction == "dissatisfied" or f.latest_outcome in ("unresolved", "rejected") or f.upgrade_after_close
            or f.opinion_after_close):
        return "not_recovered"
    if f.satisfaction == "neutral" or f.repeat_after_close or repeated_after_close(f):
        return "partially_recovered"
    return "recovered"


def repeated_after_close(f: Facts) -> bool:
    """A later complaint repeats this one, received at or after its latest closing."""
    return f.closed_at is not None and f.latest_repeat_at is not None and f.latest_repeat_at >= f.closed_at


def resolution_kind(f: Facts) -> str | None:
    """Retention by resolution (SPEC §4): for a closed complaint whose latest closing says whether
    the customer stayed, how its complaint was resolved; None otherwise."""
    if f.status != "closed" or f.retained is None:
        return None
    if f.latest_outcome in ("unresolved", "rejected") or f.first_resolved_at is None:
        return "unresolved"
    return "resolved_quickly" if f.first_resolved_at <= f.quick_until else "resolved"


def _bucket(prefix: str, seconds: float) -> str:
    for hours in HOUR_BUCKETS:
        if seconds <= hours * 3600:
            return f"{prefix}_le_{hours}h"
    return f"{prefix}_gt_{HOUR_BUCKETS[-1]}h"


def contributions(f: Facts) -> dict[str, int]:
    """This complaint's share of every counter of its cohort."""
    c: dict[str, int] = {"received": 1, "open": int(f.status != "closed")}
    is_repeat = f.repeat_at is not None
    resolved = f.first_resolved_at is not None
    c["resolved"] = int(resolved)
    c["closed"] = int(f.status == "closed")
    c["repeat"] = int(is_repeat)
    c["upgraded"] = f.upgraded
    c["important"] = int(f.tier == "vip" or bool(f.upgraded) or bool(f.sensitive))
    if f.first_resolved_at is not None:
        on_time = f.first_resolved_at <= f.deadline
        c["on_time" if on_time else "late"] = 1
        seconds = (f.first_resolved_at - f.received_at) / 1e6
        c[_bucket("resolution", seconds)], c["resolution_seconds"] = 1, round(seconds)
    elif f.missed:
        c["late"] = 1
    # Open past its deadline: the watcher recorded the miss and nothing has resolved or closed it
    # since (a reopened complaint does not start a new clock, SPEC §3.1).
    c["overdue"] = int(bool(f.missed) and not resolved and f.status != "closed")
    if f.first_response_at is not None:
        seconds = (f.first_response_at - f.received_at) / 1e6
        c[_bucket("response", seconds)], c["response_seconds"] = 1, round(seconds)
    c["first_contact_resolved"] = int(
        resolved and f.first_outcome in ("resolved", "partially_resolved") and not f.transferred
        and not is_repeat
    )
    closed = f.status == "closed"
    answered = closed and f.satisfaction in ("satisfied", "neutral", "dissatisfied")
    satisfied = int(closed and f.satisfaction == "satisfied")
    c["satisfaction_answered"], c["satisfied"] = int(answered), satisfied
    outcome = recovery_outcome(f)
    if outcome:
        c[outcome] = 1
    kind = resolution_kind(f)
    if kind:
        c[f"retention_{kind}"], c[f"retention_{kind}_retained"] = 1, f.retained or 0
    if f.opinion_stage is not None:
        c["public_opinion"] = c[f"public_opinion_{f.opinion_stage}"] = 1
        c["public_opinion_active"] = int(f.opinion_stage in ("outbreak", "surge"))
        if f.opinion_response_at is None:
            c["public_opinion_awaiting_contact"] = 1
        else:
            seconds = (f.opinion_response_at - f.opinion_at) / 1e6 if f.opinion_at is not None else 0.0
            c[_bucket("opinion_response", seconds)], c["opinion_response_seconds"] = 1, round(seconds)
    c["service_fault"] = f.service_fault
    c["service_fault_satisfied"] = f.service_fault * satisfied
    total = 0
    for kind in COMPENSATION_KINDS:
        amount = getattr(f, f"comp_{kind}")
        c[f"compensation_{kind}_fen"] = amount
        total += amount
    c["compensation_fen"] = total
    c["quiet_hours_violations"] = f.quiet_violations
    c["deadline_missed"] = f.missed
    c["major_batch"] = f.major_batch
    return c


@dataclass(frozen=True)
class Penalty:
    complaint: str  # uuid of the complaint whose trigger it is
    reason: str  # deadline_missed, service_fault, repeat_handling_fault, unrecorded
    role: str  # handler, team_lead, channel_supervisor, department_head, unit
    who: str
    unit: str  # the unit it is charged to: the complaint's unit, or the unit penalised itself
    at: int
    amount_fen: int = 0
    points_centi: int = 0


def _after_close(f: Facts, at: int) -> bool:
    """Whether something at `at` happened after the complaint's latest closing (it is closed now)."""
    return f.status == "closed" and f.closed_at is not None and at >= f.closed_at


class FactsSource(Protocol):
    def get(self, uuid: str) -> Facts | None: ...
    def add(self, facts: Facts) -> None: ...
    def repeats_of(self, uuid: str) -> list[Facts]: ...
    def relink(self, facts: Facts, repeat_of: str | None) -> None: ...
    def received_between(self, category: str, region: str, since: int, until: int) -> list[Facts]: ...


def department_head_at(f: Facts, at: int) -> str:
    """The department head responsible for the complaint at `at` (by the assignments' occurred_at)."""
    who = f.department_head
    for since, head in json.loads(f.department_heads):
        if since <= at:
            who = head
    return who


def penalties_of(f: Facts, original: Facts | None, policy: Policy) -> list[Penalty]:
    """Every penalty this complaint's facts trigger (SPEC §3.2), once per trigger and role, each at
    the moment of its trigger with the amounts of the policy version in force then: a function of
    the facts alone, so the same whatever order the events arrived in. `original`: the complaint it
    repeats (itself for a `repeated` event)."""
    out = []
    if f.missed:
        p = policy.at(from_us(f.deadline))
        out += [Penalty(f.uuid, "deadline_missed", "handler", f.handler_at_deadline, f.unit, f.deadline,
                        fen(p.deadline_missed_handler)),
                Penalty(f.uuid, "deadline_missed", "team_lead", f.team_lead_at_deadline, f.unit, f.deadline,
                        fen(p.deadline_missed_team_lead))]
        if f.channel in p.supervised_channels and f.channel_supervisor:
            out.append(Penalty(f.uuid, "deadline_missed", "channel_supervisor", f.channel_supervisor, f.unit,
                               f.deadline, fen(p.deadline_missed_channel_supervisor)))
    if f.service_fault_at is not None:
        p = policy.at(from_us(f.service_fault_at))
        out.append(Penalty(f.uuid, "service_fault", "handler", f.service_fault_handler or f.handler, f.unit,
                           f.service_fault_at, fen(p.service_fault_handler)))
    if original is not None and f.repeat_at is not None:
        found = [t for t in (f.handling_fault_at, original.handling_fault_at) if t is not None]
        if found:
            at = max(f.repeat_at, min(found))
            p = policy.at(from_us(at))
            out.append(Penalty(f.uuid, "repeat_handling_fault", "department_head", department_head_at(original, at),
                               original.unit, at, fen(p.repeat_handling_fault_department_head)))
    return out


def assessed(penalties: list[Penalty]) -> str:
    return json.dumps(sorted([p.reason, p.role, p.who, p.unit, p.at, p.amount_fen, p.points_centi] for p in penalties),
                      ensure_ascii=False)


def from_assessed(uuid: str, text: str) -> list[Penalty]:
    return [Penalty(uuid, *row) for row in json.loads(text)]


class FactsUpdater:
    """Applies one recorded complaint event to the facts it concerns. Whatever depends on other
    complaints (repeat links, major batches) is judged on their `received` times, never on the
    order the events arrived in; penalties follow from the facts (penalties_of). Returns the
    `unrecorded` points penalty a `received` triggers: the only one capped per unit and month."""

    def __init__(self, source: FactsSource, policy: Policy, complaint_uuid: Callable[[str], Any]):
        self.source, self.policy, self.complaint_uuid = source, policy, complaint_uuid

    def apply(self, event: Any) -> list[Penalty]:
        if type(event) is RECEIVED:
            return self._received(event)
        f = self.source.get(event.originator_id.hex)
        if f is None:  # pragma: no cover - the log never holds events of an unknown complaint
            return []
        _HANDLERS[type(event)](self, f, event, to_us(event.occurred_at))
        return []

    def original(self, f: Facts) -> Facts | None:
        """The complaint `f` repeats (itself when it got only `repeated` events); None if not a repeat."""
        if f.repeat_at is None:
            return None
        return (self.source.get(f.repeat_of) if f.repeat_of else None) or f

    def _received(self, e: Any) -> list[Penalty]:
        d, at = e.data, to_us(e.occurred_at)
        resp = d["responsible"]
        policy = self.policy.at(e.occurred_at)  # the version in force at intake
        f = Facts(
            uuid=e.originator_id.hex, complaint_id=e.complaint_id, received_at=at,
            day=e.occurred_at.astimezone(policy.timezone).date().isoformat(),
            region=d["region"], unit=e.actor.get("unit") or "", tier=d["customer_tier"],
            category=d["category"], channel=d["channel"], deadline=to_us(e.deadline),
            handler=resp["handler"], team_lead=resp["team_lead"],
            department_head=resp["department_head"], channel_supervisor=resp.get("channel_supervisor"),
            repeat_of=None, repeat_at=None, upgraded=int(e.upgraded),
            sensitive=int(bool(d.get("sensitive"))), transferred=0, status="open",
            first_resolved_at=None, first_outcome=None, latest_outcome=None, first_response_at=None,
            closed_at=None, satisfaction=None, retained=None, repeat_after_close=0, upgrade_after_close=0, missed=0,
            service_fault=0, handling_fault_at=None, quiet_violations=0, major_batch=0,
            comp_refund=0, comp_credit=0, comp_gift=0, comp_points=0, comp_voucher=0, comp_cash=0,
            handler_at_deadline=resp["handler"], team_lead_at_deadline=resp["team_lead"],
            quick_until=at + policy.quick_hours * 3_600_000_000,
        )
        self.source.add(f)
        self._detect_major_batch(f)
        if e.repeat_of:
            self._link(f, self.complaint_uuid(e.repeat_of).hex)
        if d.get("unrecorded_by_unit"):
            return [Penalty(f.uuid, "unrecorded", "unit", d["unrecorded_by_unit"], d["unrecorded_by_unit"], at,
                            points_centi=fen(policy.unrecorded_points))]
        return []

    def _link(self, f: Facts, original: str | None) -> None:
        """`f` repeats `original` from its own `received` on (a link found later moves it)."""
        before = f.repeat_of
        self.source.relink(f, original)
        f.repeat_of = original
        f.repeat_at = f.received_at if original else f.repeat_at
        for uuid in (before, original):
            earlier = self.source.get(uuid) if uuid else None
            if earlier is not None:
                times = [r.received_at for r in self.source.repeats_of(earlier.uuid)]
                earlier.latest_repeat_at = max(times, default=None)

    def _detect_major_batch(self, f: Facts) -> None:
        """重大批量投诉: many customers, one cause. Every window of the policy's length holding this
        complaint's `received` is checked, so each member of a qualifying window is marked
        whichever complaint arrives last."""
        policy = self.policy.at(from_us(f.received_at))
        window, threshold = policy.batch_window_minutes * 60_000_000, policy.batch_threshold
        near = self.source.received_between(f.category, f.region, f.received_at - window, f.received_at + window)
        times = [m.received_at for m in near]
        for i, member in enumerate(near):
            if member.received_at > f.received_at:
                break
            j = bisect_right(times, member.received_at + window)
            if member.received_at + window >= f.received_at and j - i >= threshold:
                for other in near[i:j]:
                    other.major_batch = 1

    def _repeat_linked(self, f: Facts, e: Any, at: int) -> None:
        self._link(f, self.complaint_uuid(e.repeat_of).hex)

    def _assigned(self, f: Facts, e: Any, at: int) -> None:
        to = e.data["to"]
        for role in ("handler", "team_lead", "department_head"):
            if to.get(role):
                setattr(f, role, to[role])
        if at <= f.deadline:
            f.handler_at_deadline = to.get("handler") or f.handler_at_deadline
            f.team_lead_at_deadline = to.get("team_lead") or f.team_lead_at_deadline
        if to.get("department_head"):
            f.department_heads = json.dumps([*json.loads(f.department_heads), [at, to["department_head"]]],
                                            ensure_ascii=False)
            self.source.repeats_of(f.uuid)  # loaded, so their penalties are assessed again
        f.transferred = 1

    def _apologised(self, f: Facts, e: Any, at: int) -> None:
        pass

    def _verified(self, f: Facts, e: Any, at: int) -> None:
        if e.data["service_fault"] and not f.service_fault:
            f.service_fault, f.service_fault_at, f.service_fault_handler = 1, at, f.handler
        if e.data["handling_fault"] and f.handling_fault_at is None:
            f.handling_fault_at = at
            self.source.repeats_of(f.uuid)  # loaded, so their penalties are assessed again

    def _compensated(self, f: Facts, e: Any, at: int) -> None:
        kind = f"comp_{e.data['kind']}"
        setattr(f, kind, getattr(f, kind) + fen(e.data["amount"]))

    def _escalated(self, f: Facts, e: Any, at: int) -> None:
        f.transferred = 1
        if e.upgrades:
            f.upgraded = 1
            if _after_close(f, at):
                f.upgrade_after_close = 1

    def _contact(self, f: Facts, e: Any, at: int) -> None:
        if f.first_response_at is None or at < f.first_response_at:
            f.first_response_at = at
        if f.opinion_at is not None and f.opinion_response_at is None and at >= f.opinion_at:
            f.opinion_response_at = at  # 速答: the first contact once it went public
        f.quiet_violations += int(e.quiet_hours_violation)

    def _responded(self, f: Facts, e: Any, at: int) -> None:
        self._contact(f, e, at)

    def _resolved(self, f: Facts, e: Any, at: int) -> None:
        self._contact(f, e, at)
        if f.first_resolved_at is None or at < f.first_resolved_at:  # the earliest resolve is the first
            f.first_resolved_at, f.first_outcome = at, e.data["outcome"]
        f.latest_outcome, f.status = e.data["outcome"], "resolved"

    def _closed(self, f: Facts, e: Any, at: int) -> None:
        f.quiet_violations += int(e.quiet_hours_violation)
        f.status, f.satisfaction, f.closed_at = "closed", e.data["satisfaction"], at
        retained = e.data.get("retained")
        f.retained = None if retained is None else int(retained)
        f.repeat_after_close = f.upgrade_after_close = f.opinion_after_close = 0

    def _reopened(self, f: Facts, e: Any, at: int) -> None:
        f.status, f.transferred = "open", 1

    def _repeated(self, f: Facts, e: Any, at: int) -> None:
        if _after_close(f, at):
            f.repeat_after_close = 1
        if f.repeat_at is None or at < f.repeat_at:
            f.repeat_at = at

    def _deadline_missed(self, f: Facts, e: Any, at: int) -> None:
        f.missed = 1

    def _public_opinion(self, f: Facts, e: Any, at: int) -> None:
        f.opinion_stage = e.data["stage"]  # only forward: the aggregate refused any other
        if f.opinion_at is None:
            f.opinion_at = at
        if _after_close(f, at):
            f.opinion_after_close = 1


# How each recorded complaint event (domain/events.py) changes the facts; `received` above.
_HANDLERS: dict[type[Any], Callable[[FactsUpdater, Facts, Any, int], None]] = {
    ASSIGNED: FactsUpdater._assigned,
    APOLOGISED: FactsUpdater._apologised,
    VERIFIED: FactsUpdater._verified,
    COMPENSATED: FactsUpdater._compensated,
    ESCALATED: FactsUpdater._escalated,
    RESPONDED: FactsUpdater._responded,
    RESOLVED: FactsUpdater._resolved,
    CLOSED: FactsUpdater._closed,
    REOPENED: FactsUpdater._reopened,
    REPEATED: FactsUpdater._repeated,
    DEADLINE_MISSED: FactsUpdater._deadline_missed,
    REPEAT_LINKED: FactsUpdater._repeat_linked,
    PUBLIC_OPINION: FactsUpdater._public_opinion,
}
