"""Refusals, one type per SPEC reason code. The code is stable: reports and dead letters use it."""

from __future__ import annotations


class Rejected(Exception):
    """An inbound event the platform refuses; nothing of it is recorded."""

    reason: str = ""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class InvalidEvent(Rejected):
    reason = "invalid_event"


class BadAmount(Rejected):
    reason = "bad_amount"


class UnknownComplaint(Rejected):
    reason = "unknown_complaint"


class ComplaintExists(Rejected):
    reason = "complaint_exists"


class InvalidTransition(Rejected):
    reason = "invalid_transition"


class RefundUnverified(Rejected):
    reason = "refund_unverified"


class OverAuthority(Rejected):
    reason = "over_authority"
