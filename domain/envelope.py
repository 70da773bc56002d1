"""The inbound envelope (SPEC §2): parse and validate one event, or refuse it with a reason code.

Checks here need no state: JSON shape, enumerations, timestamps and money. Unknown keys are
ignored (a tolerant reader, so senders can add fields without breaking ingest); a missing or
unknown *value* is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from domain.errors import BadAmount, InvalidEvent

Text = Annotated[str, StringConstraints(strict=True, min_length=1)]

CHANNELS = ("hotline", "store", "online", "letter", "message", "regulator", "consumer_association",
            "government_hotline", "petition_bureau", "media", "social")
CATEGORIES = ("billing", "network", "service", "product", "marketing", "value_added", "points",
              "privacy", "other")
ESCALATION_TARGETS = ("team_lead", "department", "branch", "province", "group", "regulator",
                      "consumer_association", "government_hotline", "petition_bureau", "media", "court")


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class Responsible(_Data):
    handler: Text
    team_lead: Text
    department_head: Text
    channel_supervisor: Text | None = None


class Reassignment(_Data):
    handler: Text | None = None
    team_lead: Text | None = None
    department_head: Text | None = None


class Approver(_Data):
    id: Text
    role: Text


class ReceivedData(_Data):
    customer_id: Text
    customer_tier: Literal["vip", "premium", "standard"]
    channel: Literal[CHANNELS]  # type: ignore[valid-type]
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    region: Text
    responsible: Responsible
    urgency: Literal["critical", "urgent", "normal"] = "normal"
    coordination: Literal["none", "cross_province", "third_party"] = "none"
    issue_key: Text | None = None
    summary: str | None = None
    sensitive: bool = False
    repeat_of: Text | None = None
    unrecorded_by_unit: Text | None = None


class AssignedData(_Data):
    to: Reassignment
    reason: str | None = None


class ApologisedData(_Data):
    mode: Literal["verbal", "written", "in_person", "public"]


class VerifiedData(_Data):
    liability: Literal["company", "customer", "third_party", "shared", "none"]
    service_fault: bool
    handling_fault: bool
    notes: str | None = None


class CompensatedData(_Data):
    amount: Any  # checked below for bad_amount, after every invalid_event check
    kind: Literal["refund", "credit", "gift", "points", "voucher", "cash"]
    reason: str | None = None
    approved_by: Approver | None = None


class EscalatedData(_Data):
    to: Literal[ESCALATION_TARGETS]  # type: ignore[valid-type]
    reason: str | None = None


class RespondedData(_Data):
    channel: Literal["call", "sms", "visit", "letter", "email"]
    summary: str | None = None
    customer_requested_time: bool = False


class ResolvedData(_Data):
    outcome: Literal["resolved", "partially_resolved", "unresolved", "rejected"]
    summary: str | None = None
    customer_requested_time: bool = False


class ClosedData(_Data):
    satisfaction: Literal["satisfied", "neutral", "dissatisfied", "unreachable"]
    retained: bool | None = None
    customer_requested_time: bool = False


class ReopenedData(_Data):
    reason: str | None = None


class RepeatedData(_Data):
    channel: Text | None = None


class Actor(_Data):
    id: Text
    role: Text
    unit: Text | None = None


# complaint.deadline_missed is recorded by the platform itself, so senders may not send it.
DATA_MODELS: dict[str, type[_Data]] = {
    "complaint.received": ReceivedData,
    "complaint.assigned": AssignedData,
    "complaint.apologised": ApologisedData,
    "complaint.verified": VerifiedData,
    "complaint.compensated": CompensatedData,
    "complaint.escalated": EscalatedData,
    "complaint.responded": RespondedData,
    "complaint.resolved": ResolvedData,
    "complaint.closed": ClosedData,
    "complaint.reopened": ReopenedData,
    "complaint.repeated": RepeatedData,
}

_AMOUNT = re.compile(r"^[0-9]+(\.[0-9]{1,2})?$")


@dataclass(frozen=True)
class Envelope:
    event_id: str
    type: str
    complaint_id: str
    occurred_at: datetime  # UTC
    actor: dict[str, str | None]
    data: dict[str, Any]  # validated, defaults filled in; JSON-native values only
    amount: Decimal | None = field(default=None)


def parse_line(line: str | bytes) -> Envelope:
    """Parse one JSON envelope; raise InvalidEvent or BadAmount."""
    try:
        raw = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidEvent(f"not JSON: {e}") from None
    return parse_envelope(raw)


def parse_envelope(raw: Any) -> Envelope:
    if not isinstance(raw, dict):
        raise InvalidEvent("an envelope must be a JSON object")
    event_id = _text(raw, "event_id")
    kind = _text(raw, "type")
    model = DATA_MODELS.get(kind)
    if model is None:
        raise InvalidEvent(f"type: unknown event type {kind!r}")
    complaint_id = _text(raw, "complaint_id")
    occurred_at = _timestamp(raw.get("occurred_at"))
    actor = _validate(Actor, raw.get("actor"), "actor")
    data_raw = raw.get("data", {})
    data = _validate(model, data_raw, "data")
    if kind == "complaint.received" and data.issue_key is None:
        data = data.model_copy(update={"issue_key": data.category})
    if kind == "complaint.assigned" and not data.to.model_dump(exclude_none=True):
        raise InvalidEvent("data.to: names nobody (handler, team_lead or department_head)")
    amount = None
    dumped = data.model_dump(exclude_none=True)
    if kind == "complaint.compensated":
        amount = parse_amount(data.amount)
        dumped["amount"] = f"{amount:.2f}"
    return Envelope(
        event_id=event_id,
        type=kind,
        complaint_id=complaint_id,
        occurred_at=occurred_at,
        actor=actor.model_dump(),
        data=dumped,
        amount=amount,
    )


def parse_amount(value: Any) -> Decimal:
    """A decimal string in CNY, at most 2 decimal places, above zero (never a float)."""
    if not isinstance(value, str) or not _AMOUNT.match(value):
        raise BadAmount(f"data.amount: must be a decimal string with at most 2 decimals, got {value!r}")
    amount = Decimal(value)
    if amount <= 0:
        raise BadAmount(f"data.amount: must be above zero, got {value!r}")
    return amount


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{key}: missing or not a non-empty string")
    return value


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise InvalidEvent("occurred_at: missing or not a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"occurred_at: not an ISO 8601 timestamp: {value!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidEvent(f"occurred_at: needs a UTC offset: {value!r}")
    return moment.astimezone(UTC)


def _validate(model: type[_Data], value: Any, where: str) -> Any:
    if value is None:
        value = {} if where == "data" else None
    if not isinstance(value, dict):
        raise InvalidEvent(f"{where}: missing or not an object")
    try:
        return model.model_validate(value)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in (where, *first["loc"]))
        raise InvalidEvent(f"{loc}: {first['msg']}") from None
