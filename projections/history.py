"""One complaint's (or typical case's) history for auditors: every recorded event, and the state
derived from those recorded up to a moment, by the same rules as the KPI read model (facts.py).

The state needs the complaints this one is linked to: the one it repeats (a handling fault found
there costs this repeat's department head) and later ones repeating it (a repeat after closing
changes its recovery outcome). Their events are replayed with it, in recorded order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import DomainEvent

from domain.case import Case, case_uuid
from domain.clock import from_us
from domain.complaint import Complaint, complaint_uuid
from domain.events import CASE_SELECTED, RECEIVED, spec_type
from domain.policy import Policy
from infra.privacy import Keyring, key_ids, unseal, unseal_data
from infra.store import RecoveryApplication
from projections.facts import (
    COMPENSATION_KINDS,
    Facts,
    FactsUpdater,
    Penalty,
    contributions,
    penalties_of,
    recovery_outcome,
)
from projections.report import money


class ComplaintNotRecorded(ValueError):
    """No event of this complaint is in the log (as of the moment asked). Not the refusal
    domain.errors.UnknownComplaint: a reader's error, shown as one line by the CLI (exit 2)."""

    reason = "unknown_complaint"


class _Facts:
    """The facts of a handful of linked complaints, in memory."""

    def __init__(self) -> None:
        self.facts: dict[str, Facts] = {}

    def get(self, uuid: str) -> Facts | None:
        return self.facts.get(uuid)

    def add(self, facts: Facts) -> None:
        self.facts[facts.uuid] = facts

    def repeats_of(self, uuid: str) -> list[Facts]:
        return [f for f in self.facts.values() if f.repeat_of == uuid]

    def relink(self, facts: Facts, repeat_of: str | None) -> None:
        pass  # repeats_of reads the facts' own links

    def received_between(self, category: str, region: str, since: int, until: int) -> list[Facts]:
        return []  # major batches are not part of one complaint's history


def _recorded(app: RecoveryApplication, uuid: Any, as_of: datetime | None) -> list[Any]:
    return [e for e in app.repository.event_store.get(uuid) if as_of is None or cast(DomainEvent, e).timestamp <= as_of]


def complaint_history(app: RecoveryApplication, policy: Policy, complaint_id: str,
                      as_of: datetime | None = None) -> dict[str, Any]:
    uuid = complaint_uuid(complaint_id)
    events = _recorded(app, uuid, as_of)
    if not events:
        when = f" as of {as_of.isoformat()}" if as_of else ""
        raise ComplaintNotRecorded(f"unknown_complaint: no complaint {complaint_id!r} recorded{when}")
    complaint: Complaint | None = None
    for event in events:
        complaint = event.mutate(complaint)
    assert complaint is not None
    linked = []
    if complaint.repeat_of:
        linked += _recorded(app, complaint_uuid(complaint.repeat_of), as_of)
    with app.datastore.transaction(commit=False) as c:
        repeats = app.dialect.rows(c, "SELECT uuid FROM kpi_complaints WHERE repeat_of = ?", (uuid.hex,))
    for row in repeats:
        linked += _recorded(app, UUID(hex=row["uuid"]), as_of)

    facts = _Facts()
    updater = FactsUpdater(facts, policy, complaint_uuid)
    penalties: list[Penalty] = []
    for event in sorted([*events, *linked], key=lambda e: (e.timestamp, str(e.originator_id), e.originator_version)):
        triggered = updater.apply(event)
        penalties += [p for p in triggered if p.complaint == uuid.hex]
    f = facts.get(uuid.hex)
    assert f is not None
    penalties += penalties_of(f, updater.original(f), policy)
    keys, missing = Keyring(app).readable(key_ids(e.data for e in events))
    return _document(complaint, f, events, penalties, policy, as_of, keys, missing)


def _document(complaint: Complaint, f: Facts, events: list[Any], penalties: list[Penalty], policy: Policy,
              as_of: datetime | None, keys: dict[str, bytes], missing: str) -> dict[str, Any]:
    tz = policy.timezone
    counts = contributions(f)
    verdict = "on_time" if counts.get("on_time") else "late" if counts.get("late") else "pending"
    return {
        "complaint_id": complaint.complaint_id,
        "customer_id": unseal(complaint.customer_id, keys, missing),
        "as_of": as_of.isoformat() if as_of else None,
        "timezone": tz.key,
        "state": {
            "status": complaint.status,
            "received_at": complaint.received_at.astimezone(tz).isoformat(),
            "deadline": complaint.deadline.astimezone(tz).isoformat(),
            "timeliness": verdict,
            "deadline_missed_recorded": complaint.deadline_missed,
            "overdue": bool(counts.get("overdue")),
            "first_resolved_at": complaint.first_resolved_at.astimezone(tz).isoformat()
            if complaint.first_resolved_at else None,
            "repeat_of": complaint.repeat_of,
            "repeat": f.repeat_at is not None,
            "upgraded": bool(f.upgraded),
            "responsible": complaint.responsible,
            "compensation_total": f"{complaint.compensated:.2f}",
            "compensation_by_kind": {k: money(getattr(f, f"comp_{k}")) for k in COMPENSATION_KINDS
                                     if getattr(f, f"comp_{k}")},
            "satisfaction": f.satisfaction,
            "public_opinion": f.opinion_stage,
            "recovery_outcome": recovery_outcome(f),
        },
        "penalties": [{
            "reason": p.reason, "role": p.role, "who": p.who, "unit": p.unit,
            "at": from_us(p.at).astimezone(tz).isoformat(), "amount": money(p.amount_fen),
            "points": money(p.points_centi),
        } for p in sorted(penalties, key=lambda p: (p.at, p.reason, p.role))],
        "events": [_entry(e, tz, keys, missing) for e in events],
    }


def _entry(e: Any, tz: Any, keys: dict[str, bytes], missing: str) -> dict[str, Any]:
    entry = {
        "occurred_at": e.occurred_at.astimezone(tz).isoformat(),
        "recorded_at": e.timestamp.astimezone(tz).isoformat(),
        "type": spec_type(e),
        "event_id": e.event_id,
        "actor": e.actor.get("id"), "role": e.actor.get("role"), "unit": e.actor.get("unit"),
        "data": unseal_data(e.data, keys, missing),  # personal fields in clear, or "[erased]"
    }
    for flag in ("quiet_hours_violation", "upgrades"):
        if getattr(e, flag, False):
            entry[flag] = True
    if type(e) is RECEIVED:
        entry["deadline"] = e.deadline.astimezone(tz).isoformat()
        if e.repeat_of:
            entry["repeat_of"] = e.repeat_of
    return entry


def case_history(app: RecoveryApplication, policy: Policy, case_id: str,
                 as_of: datetime | None = None) -> dict[str, Any] | None:
    """One case's recorded events and state as of a moment, as `history` shows a complaint's; None
    when no such case was recorded."""
    events = _recorded(app, case_uuid(case_id), as_of)
    if not events:
        return None
    case: Case | None = None
    for event in events:
        case = event.mutate(case)
    assert case is not None
    tz = policy.timezone
    keys, missing = Keyring(app).readable(key_ids(e.data for e in events))  # a summary sealed with a customer's key
    selected = next((e for e in events if type(e) is CASE_SELECTED), None)
    return {
        "case_id": case.case_id, "as_of": as_of.isoformat() if as_of else None, "timezone": tz.key,
        "state": {
            "author": case.author, "submitted_at": case.submitted_at.astimezone(tz).isoformat(),
            "round": case.round,
            "selected_at": selected.occurred_at.astimezone(tz).isoformat() if selected else None,
            "reward": f"{policy.at(selected.occurred_at).case_selected_reward:.2f}" if selected else None,
        },
        "events": [_entry(e, tz, keys, missing) for e in events],
    }
