"""The one registry of recorded event types. Adding a type is one line here, plus its handlers
(dispatch is on classes, never on names)."""

from __future__ import annotations

from typing import Any, cast

from domain.case import Case
from domain.complaint import Complaint
from domain.inbound import DeadLetter, DuplicateDelivery, UnknownFields
from domain.policybook import PolicyVersion


def _recorded(aggregate: type[Any], name: str) -> type[Any]:
    """An event class that eventsourcing's @event made on the aggregate (invisible to type checkers)."""
    return cast("type[Any]", vars(aggregate)[name])


RECEIVED = _recorded(Complaint, "Received")
ASSIGNED = _recorded(Complaint, "Assigned")
APOLOGISED = _recorded(Complaint, "Apologised")
VERIFIED = _recorded(Complaint, "Verified")
COMPENSATED = _recorded(Complaint, "Compensated")
ESCALATED = _recorded(Complaint, "Escalated")
RESPONDED = _recorded(Complaint, "Responded")
RESOLVED = _recorded(Complaint, "Resolved")
CLOSED = _recorded(Complaint, "Closed")
REOPENED = _recorded(Complaint, "Reopened")
REPEATED = _recorded(Complaint, "Repeated")
DEADLINE_MISSED = _recorded(Complaint, "DeadlineMissed")
REPEAT_LINKED = _recorded(Complaint, "RepeatLinked")
PUBLIC_OPINION = _recorded(Complaint, "PublicOpinion")
CASE_SUBMITTED = _recorded(Case, "Submitted")
CASE_SELECTED = _recorded(Case, "Selected")
DEAD_LETTER = _recorded(DeadLetter, "Recorded")
DUPLICATE_DELIVERY = _recorded(DuplicateDelivery, "Recorded")
UNKNOWN_FIELDS = _recorded(UnknownFields, "Recorded")
POLICY_ADOPTED = _recorded(PolicyVersion, "Adopted")

# Each complaint event and the SPEC type it is published and exported as.
COMPLAINT_EVENTS: dict[type[Any], str] = {
    RECEIVED: "complaint.received",
    ASSIGNED: "complaint.assigned",
    APOLOGISED: "complaint.apologised",
    VERIFIED: "complaint.verified",
    COMPENSATED: "complaint.compensated",
    ESCALATED: "complaint.escalated",
    RESPONDED: "complaint.responded",
    RESOLVED: "complaint.resolved",
    CLOSED: "complaint.closed",
    REOPENED: "complaint.reopened",
    REPEATED: "complaint.repeated",
    DEADLINE_MISSED: "complaint.deadline_missed",
    REPEAT_LINKED: "complaint.repeat_linked",
    PUBLIC_OPINION: "complaint.public_opinion",
}
# Each case event (SPEC §7) and its SPEC type.
CASE_EVENTS: dict[type[Any], str] = {
    CASE_SUBMITTED: "case.submitted",
    CASE_SELECTED: "case.selected",
}
# The platform's other records, by the name an export gives them.
OTHER_EVENTS: dict[type[Any], str] = {
    DEAD_LETTER: "DeadLetter",
    DUPLICATE_DELIVERY: "DuplicateDelivery",
    UNKNOWN_FIELDS: "UnknownFields",
    POLICY_ADOPTED: "PolicyVersion",
}


def is_complaint_event(event: object) -> bool:
    return type(event) in COMPLAINT_EVENTS


def is_case_event(event: object) -> bool:
    return type(event) in CASE_EVENTS


def spec_type(event: object) -> str:
    """The SPEC type of a complaint or case event (`complaint.resolved`), else the record's name."""
    kind = type(event)
    return COMPLAINT_EVENTS.get(kind) or CASE_EVENTS.get(kind) or OTHER_EVENTS[kind]
