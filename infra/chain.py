"""Tamper evidence, computed at write time in the transaction that records the events.

Every stored event gets a hash chained to the previous event of the same aggregate (a complaint,
a dead letter, a duplicate delivery): sha256 over the previous hash, the aggregate id, the version,
the event's topic and its stored bytes. Every write transaction adds a block to a chain over the
whole log: sha256 over the previous block's hash, the block's notification-id range and the hashes
of its events in log order. Altering an event breaks its hash; deleting one leaves a gap in its
aggregate's versions and a block whose events are missing; inserting one leaves an event without a
recorded hash outside every block; moving events in the log breaks the hash of their blocks.

The tables are ordinary tables beside the events, so someone with write access could rewrite them
too: keep `recovery audit verify`'s latest block hash (it prints it) outside the database, and
compare it next time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infra.sql import Cursor, Dialect

if TYPE_CHECKING:
    from infra.store import RecoveryApplication  # which records its events through record_chain

GENESIS = "0" * 64


def event_hash(previous: str, originator_id: str, version: int, topic: str, state: bytes) -> str:
    digest = hashlib.sha256()
    for part in (previous, originator_id, str(version), topic):
        digest.update(part.encode())
        digest.update(b"\x1f")
    digest.update(state)
    return digest.hexdigest()


def block_hash(previous: str, first_id: int, last_id: int, hashes: Sequence[str]) -> str:
    digest = hashlib.sha256(f"{previous}\x1f{first_id}\x1f{last_id}".encode())
    for h in hashes:
        digest.update(b"\x1f" + h.encode())
    return digest.hexdigest()


def _hex(originator_id: Any) -> str:
    return originator_id.hex if hasattr(originator_id, "hex") else str(originator_id)


def record_chain(dialect: Dialect, cursor: Cursor, stored_events: Sequence[Any],
                 notification_ids: Sequence[int]) -> None:
    """Chain the events one write transaction recorded (they hold the log's write lock)."""
    if not stored_events:
        return
    originators = sorted({_hex(e.originator_id) for e in stored_events})
    last: dict[str, tuple[int, str]] = {}
    if dialect.postgres:  # each aggregate's newest hash only: one index probe and row per aggregate
        found = dialect.rows(cursor, "SELECT o AS originator_id, r.originator_version, r.hash"
                             " FROM unnest(%s::text[]) AS o"
                             " CROSS JOIN LATERAL (SELECT originator_version, hash FROM recovery_chain"
                             " WHERE originator_id = o ORDER BY originator_version DESC LIMIT 1) AS r", (originators,))
    else:
        found = dialect.rows_in(cursor, "SELECT originator_id, originator_version, hash FROM recovery_chain",
                                "originator_id", originators)
    for row in found:
        known = last.get(row["originator_id"])
        if known is None or row["originator_version"] > known[0]:
            last[row["originator_id"]] = (row["originator_version"], row["hash"])
    # Every read before any write: on PostgreSQL this runs in pipeline mode, where reading a result
    # behind a pending write is unreliable.
    before = dialect.rows(cursor, "SELECT hash FROM recovery_log_chain ORDER BY last_id DESC LIMIT 1")
    rows, hashes = [], []
    for event, notification_id in zip(stored_events, notification_ids):
        originator = _hex(event.originator_id)
        previous = last.get(originator, (0, GENESIS))[1]
        h = event_hash(previous, originator, event.originator_version, event.topic, bytes(event.state))
        last[originator] = (event.originator_version, h)
        rows.append((originator, event.originator_version, notification_id, h))
        hashes.append(h)
    dialect.insert(cursor, "recovery_chain", ("originator_id", "originator_version", "notification_id", "hash"),
                   ("text", "bigint", "bigint", "text"), rows)
    first, final = min(notification_ids), max(notification_ids)
    ordered = [h for _, h in sorted(zip(notification_ids, hashes))]
    dialect.execute(cursor, "INSERT INTO recovery_log_chain VALUES (?, ?, ?, ?)",
                    (final, first, len(hashes), block_hash(before[0]["hash"] if before else GENESIS,
                                                            first, final, ordered)))


@dataclass(frozen=True)
class Problem:
    kind: str  # altered, deleted, inserted, reordered
    notification_id: int | None
    originator_id: str | None
    version: int | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"problem": self.kind, "notification_id": self.notification_id, "aggregate": self.originator_id,
                "version": self.version, "detail": self.detail}


@dataclass
class Verdict:
    events: int
    blocks: int
    head: str  # the newest block's hash: keep it somewhere else to compare next time
    problems: list[Problem]


def verify(app: RecoveryApplication, batch_size: int = 5000, expect_head: str | None = None) -> Verdict:
    """Re-walk the whole log against both chains; name every event that does not fit. Writes that
    commit while it runs are left for the next verification. `expect_head`: a head printed by an
    earlier verification, which must still be in the chain."""
    dialect, recorder = app.dialect, app.recorder
    # The writes recorded so far; a write that commits while this runs has its block, hashes and
    # events committed together, after this read: its events are left for the next verification.
    with app.datastore.transaction(commit=False) as c:
        blocks = dialect.rows(c, "SELECT * FROM recovery_log_chain ORDER BY last_id")
    upto = max([0, *(b["last_id"] for b in blocks)])
    problems: list[Problem] = []
    recomputed: dict[int, str] = {}  # log position -> hash of the event found there
    chained: set[tuple[str, int]] = set()
    events = 0
    for batch in _log(recorder, batch_size):
        with app.datastore.transaction(commit=False) as c:
            recorded = {(r["originator_id"], r["originator_version"]): r for r in dialect.rows_in(
                c, "SELECT * FROM recovery_chain", "originator_id", sorted({_hex(n.originator_id) for n in batch}))}
        for n in batch:
            originator, version = _hex(n.originator_id), n.originator_version
            row = recorded.get((originator, version))
            if n.id > upto and row is not None:
                continue  # written after the blocks were read
            events += 1
            # Each event is checked against the hash recorded for the version before it, so one
            # altered or missing event is named alone, wherever it sits in the log.
            before = GENESIS if version == 1 else (recorded.get((originator, version - 1)) or {}).get("hash", GENESIS)
            h = recomputed[n.id] = event_hash(before, originator, version, n.topic, bytes(n.state))
            if row is None:
                problems.append(Problem("inserted", n.id, originator, version, "no hash was recorded for this event"))
                continue
            chained.add((originator, version))
            if row["hash"] != h:
                problems.append(Problem("altered", n.id, originator, version,
                                        "stored event does not match the hash recorded when it was written"))
            elif row["notification_id"] != n.id:
                problems.append(Problem("reordered", n.id, originator, version,
                                        f"written at log position {row['notification_id']}, found at {n.id}"))
    with app.datastore.transaction(commit=False) as c:
        missing = [r for r in dialect.rows(c, "SELECT originator_id, originator_version, notification_id"
                                              " FROM recovery_chain WHERE notification_id <= ?"
                                              " ORDER BY notification_id",
                                           (upto,))
                   if (r["originator_id"], r["originator_version"]) not in chained]
    for r in missing:
        problems.append(Problem("deleted", r["notification_id"], r["originator_id"], r["originator_version"],
                                "an event written here is gone"))
    head = GENESIS
    in_blocks: set[int] = set()
    for b in blocks:
        ids = [i for i in range(b["first_id"], b["last_id"] + 1) if i in recomputed]
        in_blocks.update(ids)
        expected = block_hash(head, b["first_id"], b["last_id"], [recomputed[i] for i in ids])
        named = any(p.notification_id is not None and b["first_id"] <= p.notification_id <= b["last_id"]
                    for p in problems)
        if expected != b["hash"] and not named:
            problems.append(Problem("reordered" if len(ids) == b["events"] else "deleted", b["first_id"], None, None,
                                    f"log positions {b['first_id']}..{b['last_id']} no longer hold the events "
                                    "written there, in that order"))
        head = b["hash"]
    if expect_head and expect_head not in {b["hash"] for b in blocks}:
        problems.append(Problem("deleted", None, None, None, f"the head {expect_head} of an earlier verification is "
                                "no longer in the chain: recorded writes were removed or rewritten"))
    for i in sorted(set(recomputed) - in_blocks):
        if not any(p.notification_id == i for p in problems):
            problems.append(Problem("inserted", i, None, None, "event outside every recorded write"))
    return Verdict(events, len(blocks), head, sorted(problems, key=lambda p: (p.notification_id or 0, p.kind)))


def _log(recorder: Any, batch_size: int) -> Iterator[list[Any]]:
    start = 1
    while notifications := recorder.select_notifications(start=start, limit=batch_size):
        yield notifications
        start = notifications[-1].id + 1
