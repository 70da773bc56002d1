"""The inbound envelope (SPEC §2): parse and validate one event, or refuse it with a reason code.

Checks here need no state: JSON shape, enumerations, timestamps, money and the input limits, so
that no line, however hostile, raises anything but a refusal. Unknown keys are tolerated (a
tolerant reader, so senders can add fields without breaking ingest) and listed in
`Envelope.unknown_fields`, never copied into `data`; a missing or unknown *value* is refused.
"""

from __future__ import annotations

import json
import math
import re
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError

from domain.errors import BadAmount, InvalidEvent

# SPEC §2 limits.
MAX_LINE_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_IDENTIFIER = 128
MAX_FREE_TEXT = 4000
MAX_AMOUNT = Decimal("10000000.00")
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# Python's own default, fixed here so that an interpreter setting cannot let a slow one through.
MAX_INT_DIGITS = 4300

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, exactly
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("holds a control character")
    return value


# Ids, roles, units, regions, issue keys and the people named: they end up in keys, logs and reports.
Identifier = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=MAX_IDENTIFIER),
                       AfterValidator(_no_control)]
# Summary, reason, notes, title.
FreeText = Annotated[str, StringConstraints(strict=True, max_length=MAX_FREE_TEXT)]

CHANNELS = ("hotline", "store", "online", "letter", "message", "regulator", "consumer_association",
            "government_hotline", "petition_bureau", "media", "social")
CATEGORIES = ("billing", "network", "service", "product", "marketing", "value_added", "points",
              "privacy", "other")
# SPEC §6, in the only order they may move: latent (潜伏期), outbreak (爆发期), surge (高涨期), decline (衰退期).
OPINION_STAGES = ("latent", "outbreak", "surge", "decline")
ESCALATION_TARGETS = ("team_lead", "department", "branch", "province", "group", "regulator",
                      "consumer_association", "government_hotline", "petition_bureau", "media", "court")


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class Responsible(_Data):
    handler: Identifier
    team_lead: Identifier
    department_head: Identifier
    channel_supervisor: Identifier | None = None


class Reassignment(_Data):
    handler: Identifier | None = None
    team_lead: Identifier | None = None
    department_head: Identifier | None = None


class Approver(_Data):
    id: Identifier
    role: Identifier


class ReceivedData(_Data):
    customer_id: Identifier
    customer_tier: Literal["vip", "premium", "standard"]
    channel: Literal[CHANNELS]  # type: ignore[valid-type]
    category: Literal[CATEGORIES]  # type: ignore[valid-type]
    region: Identifier
    responsible: Responsible
    urgency: Literal["critical", "urgent", "normal"] = "normal"
    coordination: Literal["none", "cross_province", "third_party"] = "none"
    issue_key: Identifier | None = None
    summary: FreeText | None = None
    sensitive: bool = False
    repeat_of: Identifier | None = None
    unrecorded_by_unit: Identifier | None = None


class AssignedData(_Data):
    to: Reassignment
    reason: FreeText | None = None


class ApologisedData(_Data):
    mode: Literal["verbal", "written", "in_person", "public"]


class VerifiedData(_Data):
    liability: Literal["company", "customer", "third_party", "shared", "none"]
    service_fault: bool
    handling_fault: bool
    notes: FreeText | None = None


class CompensatedData(_Data):
    amount: Any  # checked below for bad_amount, after every invalid_event check
    kind: Literal["refund", "credit", "gift", "points", "voucher", "cash"]
    reason: FreeText | None = None
    approved_by: Approver | None = None


class EscalatedData(_Data):
    to: Literal[ESCALATION_TARGETS]  # type: ignore[valid-type]
    reason: FreeText | None = None


class RespondedData(_Data):
    channel: Literal["call", "sms", "visit", "letter", "email"]
    summary: FreeText | None = None
    customer_requested_time: bool = False


class ResolvedData(_Data):
    outcome: Literal["resolved", "partially_resolved", "unresolved", "rejected"]
    summary: FreeText | None = None
    customer_requested_time: bool = False


class ClosedData(_Data):
    satisfaction: Literal["satisfied", "neutral", "dissatisfied", "unreachable"]
    retained: bool | None = None
    customer_requested_time: bool = False


class ReopenedData(_Data):
    reason: FreeText | None = None


class RepeatedData(_Data):
    channel: Identifier | None = None


class PublicOpinionData(_Data):
    stage: Literal[OPINION_STAGES]  # type: ignore[valid-type]
    source: Literal["media", "social", "forum", "news", "other"]
    summary: FreeText | None = None


class CaseAuthor(_Data):
    id: Identifier
    unit: Identifier
    kind: Literal["dedicated_handler", "department"]


class CaseSubmittedData(_Data):
    author: CaseAuthor
    title: FreeText
    complaint_id: Identifier | None = None
    summary: FreeText | None = None


class CaseSelectedData(_Data):
    round: Annotated[str, StringConstraints(strict=True, pattern=r"^[0-9]{4}-Q[1-4]$")]


class Actor(_Data):
    id: Identifier
    role: Identifier
    unit: Identifier | None = None


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
    "complaint.public_opinion": PublicOpinionData,
    "case.submitted": CaseSubmittedData,
    "case.selected": CaseSelectedData,
}
CASE_TYPES = ("case.submitted", "case.selected")  # SPEC §7: keyed by case_id, not complaint_id

_AMOUNT = re.compile(r"[0-9]+(\.[0-9]{1,2})?")  # the whole string: see parse_amount
_ENVELOPE_KEYS = frozenset({"event_id", "type", "occurred_at", "actor", "data"})


@dataclass(frozen=True)
class Envelope:
    event_id: str
    type: str
    complaint_id: str  # "" for a case event
    occurred_at: datetime  # UTC
    actor: dict[str, str | None]
    data: dict[str, Any]  # validated, defaults filled in; JSON-native values only
    amount: Decimal | None = field(default=None)
    unknown_fields: tuple[str, ...] = ()  # "<type>.<path>" of each key the contract does not define
    case_id: str | None = None  # a case event's (SPEC §7), instead of complaint_id


def parse_line(line: str | bytes, *, not_after: datetime | None = None) -> Envelope:
    """Parse one JSON envelope; raise InvalidEvent or BadAmount, never anything else.

    `not_after` (aware) is the latest `occurred_at` allowed: the service passes the wall clock plus
    the policy's max_future_minutes.
    """
    text = _decoded(line)
    if _too_deep(text):
        raise InvalidEvent(f"nested deeper than {MAX_DEPTH} levels")
    try:
        raw = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except ValueError as e:
        raise InvalidEvent(f"not JSON: {e}") from None
    return parse_envelope(raw, not_after=not_after)


def parse_envelope(raw: Any, *, not_after: datetime | None = None) -> Envelope:
    if not isinstance(raw, dict):
        raise InvalidEvent("an envelope must be a JSON object")
    _check_values(raw)
    event_id = _identifier(raw, "event_id")
    kind = _text(raw, "type")
    model = DATA_MODELS.get(kind)
    if model is None:
        raise InvalidEvent(f"type: unknown event type {_shown(kind)}")
    stream = "case_id" if kind in CASE_TYPES else "complaint_id"
    stream_id = _identifier(raw, stream)  # the type says which stream: the other key is an unknown one
    occurred_at = _timestamp(raw.get("occurred_at"), not_after)
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
    unknown = [f"{kind}.{key}" for key in raw if key not in _ENVELOPE_KEYS and key != stream]
    unknown += _unknown(Actor, raw["actor"], f"{kind}.actor.")
    unknown += _unknown(model, data_raw or {}, f"{kind}.")
    return Envelope(
        event_id=event_id,
        type=kind,
        complaint_id=stream_id if stream == "complaint_id" else "",
        occurred_at=occurred_at,
        actor=actor.model_dump(),
        data=dumped,
        amount=amount,
        unknown_fields=tuple(unknown),
        case_id=stream_id if stream == "case_id" else None,
    )


def parse_amount(value: Any) -> Decimal:
    """A decimal string in CNY, at most 2 decimal places, above zero and at most 10,000,000.00."""
    # fullmatch, not match with "$": "$" also matches before a trailing newline.
    if not isinstance(value, str) or not _AMOUNT.fullmatch(value):
        raise BadAmount(f"data.amount: must be a decimal string with at most 2 decimals, got {_shown(value)}")
    amount = Decimal(value)
    if amount <= 0:
        raise BadAmount(f"data.amount: must be above zero, got {_shown(value)}")
    if amount > MAX_AMOUNT:
        raise BadAmount(f"data.amount: must be at most {MAX_AMOUNT}, got {_shown(value)}")
    return amount


def line_size(data: bytes) -> int:
    """Bytes of a line, its line ending (\\n or \\r\\n) not counted: what the 1 MiB limit measures."""
    return len(data) - (2 if data.endswith(b"\r\n") else 1 if data.endswith(b"\n") else 0)


def _decoded(line: str | bytes) -> str:
    """The line as text, after the checks json.loads cannot be trusted with: size, encoding, NUL."""
    if isinstance(line, str):
        try:
            data = line.encode("utf-8")
            surrogate = False
        except UnicodeEncodeError:
            data, surrogate = line.encode("utf-8", "surrogatepass"), True
    else:
        data, surrogate = line, False
    size = line_size(data)
    if size > MAX_LINE_BYTES:
        raise InvalidEvent(f"line is {size} bytes, longer than 1 MiB ({MAX_LINE_BYTES} bytes)")
    if isinstance(line, str):
        if surrogate:
            raise InvalidEvent("holds a lone surrogate")
        text = line
    else:
        try:
            # As json.loads does for bytes, a leading byte order mark is allowed.
            text = line.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise InvalidEvent(f"not UTF-8: byte {e.start}: {e.reason}") from None
    if "\x00" in text:
        raise InvalidEvent("holds a NUL")
    return text


# A JSON string (its closing quote optional, so an unclosed one still costs one pass) or a bracket.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def _too_deep(text: str) -> bool:
    """Nesting beyond MAX_DEPTH, found without json.loads (which recurses, and fails on 100,000)."""
    if text.count("{") + text.count("[") <= MAX_DEPTH:
        return False
    depth = 0
    for token in _TOKEN.finditer(text):
        c = text[token.start()]
        if c in "{[":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif c in "}]":
            depth -= 1
    return False


def _int(token: str) -> int:
    if len(token) > MAX_INT_DIGITS:
        raise InvalidEvent(f"a number with {len(token)} digits, more than {MAX_INT_DIGITS}")
    return int(token)


def _float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise InvalidEvent(f"a number out of range: {_shown(token)}")
    return value


def _constant(token: str) -> Any:
    raise InvalidEvent(f"not JSON: {token} is not a JSON value")


def _check_values(raw: dict[str, Any]) -> None:
    """Depth, NUL and lone surrogates anywhere, keys included (json.loads decodes \\u0000, \\ud800)."""
    stack: list[tuple[Any, str, int]] = [(raw, "", 1)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = ((f"[{i}]", v) for i, v in enumerate(value))
        else:
            continue
        if depth > MAX_DEPTH:
            raise InvalidEvent(f"nested deeper than {MAX_DEPTH} levels")
        for key, item in items:
            path = f"{where}{key}" if isinstance(value, list) or not where else f"{where}.{key}"
            for s in (key, item) if isinstance(value, dict) else (item,):
                if isinstance(s, str):
                    if "\x00" in s:
                        raise InvalidEvent(f"{_shown(path)[1:-1]}: holds a NUL")
                    if not s.isascii() and _SURROGATE.search(s):
                        raise InvalidEvent(f"{_shown(path)[1:-1]}: holds a lone surrogate")
            if isinstance(item, (dict, list)):
                stack.append((item, path, depth + 1))


def _unknown(model: type[_Data], raw: dict[str, Any], prefix: str) -> list[str]:
    """Keys of `raw` (already validated against `model`) that the model does not define, nested ones too."""
    out = []
    for key, value in raw.items():
        info = model.model_fields.get(key)
        if info is None:
            out.append(f"{prefix}{key}")
            continue
        nested = [t for t in (info.annotation, *typing.get_args(info.annotation))
                  if isinstance(t, type) and issubclass(t, _Data)]
        if nested and isinstance(value, dict):
            out += _unknown(nested[0], value, f"{prefix}{key}.")
    return out


def _shown(value: Any) -> str:
    """A value for a message: its repr (NUL and surrogates escaped), cut so the message stays small."""
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:76] + "..." + shown[-1]


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidEvent(f"{key}: missing or not a non-empty string")
    return value


def _identifier(raw: dict[str, Any], key: str) -> str:
    value = _text(raw, key)
    if len(value) > MAX_IDENTIFIER:
        raise InvalidEvent(f"{key}: longer than {MAX_IDENTIFIER} characters")
    if _CONTROL.search(value):
        raise InvalidEvent(f"{key}: holds a control character")
    return value


def _timestamp(value: Any, not_after: datetime | None) -> datetime:
    if not isinstance(value, str):
        raise InvalidEvent("occurred_at: missing or not a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(f"occurred_at: not an ISO 8601 timestamp: {_shown(value)}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidEvent(f"occurred_at: needs a UTC offset: {value!r}")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # year 1 with a positive offset, year 9999 with a negative one
        raise InvalidEvent(f"occurred_at: out of range in UTC: {value!r}") from None
    if moment < EARLIEST:
        raise InvalidEvent(f"occurred_at: {moment.isoformat()} is before {EARLIEST.isoformat()}")
    if not_after is not None and moment > not_after:
        raise InvalidEvent(f"occurred_at: {moment.isoformat()} is after the latest allowed time "
                           f"{not_after.astimezone(UTC).isoformat()}")
    return moment


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
