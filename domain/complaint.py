"""The complaint aggregate: every rule of SPEC §2–3 that depends on one complaint's history.

Commands check first and record second. The checks raise typed refusals; the recording methods
(decorated with @event) only change state, so replaying history never re-runs a policy check whose
limits may have changed since.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain import clock
from domain.envelope import OPINION_STAGES, Envelope
from domain.errors import InvalidTransition, OverAuthority, RefundUnverified
from domain.policy import Policy
from domain.timelimits import deadline_for, in_quiet_hours

OPEN, RESOLVED, CLOSED = "open", "resolved", "closed"
WATCHER = {"id": "deadline-watcher", "role": "system", "unit": None}
REPEAT_DETECTOR = {"id": "repeat-detector", "role": "system", "unit": None}
CONTACTS = ("complaint.responded", "complaint.resolved", "complaint.closed")
REFUNDABLE_LIABILITY = ("company", "shared")


def complaint_uuid(complaint_id: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"urn:service-recovery:complaint:{complaint_id}")


class Complaint(Aggregate):
    class Event(Aggregate.Event):
        @staticmethod
        def create_timestamp() -> datetime:
            return clock.now()

    class Created(Event, Aggregate.Created):
        pass

    @staticmethod
    def create_id(complaint_id: str) -> UUID:
        return complaint_uuid(complaint_id)

    # -- intake ---------------------------------------------------------------------------------

    @classmethod
    def receive(cls, env: Envelope, policy: Policy, repeat_of: str | None) -> Complaint:
        """A new complaint; `repeat_of` is given by the sender or detected by the service."""
        data = env.data
        deadline = deadline_for(
            env.occurred_at,
            tier=data["customer_tier"],
            category=data["category"],
            urgency=data["urgency"],
            coordination=data["coordination"],
            policy=policy,
        )
        return cls(
            complaint_id=env.complaint_id,
            event_id=env.event_id,
            occurred_at=env.occurred_at,
            actor=env.actor,
            data=data,
            deadline=deadline,
            repeat_of=repeat_of,
            upgraded=data["channel"] in policy.upgrade_channels,
        )

    @event("Received")
    def __init__(
        self,
        complaint_id: str,
        event_id: str,
        occurred_at: datetime,
        actor: dict[str, Any],
        data: dict[str, Any],
        deadline: datetime,
        repeat_of: str | None,
        upgraded: bool,
    ) -> None:
        self.complaint_id = complaint_id
        self.received_at = occurred_at
        self.deadline = deadline
        self.customer_id = data["customer_id"]
        self.issue_key = data["issue_key"]
        self.responsible = dict(data["responsible"])
        self.repeat_of = repeat_of
        self.repeat_explicit = bool(data.get("repeat_of"))  # named by the sender: never moved
        self.status = OPEN
        self.satisfaction: str | None = None
        self.first_resolved_at: datetime | None = None
        self.deadline_missed = False
        self.liability: str | None = None
        self.compensated = Decimal("0.00")
        self.opinion_stage: str | None = None  # public opinion (SPEC §6): the furthest stage reached

    # -- commands -------------------------------------------------------------------------------

    def check(self, env: Envelope, policy: Policy) -> None:
        """Raise the refusal this event deserves in the current state, or return."""
        kind = env.type
        if kind in ("complaint.assigned", "complaint.apologised", "complaint.verified",
                    "complaint.compensated", "complaint.resolved") and self.status == CLOSED:
            raise InvalidTransition(f"{kind} on a closed complaint {self.complaint_id}")
        if kind == "complaint.closed" and self.status != RESOLVED and not self._second_return_visit():
            state = "already closed" if self.status == CLOSED else "not resolved"
            raise InvalidTransition(f"cannot close complaint {self.complaint_id}: {state}")
        if kind == "complaint.reopened" and self.status != CLOSED:
            raise InvalidTransition(f"cannot reopen complaint {self.complaint_id}: not closed")
        if kind == "complaint.compensated":
            self._check_compensation(env, policy)
        if kind == "complaint.public_opinion":
            self._check_opinion_stage(env.data["stage"])

    def _second_return_visit(self) -> bool:
        """SPEC §3.4: a closed complaint whose customer could not be reached may be closed again."""
        return self.status == CLOSED and self.satisfaction == "unreachable"

    def _check_opinion_stage(self, stage: str) -> None:
        """Public opinion only moves forward (skipping a stage is allowed)."""
        if self.opinion_stage is not None and OPINION_STAGES.index(stage) <= OPINION_STAGES.index(self.opinion_stage):
            raise InvalidTransition(f"public opinion on {self.complaint_id} is already at {self.opinion_stage}: "
                                    f"{stage} does not move it forward")

    def _check_compensation(self, env: Envelope, policy: Policy) -> None:
        assert env.amount is not None
        if env.data["kind"] == "refund" and self.liability not in REFUNDABLE_LIABILITY:
            raise RefundUnverified(
                f"refund on {self.complaint_id} needs a verification with liability company or "
                f"shared first (先确认,后退费); latest liability: {self.liability or 'not verified'}"
            )
        approver: dict[str, Any] = env.data.get("approved_by") or env.actor
        limit = policy.at(env.occurred_at).compensation_limit(approver["role"])  # the version of the payment
        total = self.compensated + env.amount
        if limit is not None and total > limit:
            raise OverAuthority(
                f"{approver['role']} {approver['id']} may approve up to {limit} in total per "
                f"complaint; {self.complaint_id} would reach {total:.2f}"
            )

    def record(self, env: Envelope, policy: Policy) -> None:
        """Record an event that `check` accepted."""
        quiet = (
            env.type in CONTACTS
            and not env.data.get("customer_requested_time", False)
            and in_quiet_hours(env.occurred_at, policy.at(env.occurred_at))  # the version of the contact
        )
        common: dict[str, Any] = {"event_id": env.event_id, "occurred_at": env.occurred_at, "actor": env.actor,
                                  "data": env.data}
        match env.type:
            case "complaint.assigned":
                self._assigned(**common)
            case "complaint.apologised":
                self._apologised(**common)
            case "complaint.verified":
                self._verified(**common)
            case "complaint.compensated":
                self._compensated(**common)
            case "complaint.escalated":
                targets = policy.at(self.received_at).upgrade_escalation_targets  # the version of the intake
                self._escalated(**common, upgrades=env.data["to"] in targets)
            case "complaint.responded":
                self._responded(**common, quiet_hours_violation=quiet)
            case "complaint.resolved":
                self._resolved(**common, quiet_hours_violation=quiet)
            case "complaint.closed":
                self._closed(**common, quiet_hours_violation=quiet)
            case "complaint.reopened":
                self._reopened(**common)
            case "complaint.repeated":
                self._repeated(**common)
            case "complaint.public_opinion":
                self._public_opinion(**common)
            case _:  # pragma: no cover - the envelope admits no other type
                raise AssertionError(env.type)

    def handle(self, env: Envelope, policy: Policy) -> None:
        self.check(env, policy)
        self.record(env, policy)

    def is_overdue(self, at: datetime) -> bool:
        """The deadline passed strictly before `at` without a resolve, and no miss is recorded yet."""
        return self.first_resolved_at is None and not self.deadline_missed and self.deadline < at

    def link_repeat(self, repeat_of: str) -> None:
        """An earlier complaint of the same customer and issue arrived after this one: this one
        repeats it (SPEC §2.1), from its own `received` on."""
        self._repeat_linked(event_id=None, occurred_at=self.received_at, actor=REPEAT_DETECTOR,
                            data={"repeat_of": repeat_of}, repeat_of=repeat_of)

    def miss_deadline(self) -> None:
        """Recorded by the deadline watcher, stamped with the deadline itself."""
        self._deadline_missed(event_id=None, occurred_at=self.deadline, actor=WATCHER, data={})

    # -- recorded events (state changes only) ---------------------------------------------------

    @event("Assigned")
    def _assigned(self, event_id: str, occurred_at: datetime, actor: dict, data: dict) -> None:
        self.responsible.update({k: v for k, v in data["to"].items() if v})

    @event("Apologised")
    def _apologised(self, event_id: str, occurred_at: datetime, actor: dict, data: dict) -> None:
        pass

    @event("Verified")
    def _verified(self, event_id: str, occurred_at: datetime, actor: dict, data: dict) -> None:
        self.liability = data["liability"]

    @event("Compensated")
    def _compensated(self, event_id: str, occurred_at: datetime, actor: dict, data: dict) -> None:
        self.compensated += Decimal(data["amount"])

    @event("Escalated")
    def _escalated(
        self, event_id: str, occurred_at: datetime, actor: dict, data: dict, upgrades: bool
    ) -> None:
        pass

    @event("Responded")
    def _responded(
        self, event_id: str, occurred_at: datetime, actor: dict, data: dict,
        quiet_hours_violation: bool,
    ) -> None:
        pass

    @event("Resolved")
    def _resolved(
        self, event_id: str, occurred_at: datetime, actor: dict, data: dict,
        quiet_hours_violation: bool,
    ) -> None:
        self.status = RESOLVED
        if self.first_resolved_at is None or occurred_at < self.first_resolved_at:
            self.first_resolved_at = occurred_at

    @event("Closed")
    def _closed(
        self, event_id: str, occurred_at: datetime, actor: dict, data: dict,
        quiet_hours_violation: bool,
    ) -> None:
        self.status = CLOSED
        self.satisfaction = data["satisfaction"]

    @event("Reopened")
    def _reopened(self, event_id: str, occurred_at: datetime, actor: dict, data: dict) -> None:
        self.status = OPEN

    @event("Repeated")
    def _repeated(self, event_id: str, occurred_at: datetime, actor: dict, data: dict) -> None:
        pass

    @event("PublicOpinion")
    def _public_opinion(self, event_id: str, occurred_at: datetime, actor: dict, data: dict) -> None:
        self.opinion_stage = data["stage"]

    @event("RepeatLinked")
    def _repeat_linked(self, event_id: None, occurred_at: datetime, actor: dict, data: dict, repeat_of: str) -> None:
        self.repeat_of = repeat_of

    @event("DeadlineMissed")
    def _deadline_missed(
        self, event_id: None, occurred_at: datetime, actor: dict, data: dict
    ) -> None:
        self.deadline_missed = True
