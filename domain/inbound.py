"""Inbound envelopes the platform did not apply. They are recorded too, so the ingest counts (and
the dead letters) are part of the log and survive a rebuild of every table."""

from __future__ import annotations

from eventsourcing.domain import Aggregate, event

from domain.complaint import Complaint


class DeadLetter(Aggregate):
    """An envelope refused with a SPEC reason code; `raw` is the original text."""

    class Event(Complaint.Event):
        pass

    class Created(Event, Aggregate.Created):
        pass

    @event("Recorded")
    def __init__(self, reason: str, message: str, raw: str, event_id: str | None,
                 complaint_id: str | None, type: str | None, source: str) -> None:
        self.reason = reason


class DuplicateDelivery(Aggregate):
    """An envelope whose event_id was already recorded: counted, changes nothing."""

    class Event(Complaint.Event):
        pass

    class Created(Event, Aggregate.Created):
        pass

    @event("Recorded")
    def __init__(self, event_id: str, complaint_id: str, type: str, source: str) -> None:
        self.event_id = event_id
