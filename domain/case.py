"""The typical-case library (典型案例库, SPEC §7): a case written up by a handler or a department,
and its selection in a quarterly round.

As with complaints, commands check first and record second; the recording methods only change
state. How many cases a round already holds is not this case's history: the service counts them
(service/cases.py) and passes the count in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.complaint import Complaint
from domain.envelope import Envelope
from domain.errors import ComplaintExists, InvalidTransition
from domain.policy import Policy


def case_uuid(case_id: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"urn:service-recovery:case:{case_id}")


class Case(Aggregate):
    class Event(Complaint.Event):
        pass

    class Created(Event, Aggregate.Created):
        pass

    @staticmethod
    def create_id(case_id: str) -> UUID:
        return case_uuid(case_id)

    @classmethod
    def submit(cls, env: Envelope) -> Case:
        assert env.case_id is not None
        return cls(case_id=env.case_id, event_id=env.event_id, occurred_at=env.occurred_at, actor=env.actor,
                   data=env.data)

    @event("Submitted")
    def __init__(self, case_id: str, event_id: str, occurred_at: datetime, actor: dict[str, Any],
                 data: dict[str, Any]) -> None:
        self.case_id = case_id
        self.submitted_at = occurred_at
        self.author: dict[str, str] = dict(data["author"])  # its unit is the one an award goes to
        self.round: str | None = None

    def check(self, env: Envelope, policy: Policy, selected_in_round: int) -> None:
        """Raise the refusal this event deserves, or return. `selected_in_round`: the cases already
        selected in the event's round."""
        if env.type == "case.submitted":
            raise ComplaintExists(f"case {self.case_id} was already submitted")
        if self.round is not None:
            raise InvalidTransition(f"case {self.case_id} was already selected in round {self.round}")
        limit = policy.at(env.occurred_at).selected_per_round  # the version of the selection
        if selected_in_round >= limit:
            raise InvalidTransition(f"round {env.data['round']} already has {selected_in_round} cases selected "
                                    f"(at most {limit})")

    def select(self, env: Envelope) -> None:
        """Record a selection that `check` accepted."""
        self._selected(event_id=env.event_id, occurred_at=env.occurred_at, actor=env.actor, data=env.data)

    @event("Selected")
    def _selected(self, event_id: str, occurred_at: datetime, actor: dict[str, Any], data: dict[str, Any]) -> None:
        self.round = data["round"]
