"""Inbound envelopes the platform did not apply. They are recorded too, so the ingest counts (and
the dead letters) are part of the log and survive a rebuild of every table."""

from __future__ import annotations

from eventsourcing.domain import Aggregate, event

from domain.complaint import Complaint


class DeadLetter(Aggregate):
    """An envelope refused with a SPEC reason code. `raw` is the line as text safe to store (sealed
    when it names a customer); `original` its bytes in base64 when the text is not exactly them;
    `line_sha256` identifies the line, so the same line sent again is a duplicate (SPEC §2).
    `again`: a line refused before, evaluated again on request (`ingest --retry-refused`, `dlq
    replay`) and refused again; it counts as a duplicate, not as a second rejection."""

    class Event(Complaint.Event):
        pass

    class Created(Event, Aggregate.Created):
        pass

    @event("Recorded")
    def __init__(self, reason: str, message: str, raw: str, event_id: str | None,
                 complaint_id: str | None, type: str | None, source: str, line_sha256: str | None = None,
                 length: int | None = None, original: str | None = None, again: bool = False) -> None:
        self.reason = reason


class DuplicateDelivery(Aggregate):
    """An envelope whose event_id was already recorded, or a line already refused: counted, changes
    nothing. A line that was not an envelope has no event id, complaint or type."""

    class Event(Complaint.Event):
        pass

    class Created(Event, Aggregate.Created):
        pass

    @event("Recorded")
    def __init__(self, event_id: str | None, complaint_id: str | None, type: str | None, source: str) -> None:
        self.event_id = event_id


class UnknownFields(Aggregate):
    """Keys the contract does not define, counted by "<type>.<path>" over one batch's accepted
    envelopes (SPEC §2: tolerated, and counted, so a misspelt key is seen)."""

    class Event(Complaint.Event):
        pass

    class Created(Event, Aggregate.Created):
        pass

    @event("Recorded")
    def __init__(self, counts: dict[str, int], source: str) -> None:
        self.counts = counts
