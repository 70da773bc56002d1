"""The application service: takes inbound envelopes, validates, applies and records them.

A batch is one transaction: every accepted event, every deadline the watcher records, every refusal
and the index changes are saved together or not at all, so a crash never half-applies anything.
"""

from __future__ import annotations

import heapq
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Recording
from eventsourcing.persistence import IntegrityError, Tracking

from domain import clock as wall_clock
from domain.case import Case
from domain.clock import from_us, to_us
from domain.complaint import Complaint, complaint_uuid
from domain.envelope import Envelope, parse_line
from domain.errors import ComplaintExists, InvalidEvent, Rejected, UnknownComplaint
from domain.inbound import DeadLetter, DuplicateDelivery, UnknownFields
from domain.policy import Policy
from domain.rawline import RawLine, storable
from infra.memory import Recent
from infra.privacy import ERASED, Keyring, key_id_of, new_key, seal, seal_data, sealed_fields
from infra.store import IndexChanges, RecoveryApplication
from service.cases import CaseBatch

ACCEPTED, DUPLICATE, REJECTED, BLANK = "accepted", "duplicate", "rejected", "blank"
log = logging.getLogger("recovery.ingest")
SEALING_KEYS_KEPT = 50_000  # customer keys kept between batches (more than the complaints cached)


@dataclass(frozen=True)
class Outcome:
    result: str  # accepted, duplicate, rejected or blank
    raw: str  # the line as text safe to store and print (domain/rawline.py)
    reason: str | None = None
    message: str | None = None
    event_id: str | None = None
    type: str | None = None
    original: str | None = None  # the line's bytes in base64, when `raw` is not exactly them
    unknown_fields: tuple[str, ...] = ()  # keys the contract does not define ("<type>.<path>")


class _LineFault(Exception):
    """Processing one line raised something other than a refusal: a bug, or a value the store
    cannot hold. The batch is run again with that line refused."""

    def __init__(self, index: int, error: BaseException):
        super().__init__(f"{type(error).__name__}: {error}"[:500])
        self.index = index


def _detached(refusal: Rejected) -> Rejected:
    """The refusal without its traceback or the error it replaced: their frames lead back to the
    batch, a reference cycle that would keep the batch in memory until a full garbage collection."""
    refusal.__context__ = refusal.__cause__ = None
    return refusal.with_traceback(None)


class _Batch:
    """What one batch has loaded and changed, before it is saved."""

    def __init__(self, service: IngestService):
        self.service, self.app = service, service.app
        self.complaints: dict[str, Complaint | None] = {}
        self.cases = CaseBatch(service.app)
        self.others: list[Any] = []
        self.index = IndexChanges()
        self.seen: set[str] = set()
        self.issues: list[tuple[str, str, int, str]] = []  # known and new (customer, issue, received, complaint)
        self.refused: set[str] = set()  # sha256 of the lines this batch refused
        self.unknown: dict[str, int] = {}  # keys the contract does not define, by "<type>.<path>"
        self.checked: set[str] = set()  # complaint ids whose existence was looked up in one query
        self.known: set[str] = set()  # ... and those that exist
        self.keyring: Keyring = service.keyring
        self.lookups: dict[str, str] = {}  # customer id -> lookup value
        self.keys: dict[str, tuple[str, bytes]] = {}  # lookup -> (key id, key)
        self.new_keys: dict[str, bytes] = {}  # created by this batch, committed with it
        self.stored_keys: dict[str, bytes] = {}  # key id -> key, for the follow-ups of this batch

    def prefetch(self, envelopes: list[Envelope], window_days: int) -> None:
        """One query each for what the batch will ask: which complaints exist, earlier complaints,
        customers' keys."""
        self.checked = {e.complaint_id for e in envelopes if e.case_id is None}
        self.cases.prefetch(envelopes)
        self.known = self.app.index.known_complaints(sorted(self.checked))
        received = [e for e in envelopes if e.type == "complaint.received"]
        if received:
            since = to_us(min(e.occurred_at for e in received) - timedelta(days=window_days))
            self.lookups = {e.data["customer_id"]: self.keyring.lookup(e.data["customer_id"]) for e in received}
            lookups = sorted(set(self.lookups.values()))
            self.keys = self.keyring.by_lookup(lookups)
            self.issues = self.app.index.customer_issues(lookups, since)
        # The keys that follow-ups with personal data will be sealed with; each one that had left
        # the service's cache was a query of its own.
        self.stored_keys = self.service.sealing_keys({
            key_id for e in envelopes
            if e.type != "complaint.received" and e.complaint_id in self.known and sealed_fields(e.data)
            and (complaint := self.complaint(e.complaint_id)) is not None
            and (key_id := key_id_of(complaint.customer_id)) is not None})

    def customer_key(self, customer_id: str) -> tuple[str, bytes]:
        """The customer's key, created (and written with this batch) on their first complaint."""
        lookup = self.lookups.get(customer_id) or self.keyring.lookup(customer_id)
        if lookup not in self.keys and customer_id not in self.lookups:  # prefetch looked the others up
            self.keys.update(self.keyring.by_lookup([lookup]))
        if lookup not in self.keys:
            key_id, key = new_key()
            self.keys[lookup] = (key_id, key)
            self.new_keys[key_id] = key
            self.index.keys.append((key_id, lookup, key.hex()))
        return self.keys[lookup]

    def key_for(self, env: Envelope, complaint: Complaint | None) -> tuple[str | None, bytes | None]:
        """The key of the envelope's customer: named in a `received`, else its complaint's. No key
        for an erased customer, or when the complaint is unknown."""
        if env.type == "complaint.received" and isinstance(env.data.get("customer_id"), str):
            return self.customer_key(env.data["customer_id"])
        if complaint is None:
            return None, None
        if (key_id := key_id_of(complaint.customer_id)) is not None:
            return key_id, self.new_keys.get(key_id) or self.stored_keys.get(key_id) or self.service.sealing_key(key_id)
        return self.customer_key(complaint.customer_id)  # recorded before personal data was sealed

    def sealed(self, env: Envelope, complaint: Complaint | None) -> Envelope:
        """The envelope with its personal fields sealed with the customer's key (not kept without one)."""
        if not sealed_fields(env.data):
            return env
        return replace(env, data=seal_data(env.data, *self.key_for(env, complaint)))

    def about(self, env: Envelope) -> Complaint | None:
        """The recorded complaint a case event is about (its data.complaint_id), if any: a case's
        write-up may describe that complaint's customer, so it is sealed with their key."""
        named = env.data.get("complaint_id") if env.case_id is not None else None
        return self.complaint(named) if isinstance(named, str) else None

    def sealed_case(self, env: Envelope) -> Envelope:
        """A case event with its free text sealed like the customer's own words, when it is about
        a recorded complaint (else as it came: it names nobody we know)."""
        about = self.about(env)
        return self.sealed(env, about) if about is not None else env

    def sealed_line(self, line: RawLine, env: Envelope | None) -> tuple[str, str | None]:
        """A refused line as it is kept: sealed whole (text and original bytes) when it names a
        customer we hold a key for, "[erased]" when that customer was erased, else as it came."""
        named = env if env is not None else _named(line.text)
        if named is None:
            return line.text, line.original_b64
        if named.case_id is not None:  # a case names a customer only through the complaint it is about
            complaint = self.about(named)
        else:
            complaint = None if named.type == "complaint.received" else self.complaint(named.complaint_id)
        if named.type != "complaint.received" and complaint is None:
            return line.text, line.original_b64  # names no complaint we know, so no customer either
        key_id, key = self.key_for(named, complaint)
        if not key_id or key is None:
            return ERASED, None
        return seal(key_id, key, line.text), (seal(key_id, key, line.original_b64) if line.original_b64 else None)

    def complaint(self, complaint_id: str) -> Complaint | None:
        if complaint_id not in self.complaints:
            if complaint_id in self.checked and complaint_id not in self.known:
                return None  # never received (and not received earlier in this batch)
            try:
                # The cached aggregate itself, not a deep copy (the costliest step of a small batch):
                # a batch that fails clears the cache (IngestService.ingest).
                self.complaints[complaint_id] = self.app.repository.get(complaint_uuid(complaint_id),
                                                                         deepcopy_from_cache=False)
            except AggregateNotFoundError:
                self.complaints[complaint_id] = None
        return self.complaints[complaint_id]

    def twins(self, env: Envelope, window_days: int) -> list[tuple[int, str]]:
        """(received, complaint) of the customer's other complaints on the same issue within the
        window either side of this one, from the index and this batch."""
        at, window = to_us(env.occurred_at), window_days * 86_400_000_000
        key = (self.lookups[env.data["customer_id"]], env.data["issue_key"])
        return sorted({(r, c) for cust, issue, r, c in self.issues
                       if (cust, issue) == key and abs(r - at) <= window and c != env.complaint_id})

    def detect_repeat(self, env: Envelope, window_days: int) -> str | None:
        """The complaint this one repeats: the sender's `repeat_of`, else the most recent earlier
        twin by `received` (ties broken by complaint id, so arrival order never decides)."""
        if env.data.get("repeat_of"):
            return cast(str, env.data["repeat_of"])
        me = (to_us(env.occurred_at), env.complaint_id)
        earlier = [t for t in self.twins(env, window_days) if t < me]
        return earlier[-1][1] if earlier else None

    def link_later_twins(self, env: Envelope, window_days: int) -> None:
        """SPEC §2.1: an earlier complaint that arrives after later ones of the same customer and
        issue becomes what each of those repeats, where it is closer than what they repeated."""
        me = (to_us(env.occurred_at), env.complaint_id)
        twins = self.twins(env, window_days)
        received = {c: r for r, c in twins}
        for r, c in twins:
            if (r, c) <= me:
                continue
            later = self.complaint(c)
            if later is None or later.repeat_explicit:
                continue
            linked = later.repeat_of
            if linked is None or (linked in received and (received[linked], linked) < me):
                later.link_repeat(env.complaint_id)


# A sender choosing keys must not grow the read model without bound: keys are cut, and a batch
# records the most frequent ones, the rest under one name.
MAX_KEY, MAX_KEYS = 200, 50
OTHER_KEYS = "(other keys)"


def _bounded(counts: dict[str, int]) -> dict[str, int]:
    if len(counts) <= MAX_KEYS:
        return counts
    kept = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_KEYS - 1])
    kept[OTHER_KEYS] = sum(counts.values()) - sum(kept.values())
    return kept


def _ANY_COMPLAINT(complaint_id: str) -> bool:
    return True


def _storable_text(value: Any) -> bool:
    """A non-empty string that is valid Unicode (no lone surrogate an escape may have made)."""
    if not isinstance(value, str) or not value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _named(text: str) -> Envelope | None:
    """Whom a line that is not a valid envelope names, as far as it can be read: its complaint and,
    on a `received`, its customer. Only to seal what names a customer."""
    try:
        raw = json.loads(text)
    except Exception:  # noqa: BLE001 - not JSON (or too deep to read): it names nobody we can tell
        return None
    if not isinstance(raw, dict) or not _storable_text(raw.get("complaint_id")):
        return None
    data = raw["data"] if isinstance(raw.get("data"), dict) else {}
    kind = raw["type"] if raw.get("type") == "complaint.received" and _storable_text(data.get("customer_id")) \
        else "complaint.unknown"
    return Envelope(event_id="", type=kind, complaint_id=raw["complaint_id"], occurred_at=datetime.min,
                    actor={}, data={"customer_id": data["customer_id"]} if kind == "complaint.received" else {})


class IngestService:
    """Applies envelopes in order. The deadline watcher runs on event time: its clock is the latest
    accepted `occurred_at` minus the allowed lateness, and never moves backwards."""

    def __init__(self, app: RecoveryApplication, policy: Policy, *, watcher: str = "event",
                 lateness_seconds: int | None = None):
        if watcher not in ("event", "wall"):
            raise ValueError(f"watcher must be 'event' or 'wall', not {watcher!r}")
        self.app, self.policy, self.watcher = app, policy, watcher
        # Which complaints this process may write besides those its events name. With Kafka, only
        # complaints in its own partitions: one writer per complaint keeps cached aggregates fresh.
        self.owns: Callable[[str], bool] = _ANY_COMPLAINT
        self._writer_token: int | None = None  # the any-complaint writer token last seen (or written)
        self.keyring = Keyring(app)
        self._sealing_keys: Recent[str, bytes] = Recent(SEALING_KEYS_KEPT)
        self.recorded: list[Recording[UUID]] = []  # saved since the read model last took them
        default = policy.file_lateness_seconds if watcher == "event" else policy.live_lateness_seconds
        self.lateness = timedelta(seconds=default if lateness_seconds is None else lateness_seconds)

    def sealing_key(self, key_id: str) -> bytes | None:
        """A stored customer key by id, kept across batches once found (a key erased meanwhile only
        seals text that nobody can read any more, which is what erasure asks); None when it is
        not stored (erased: the text is not kept)."""
        return self.sealing_keys({key_id}).get(key_id)

    def sealing_keys(self, key_ids: set[str]) -> dict[str, bytes]:
        """The stored ones among these keys: those kept, and the others read in one query."""
        found = {k: key for k in key_ids if (key := self._sealing_keys.get(k)) is not None}
        if missing := sorted(key_ids - found.keys()):
            for key_id, key in self.keyring.by_id(missing).items():
                self._sealing_keys[key_id] = found[key_id] = key
        return found

    def take_recorded(self) -> list[Recording[UUID]]:
        """What this service has saved since the last call, in log order (for the read model)."""
        recorded, self.recorded = self.recorded, []
        return recorded

    def tick(self) -> None:
        """Record the deadlines the clock has passed, with no inbound event (the live watcher)."""
        self.ingest([])

    def ingest(self, lines: Sequence[str | bytes], source: str = "file",
               positions: list[Tracking] | None = None, sources: Sequence[str] | None = None,
               retry: bool | Sequence[bool] = False) -> list[Outcome]:
        """Apply a batch in one transaction; `positions` (upstream offsets) commit with it. No line
        stops the batch: a refusal is a dead letter, and a line whose processing fails otherwise
        (a bug, a value the store cannot hold) is refused as invalid_event and the batch runs again
        without it. `retry` (for all lines, or per line): evaluate a line again even if the same
        line was refused before (`ingest --retry-refused`, `dlq replay`)."""
        retries = [retry] * len(lines) if isinstance(retry, bool) else list(retry)
        origins = list(sources) if sources else [source] * len(lines)
        with self.app.writer.held():
            return self._isolating(list(lines), origins, positions, retries)

    def _isolating(self, lines: list[str | bytes], origins: list[str], positions: list[Tracking] | None,
                   retries: list[bool]) -> list[Outcome]:
        faults: dict[int, str] = {}
        conflicts = 0
        while True:
            try:
                return self._ingest(lines, origins, positions, retries, faults)
            except _LineFault as fault:
                # The batch changed cached aggregates in place and was not saved: forget them all.
                self.app.forget_cached()
                faults[fault.index] = str(fault)
                log.error(json.dumps({"event": "line_failed", "source": origins[fault.index],
                                      "error": str(fault)}))
            except IntegrityError:
                # With the writer lock held, a version conflict means a cached complaint was
                # stale (another process wrote it): once more from the store. A second conflict is
                # an upstream position another consumer passed: the caller's business.
                self.app.forget_cached()
                conflicts += 1
                if conflicts > 1:
                    raise
            except Exception as error:
                self.app.forget_cached()
                if not self.app.dialect.answers(self.app.datastore) or len(faults) == len(lines):
                    raise  # the database is away, or refuses even dead letters: not the lines' fault
                if len(lines) == 1:
                    faults[0] = f"could not be stored: {type(error).__name__}: {error}"[:500]
                    log.error(json.dumps({"event": "line_failed", "source": origins[0], "error": faults[0]}))
                    continue
                # Some line's values broke the write: halves, down to the line. The positions
                # commit with the last part, so a crash in between re-reads the rest (the first
                # part's lines then count as duplicates).
                half = len(lines) // 2
                return (self._isolating(lines[:half], origins[:half], None, retries[:half])
                        + self._isolating(lines[half:], origins[half:], positions, retries[half:]))
            except BaseException:
                self.app.forget_cached()
                raise

    def _ingest(self, lines: list[str | bytes], origins: list[str], positions: list[Tracking] | None,
                retries: list[bool], faults: dict[int, str]) -> list[Outcome]:
        batch = _Batch(self)
        batch.index.positions = list(positions or [])
        state = self.app.index.watcher_state()
        if state.get("writer") != self._writer_token:
            self.app.forget_cached()  # a process that may write any complaint wrote since our last batch
        self._writer_token = state.get("writer")

        raws: list[RawLine | None] = []
        parsed: list[Envelope | Rejected | None] = []
        not_after = wall_clock.now() + timedelta(minutes=self.policy.max_future_minutes)
        for i, line in enumerate(lines):
            body = line.rstrip(b"\r\n") if isinstance(line, bytes) else line.rstrip("\r\n")
            if not body.strip():
                raws.append(None)
                parsed.append(None)  # a blank line is not an envelope (SPEC §2)
                continue
            raws.append(storable(body))
            try:
                if i in faults:
                    raise InvalidEvent(faults[i])
                parsed.append(parse_line(body, not_after=not_after))
            except Rejected as refusal:
                parsed.append(_detached(refusal))
            except Exception as error:  # noqa: BLE001 - whatever parsing raises refuses this line only
                parsed.append(InvalidEvent(f"could not be read: {type(error).__name__}: {error}"[:500]))
        envelopes = [p for p in parsed if isinstance(p, Envelope)]
        already = self.app.index.seen_event_ids([e.event_id for e in envelopes])
        refused_before = self.app.index.refused_lines([r.sha256 for r in raws if r is not None])
        batch.prefetch(envelopes, max(v.repeat_window_days for v in self.policy.every_version()))

        stored_clock = state.get("event_time")
        clock = from_us(stored_clock) if stored_clock is not None else None
        if self.watcher == "wall":
            clock = max(filter(None, (clock, wall_clock.now() - self.lateness)))
            horizon: datetime | None = clock
        else:
            latest = max([e.occurred_at for e in envelopes], default=None)
            horizon = latest - self.lateness if latest is not None else None
        due: list[tuple[int, str]] = []
        if horizon is not None:
            due = self.app.index.deadlines_before(to_us(horizon))
            heapq.heapify(due)

        outcomes = []
        accepted_at: list[int] = []
        for i, (raw, item) in enumerate(zip(raws, parsed)):
            origin = origins[i]
            if raw is None:
                outcomes.append(Outcome(BLANK, ""))
                continue
            env = item if isinstance(item, Envelope) else None
            again = raw.sha256 in batch.refused or (raw.sha256 in refused_before and not retries[i])
            if again or (env is not None and (env.event_id in already or env.event_id in batch.seen)):
                batch.others.append(DuplicateDelivery(env.event_id if env else None,
                                                      env.complaint_id or None if env else None,
                                                      env.type if env else None, origin))
                outcomes.append(Outcome(DUPLICATE, raw.text, event_id=env.event_id if env else None,
                                        type=env.type if env else None))
                continue
            if isinstance(item, Rejected):
                outcomes.append(self._refuse(batch, raw, item, None, origin, raw.sha256 in refused_before))
                continue
            assert env is not None
            try:
                try:
                    complaint, repeat_of = self._decide(batch, env)
                except Rejected as refusal:
                    outcomes.append(self._refuse(batch, raw, _detached(refusal), env, origin,
                                                 raw.sha256 in refused_before))
                    continue
                if self.watcher == "event":
                    candidate = env.occurred_at - self.lateness
                    if clock is None or candidate > clock:
                        clock = candidate
                if clock is not None:
                    self._record_missed(batch, due, clock)
                self._apply(batch, env, complaint, repeat_of, due)
            except Exception as error:  # noqa: BLE001 - any fault of one line refuses that line alone
                raise _LineFault(i, error) from None
            batch.seen.add(env.event_id)
            accepted_at.append(to_us(env.occurred_at))
            for name in env.unknown_fields:
                batch.unknown[name[:MAX_KEY]] = batch.unknown.get(name[:MAX_KEY], 0) + 1
            outcomes.append(Outcome(ACCEPTED, raw.text, event_id=env.event_id, type=env.type,
                                    unknown_fields=env.unknown_fields))
        if clock is not None:
            self._record_missed(batch, due, clock)
            batch.index.watcher_clock = to_us(clock)
        if accepted_at:
            batch.index.latest_occurred = max(accepted_at)
        if batch.unknown:
            batch.others.append(UnknownFields(_bounded(batch.unknown), origins[0] if origins else ""))
        if self.owns is _ANY_COMPLAINT and (batch.complaints or batch.cases.cases or batch.others):
            self._writer_token = batch.index.writer_token = secrets.randbits(62)
        if len(self.recorded) > 20_000:
            self.recorded.clear()  # nobody takes them: the read model reads the log instead
        self.recorded += self.app.save(*(c for c in batch.complaints.values() if c is not None and c.pending_events),
                                       *batch.cases.pending(), *batch.others, index=batch.index)
        for key_id, key in batch.new_keys.items():
            self._sealing_keys[key_id] = key
        return outcomes

    def _decide(self, batch: _Batch, env: Envelope) -> tuple[Complaint | Case | None, str | None]:
        """Raise the refusal due, in SPEC order; return the complaint (or case) and any repeat link."""
        if env.case_id is not None:
            return batch.cases.decide(env, self.policy), None
        complaint = batch.complaint(env.complaint_id)
        if env.type == "complaint.received":
            if complaint is not None:
                raise ComplaintExists(f"complaint {env.complaint_id} was already received")
            return None, batch.detect_repeat(env, self.policy.at(env.occurred_at).repeat_window_days)
        if complaint is None:
            raise UnknownComplaint(f"complaint {env.complaint_id} was never received")
        complaint.check(env, self.policy)
        return complaint, None

    def _apply(self, batch: _Batch, env: Envelope, complaint: Complaint | Case | None,
               repeat_of: str | None, due: list[tuple[int, str]]) -> None:
        if env.case_id is not None:
            batch.cases.apply(batch.sealed_case(env), cast("Case | None", complaint), batch.index)
            return
        assert not isinstance(complaint, Case)
        batch.index.inbound.append((env.event_id, env.complaint_id))
        lookup = batch.lookups.get(env.data.get("customer_id", ""))
        plain, env = env, batch.sealed(env, complaint)
        if complaint is None:
            complaint = Complaint.receive(env, self.policy.at(env.occurred_at), repeat_of)
            batch.complaints[env.complaint_id] = complaint
            batch.known.add(env.complaint_id)
            deadline = to_us(complaint.deadline)
            batch.index.deadlines[env.complaint_id] = deadline
            heapq.heappush(due, (deadline, env.complaint_id))
            issue = (cast(str, lookup), env.data["issue_key"], to_us(env.occurred_at), env.complaint_id)
            batch.index.customer_issues.append(issue)
            batch.issues.append(issue)
            if lookup is not None:
                batch.link_later_twins(plain, self.policy.at(plain.occurred_at).repeat_window_days)
            return
        first_resolve = env.type == "complaint.resolved" and complaint.first_resolved_at is None
        if first_resolve and complaint.is_overdue(env.occurred_at):
            # The allowed lateness delays the watcher, it never forgives a late resolve (SPEC §3.1).
            complaint.miss_deadline()
        complaint.record(env, self.policy)
        if first_resolve:
            batch.index.deadlines[env.complaint_id] = None

    def _record_missed(self, batch: _Batch, due: list[tuple[int, str]], clock: datetime) -> None:
        """Every deadline strictly earlier than the clock, not yet resolved, is recorded as missed."""
        limit = to_us(clock)
        while due and due[0][0] < limit:
            _, complaint_id = heapq.heappop(due)
            if not self.owns(complaint_id):
                continue  # another process's complaint: it stays in the index for its owner
            complaint = batch.complaint(complaint_id)
            if complaint is not None and complaint.is_overdue(clock):
                complaint.miss_deadline()
            if complaint is None or complaint.first_resolved_at is not None or complaint.deadline_missed:
                batch.index.deadlines[complaint_id] = None

    def _refuse(self, batch: _Batch, raw: RawLine, refusal: Rejected, env: Envelope | None,
                source: str, refused_before: bool) -> Outcome:
        """A dead letter. A line refused before and evaluated again on request that is refused again
        is marked `again`: it goes to the dead-letter topic again, and counts as a duplicate."""
        batch.refused.add(raw.sha256)
        try:
            text, original = batch.sealed_line(raw, env)
        except Exception as error:  # noqa: BLE001 - a line that cannot even be kept is still refused, keeping nothing
            log.error(json.dumps({"event": "dead_letter_unsealable", "source": source,
                                  "error": f"{type(error).__name__}: {error}"[:300]}))
            text, original = f"[a line of {raw.length} bytes that could not be kept; sha256 {raw.sha256}]", None
        batch.others.append(DeadLetter(
            reason=refusal.reason, message=refusal.message, raw=text,
            event_id=env.event_id if env else None, complaint_id=env.complaint_id or None if env else None,
            type=env.type if env else None, source=source, line_sha256=raw.sha256, length=raw.length,
            original=original, again=refused_before,
        ))
        if not refused_before:
            batch.index.refused.append((raw.sha256, refusal.reason))
        if text == ERASED:  # its customer was erased: the dead-letter file keeps nothing of it either
            raw = replace(raw, text=ERASED, original_b64=None)
        return Outcome(REJECTED, raw.text, refusal.reason, refusal.message,
                       env.event_id if env else None, env.type if env else None, raw.original_b64)
