"""The application service: takes inbound envelopes, validates, applies and records them.

A batch is one transaction: every accepted event, every deadline the watcher records, every refusal
and the index changes are saved together or not at all, so a crash never half-applies anything.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from collections.abc import Callable
from typing import Any

from eventsourcing.application import AggregateNotFoundError, Recording
from eventsourcing.persistence import Tracking

from domain import clock as wall_clock
from domain.clock import from_us, to_us
from domain.complaint import Complaint, complaint_uuid
from domain.envelope import Envelope, parse_line
from domain.errors import ComplaintExists, Rejected, UnknownComplaint
from domain.inbound import DeadLetter, DuplicateDelivery
from domain.policy import Policy
from infra.memory import Recent
from infra.privacy import Keyring, key_id_of, new_key, seal, seal_data, sealed_fields
from infra.store import IndexChanges, RecoveryApplication

ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"
SEALING_KEYS_KEPT = 50_000  # customer keys kept between batches (more than the complaints cached)


@dataclass(frozen=True)
class Outcome:
    result: str  # accepted, duplicate or rejected
    raw: str
    reason: str | None = None
    message: str | None = None
    event_id: str | None = None
    type: str | None = None


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
        self.others: list[Any] = []
        self.index = IndexChanges()
        self.seen: set[str] = set()
        self.issues: list[tuple[str, str, int, str]] = []  # known and new (customer, issue, received, complaint)
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
        self.checked = {e.complaint_id for e in envelopes}
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

    def sealed_raw(self, raw: str, env: Envelope | None) -> str:
        """A refused line, sealed whole when it names a customer we hold a key for. A line that
        could not be parsed, or names an unknown complaint, is kept as it came."""
        if env is None:
            return raw
        complaint = None if env.type == "complaint.received" else self.complaint(env.complaint_id)
        key_id, key = self.key_for(env, complaint)
        return seal(key_id, key, raw) if key_id and key is not None else raw

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

    def detect_repeat(self, env: Envelope, window_days: int) -> str | None:
        if env.data.get("repeat_of"):
            return env.data["repeat_of"]
        until = to_us(env.occurred_at)
        since = to_us(env.occurred_at - timedelta(days=window_days))
        key = (self.lookups[env.data["customer_id"]], env.data["issue_key"])
        candidates = [(r, c) for cust, issue, r, c in self.issues
                      if (cust, issue) == key and since <= r <= until and c != env.complaint_id]
        return max(candidates)[1] if candidates else None


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
        self.owns: Callable[[str], bool] = lambda complaint_id: True
        self.keyring = Keyring(app)
        self._sealing_keys: Recent[str, bytes] = Recent(SEALING_KEYS_KEPT)
        self.recorded: list[Recording] = []  # saved since the read model last took them
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

    def take_recorded(self) -> list[Recording]:
        """What this service has saved since the last call, in log order (for the read model)."""
        recorded, self.recorded = self.recorded, []
        return recorded

    def tick(self) -> None:
        """Record the deadlines the clock has passed, with no inbound event (the live watcher)."""
        self.ingest([])

    def ingest(self, lines: list[str | bytes], source: str = "file",
               positions: list[Tracking] | None = None, sources: list[str] | None = None) -> list[Outcome]:
        """Apply a batch in one transaction; `positions` (upstream offsets) commit with it."""
        try:
            return self._ingest(lines, source, positions, sources)
        except BaseException:
            # The batch changed cached aggregates in place and was not saved: forget them all.
            self.app.forget_cached()
            raise

    def _ingest(self, lines: list[str | bytes], source: str, positions: list[Tracking] | None,
                sources: list[str] | None) -> list[Outcome]:
        batch = _Batch(self)
        batch.index.positions = list(positions or [])
        parsed: list[Envelope | Rejected] = []
        raws: list[str] = []
        for line in lines:
            raw = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
            raws.append(raw.rstrip("\n"))
            try:
                parsed.append(parse_line(line))
            except Rejected as refusal:
                parsed.append(_detached(refusal))
        envelopes = [p for p in parsed if isinstance(p, Envelope)]
        already = self.app.index.seen_event_ids([e.event_id for e in envelopes])
        batch.prefetch(envelopes, self.policy.repeat_window_days)

        stored_clock = self.app.index.watcher_clock()
        clock = from_us(stored_clock) if stored_clock is not None else None
        if self.watcher == "wall":
            clock = max(filter(None, (clock, wall_clock.now() - self.lateness)))
            horizon = clock
        else:
            latest = max([e.occurred_at for e in envelopes], default=None)
            horizon = latest - self.lateness if latest is not None else None
        due: list[tuple[int, str]] = []
        if horizon is not None:
            due = self.app.index.deadlines_before(to_us(horizon))
            heapq.heapify(due)

        outcomes = []
        for i, (raw, item) in enumerate(zip(raws, parsed)):
            origin = sources[i] if sources else source
            if isinstance(item, Rejected):
                outcomes.append(self._refuse(batch, raw, item, None, origin))
                continue
            env = item
            if env.event_id in already or env.event_id in batch.seen:
                batch.others.append(DuplicateDelivery(env.event_id, env.complaint_id, env.type, origin))
                outcomes.append(Outcome(DUPLICATE, raw, event_id=env.event_id, type=env.type))
                continue
            try:
                complaint, repeat_of = self._decide(batch, env)
            except Rejected as refusal:
                outcomes.append(self._refuse(batch, raw, refusal, env, origin))
                continue
            if self.watcher == "event":
                candidate = env.occurred_at - self.lateness
                if clock is None or candidate > clock:
                    clock = candidate
            if clock is not None:
                self._record_missed(batch, due, clock)
            self._apply(batch, env, complaint, repeat_of, due)
            batch.seen.add(env.event_id)
            outcomes.append(Outcome(ACCEPTED, raw, event_id=env.event_id, type=env.type))
        if clock is not None:
            self._record_missed(batch, due, clock)
            batch.index.watcher_clock = to_us(clock)
        if len(self.recorded) > 20_000:
            self.recorded.clear()  # nobody takes them: the read model reads the log instead
        self.recorded += self.app.save(*(c for c in batch.complaints.values() if c is not None and c.pending_events),
                                       *batch.others, index=batch.index)
        for key_id, key in batch.new_keys.items():
            self._sealing_keys[key_id] = key
        return outcomes

    def _decide(self, batch: _Batch, env: Envelope) -> tuple[Complaint | None, str | None]:
        """Raise the refusal due, in SPEC order; return the complaint and any repeat link."""
        complaint = batch.complaint(env.complaint_id)
        if env.type == "complaint.received":
            if complaint is not None:
                raise ComplaintExists(f"complaint {env.complaint_id} was already received")
            return None, batch.detect_repeat(env, self.policy.repeat_window_days)
        if complaint is None:
            raise UnknownComplaint(f"complaint {env.complaint_id} was never received")
        complaint.check(env, self.policy)
        return complaint, None

    def _apply(self, batch: _Batch, env: Envelope, complaint: Complaint | None,
               repeat_of: str | None, due: list[tuple[int, str]]) -> None:
        batch.index.inbound.append((env.event_id, env.complaint_id))
        lookup = batch.lookups.get(env.data.get("customer_id", ""))
        env = batch.sealed(env, complaint)
        if complaint is None:
            complaint = Complaint.receive(env, self.policy, repeat_of)
            batch.complaints[env.complaint_id] = complaint
            batch.known.add(env.complaint_id)
            deadline = to_us(complaint.deadline)
            batch.index.deadlines[env.complaint_id] = deadline
            heapq.heappush(due, (deadline, env.complaint_id))
            issue = (lookup, env.data["issue_key"], to_us(env.occurred_at), env.complaint_id)
            batch.index.customer_issues.append(issue)
            batch.issues.append(issue)
            return
        first_resolve = env.type == "complaint.resolved" and complaint.first_resolved_at is None
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

    def _refuse(self, batch: _Batch, raw: str, refusal: Rejected, env: Envelope | None,
                source: str) -> Outcome:
        batch.others.append(DeadLetter(
            reason=refusal.reason, message=refusal.message, raw=batch.sealed_raw(raw, env),
            event_id=env.event_id if env else None, complaint_id=env.complaint_id if env else None,
            type=env.type if env else None, source=source,
        ))
        return Outcome(REJECTED, raw, refusal.reason, refusal.message,
                       env.event_id if env else None, env.type if env else None)
