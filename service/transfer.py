"""Export the event log for external audit tools, and import such an export into an empty store.

An export row is one recorded event exactly as stored (its bytes as text), with its log position,
recording time, aggregate, version and the hash chained to it at write time. Import checks those
hashes before writing anything, records the events through the same recorder (so they are chained
again and come out with the same hashes), and rebuilds the write-side indexes from them; the KPI
read model then catches up as usual, so the reports are the same as the exporting store's. The
per-customer keys are not exported: in the imported store the personal fields read as erased, and
repeat detection starts afresh for the customers of imported complaints.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import date
from typing import IO, Any, TextIO, cast
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from domain.clock import to_us
from domain.events import (
    CASE_SELECTED,
    CASE_SUBMITTED,
    DEAD_LETTER,
    DEADLINE_MISSED,
    POLICY_ADOPTED,
    RECEIVED,
    RESOLVED,
    is_case_event,
    is_complaint_event,
    spec_type,
)
from domain.policy import Policy
from infra.chain import GENESIS, event_hash
from infra.privacy import Keyring, key_id_of
from infra.store import IndexChanges, RecoveryApplication

# case_id came with SPEC §7: an export of an earlier release lacks it, and imports all the same.
COLUMNS = ["position", "recorded_at", "aggregate", "version", "type", "complaint_id", "topic", "hash", "state",
           "case_id"]


class ImportRefused(ValueError):
    pass


def export_rows(app: RecoveryApplication, policy: Policy, start: date | None = None,
                end: date | None = None, batch_size: int = 2000) -> Iterator[dict[str, Any]]:
    """Every recorded event whose recording date (policy time zone) is in [start, end], in log order."""
    names: dict[str, str] = {}  # aggregate -> complaint (or case) id, from its first event
    position = 1
    while notifications := app.recorder.select_notifications(start=position, limit=batch_size):
        with app.datastore.transaction(commit=False) as c:
            hashes = {(r["originator_id"], r["originator_version"]): r["hash"] for r in app.dialect.rows_in(
                c, "SELECT originator_id, originator_version, hash FROM recovery_chain", "originator_id",
                sorted({cast(UUID, n.originator_id).hex for n in notifications}))}
        for n in notifications:
            assert isinstance(n.originator_id, UUID)  # the store's aggregates have UUIDs
            event: Any = app.mapper.to_domain_event(n)  # any of the store's events: attributes vary by kind
            if type(event) in (RECEIVED, CASE_SUBMITTED):
                names[n.originator_id.hex] = event.complaint_id if type(event) is RECEIVED else event.case_id
            day = event.timestamp.astimezone(policy.timezone).date()
            if (start and day < start) or (end and day > end):
                continue
            is_complaint = is_complaint_event(event)
            yield {
                "position": n.id, "recorded_at": event.timestamp.isoformat(), "aggregate": n.originator_id.hex,
                "version": n.originator_version,
                "type": spec_type(event),
                "complaint_id": (names.get(n.originator_id.hex) if is_complaint
                                 else getattr(event, "complaint_id", None)),
                "topic": n.topic, "hash": hashes.get((n.originator_id.hex, n.originator_version)),
                "state": bytes(n.state).decode("utf-8"),
                "case_id": names.get(n.originator_id.hex) if is_case_event(event) else None,
            }
        position = notifications[-1].id + 1


def write_export(rows: Iterable[dict[str, Any]], out: IO[str], fmt: str) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
    for row in rows:
        if fmt == "csv":
            writer.writerow(row)
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def read_export(source: TextIO, fmt: str) -> list[dict[str, Any]]:
    if fmt == "csv":
        rows = [dict(r) for r in csv.DictReader(source)]
    else:
        rows = [json.loads(line) for line in source if line.strip()]
    for r in rows:
        r["position"], r["version"] = int(r["position"]), int(r["version"])
    return sorted(rows, key=lambda r: r["position"])


def check_export(rows: list[dict[str, Any]]) -> None:
    """Refuse an export that is not whole from each aggregate's first event, or whose events do not
    match their hashes."""
    last: dict[str, tuple[int, str]] = {}
    for r in rows:
        version, previous = last.get(r["aggregate"], (0, GENESIS))
        if r["version"] != version + 1:
            raise ImportRefused(f"position {r['position']}: aggregate {r['aggregate']} jumps from version "
                                f"{version} to {r['version']}: import needs a whole export (no --from/--to)")
        h = event_hash(previous, r["aggregate"], r["version"], r["topic"], r["state"].encode("utf-8"))
        if h != r["hash"]:
            raise ImportRefused(f"position {r['position']}: event does not match its hash: the export was altered")
        last[r["aggregate"]] = (r["version"], h)


def import_rows(app: RecoveryApplication, policy: Policy, rows: list[dict[str, Any]], batch_size: int = 1000) -> int:
    if app.recorder.max_notification_id():
        raise ImportRefused("import needs an empty store: this one already holds events")
    check_export(rows)
    complaint_ids: dict[str, str] = {}
    keyring = Keyring(app)
    clock: int | None = None
    for i in range(0, len(rows), batch_size):
        stored = [StoredEvent(originator_id=UUID(hex=r["aggregate"]), originator_version=r["version"],
                              topic=r["topic"], state=r["state"].encode("utf-8")) for r in rows[i:i + batch_size]]
        index = IndexChanges()
        for s in stored:
            latest = _index(app.mapper.to_domain_event(s), index, complaint_ids, keyring.lookup)
            if latest is not None and (clock is None or latest > clock):
                clock = latest
        if clock is not None:
            index.watcher_clock = clock - policy.file_lateness_seconds * 1_000_000
        with app.writer.held():
            app.recorder.insert_events(stored, index=index)
    return len(rows)


def _index(event: Any, index: IndexChanges, complaint_ids: dict[str, str], lookup: Any) -> int | None:
    """What ingest wrote beside this event (idempotency, deadlines, repeat candidates, cases selected
    by round; `complaint_ids` holds case ids too, by aggregate); returns its
    occurred_at when it came from an inbound envelope (what moves the event-time watcher)."""
    kind = type(event)
    if kind is DEAD_LETTER and getattr(event, "line_sha256", None):
        index.refused.append((event.line_sha256, event.reason))
    if kind is POLICY_ADOPTED:
        index.policy_versions.append((event.number, to_us(event.effective_from)))
    uuid = event.originator_id.hex
    if is_case_event(event):
        if kind is CASE_SUBMITTED:
            complaint_ids[uuid] = event.case_id
        if kind is CASE_SELECTED:
            index.case_rounds.append((event.data["round"], complaint_ids[uuid]))
        index.inbound.append((event.event_id, complaint_ids[uuid]))
        return to_us(event.occurred_at)
    if not is_complaint_event(event):
        return None
    if kind is RECEIVED:
        complaint_ids[uuid] = event.complaint_id
        index.deadlines[event.complaint_id] = to_us(event.deadline)
        if key_id_of(event.data["customer_id"]) is None:  # sealed ids cannot be looked up: keys stay home
            index.customer_issues.append((lookup(event.data["customer_id"]), event.data["issue_key"],
                                          to_us(event.occurred_at), event.complaint_id))
    complaint_id = complaint_ids[uuid]
    if kind in (DEADLINE_MISSED, RESOLVED):
        index.deadlines[complaint_id] = None
    if event.event_id is None:
        return None
    index.inbound.append((event.event_id, complaint_id))
    return to_us(event.occurred_at)
