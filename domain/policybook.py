"""Policy versions (SPEC §3.5): adopting a version is an event in the log, like any other, so the
rules of any moment can be read back from the log and every figure rebuilt under them."""

from __future__ import annotations

import hashlib
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.complaint import Complaint


def version_uuid(number: int) -> UUID:
    return uuid5(NAMESPACE_URL, f"urn:service-recovery:policy-version:{number}")


def content_hash(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


class PolicyVersion(Aggregate):
    """One adopted version: the whole policy file, in force from `effective_from`. Never changed."""

    class Event(Complaint.Event):
        pass

    class Created(Event, Aggregate.Created):
        pass

    @staticmethod
    def create_id(number: int) -> UUID:
        return version_uuid(number)

    @event("Adopted")
    def __init__(self, number: int, effective_from: datetime, content: str, sha256: str, adopted_by: str) -> None:
        self.number, self.effective_from, self.content = number, effective_from, content
        self.sha256, self.adopted_by = sha256, adopted_by
