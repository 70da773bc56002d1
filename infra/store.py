"""Persistence wiring: one database URL (the setting RECOVERY_DATABASE_URL) selects the embedded SQLite file or
PostgreSQL, and the same application code runs on both.

Beside the event table, the recorder keeps the write side's indexes — event ids seen, open
deadlines, complaints by customer and issue, the watcher's clock — and writes them in the same
transaction as the events, so they can never disagree with the log (and can be rebuilt from it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent, Recording
from eventsourcing.domain import BaseAggregate
from eventsourcing.persistence import ProcessRecorder, ProgrammingError, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteProcessRecorder
from eventsourcing.utils import get_topic
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from infra.chain import record_chain
from infra.config import CACHED_COMPLAINTS
from infra.schema import INDEX_TABLES
from infra.sql import POSTGRES, SQLITE, Cursor, Dialect
from infra.writers import WriterLock, postgres_writer_lock, sqlite_writer_lock

DEFAULT_DATABASE_URL = "sqlite:///./recovery.db"


@dataclass
class IndexChanges:
    """What one write adds to the write-side indexes. Times are integer microseconds (UTC)."""

    inbound: list[tuple[str, str]] = field(default_factory=list)  # (event_id, complaint_id)
    deadlines: dict[str, int | None] = field(default_factory=dict)  # complaint_id -> due; None clears
    # (customer lookup, issue key, received, complaint): the lookup, never the customer id itself
    customer_issues: list[tuple[str, str, int, str]] = field(default_factory=list)
    keys: list[tuple[str, str, str]] = field(default_factory=list)  # new (key id, lookup, key hex)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (line sha256, reason)
    policy_versions: list[tuple[int, int]] = field(default_factory=list)  # (number, effective_from)
    case_rounds: list[tuple[str, str]] = field(default_factory=list)  # (round, case_id) selected
    latest_occurred: int | None = None  # the latest occurred_at recorded (no version may take effect before)
    watcher_clock: int | None = None
    # A new token from every write of a process that may write any complaint (file ingest), so
    # other processes know their cached complaints may be stale (IngestService).
    writer_token: int | None = None
    # Positions in upstream sequences (a Kafka partition's offset), as tracking records: they only
    # move forward, so a second writer of the same partition fails instead of applying twice.
    positions: list[Tracking] = field(default_factory=list)

    def write(self, dialect: Dialect, cursor: Cursor, recorder: Any) -> None:
        dialect.insert(cursor, "recovery_keys", ("key_id", "lookup", "key"), ("text",) * 3, self.keys)
        for tracking in self.positions:
            recorder._insert_tracking(cursor, tracking)
        dialect.insert(cursor, "recovery_inbound", ("event_id", "complaint_id"), ("text", "text"), self.inbound)
        dialect.insert(cursor, "recovery_open_deadlines", ("complaint_id", "due"), ("text", "bigint"),
                       [(c, d) for c, d in self.deadlines.items() if d is not None],
                       "ON CONFLICT (complaint_id) DO UPDATE SET due = excluded.due")
        dialect.delete_in(cursor, "recovery_open_deadlines", "complaint_id",
                          [c for c, d in self.deadlines.items() if d is None])
        dialect.insert(cursor, "recovery_customer_issues", ("customer_id", "issue_key", "received", "complaint_id"),
                       ("text", "text", "bigint", "text"), self.customer_issues, "ON CONFLICT DO NOTHING")
        dialect.insert(cursor, "recovery_refused", ("line_sha256", "reason"), ("text", "text"), self.refused,
                       "ON CONFLICT DO NOTHING")
        dialect.insert(cursor, "recovery_policy_versions", ("number", "effective_from"), ("bigint", "bigint"),
                       self.policy_versions)
        dialect.insert(cursor, "recovery_case_rounds", ("round", "case_id"), ("text", "text"), self.case_rounds)
        # The watcher's clock and the latest occurred_at never go backwards, whichever of two
        # writers commits last; the writer token is simply the last one written.
        later = f"{'GREATEST' if dialect.postgres else 'MAX'}(recovery_watcher.clock, excluded.clock)"
        for name, value, clock in (("event_time", self.watcher_clock, later),
                                   ("latest_occurred", self.latest_occurred, later),
                                   ("writer", self.writer_token, "excluded.clock")):
            if value is not None:
                dialect.execute(cursor, "INSERT INTO recovery_watcher VALUES (?, ?)"
                                f" ON CONFLICT (name) DO UPDATE SET clock = {clock}", (name, value))

class IndexReads:
    """Queries on the write-side indexes, shared by both recorders."""

    dialect: Dialect
    datastore: Any

    def _rows(self, statement: str, params: tuple = ()) -> list[dict[str, Any]]:
        with self.datastore.transaction(commit=False) as c:
            return self.dialect.rows(c, statement, params)

    def _rows_in(self, select: str, column: str, values: list[str], tail: str = "",
                 params: tuple = ()) -> list[dict[str, Any]]:
        with self.datastore.transaction(commit=False) as c:
            return self.dialect.rows_in(c, select, column, values, tail, params)

    def seen_event_ids(self, event_ids: list[str]) -> set[str]:
        rows = self._rows_in("SELECT event_id FROM recovery_inbound", "event_id", event_ids)
        return {r["event_id"] for r in rows}

    def known_complaints(self, complaint_ids: list[str]) -> set[str]:
        """Which of these complaints were received (any accepted event names its complaint). One
        index probe per complaint, not a visit to each of its events."""
        if self.dialect.postgres:
            rows = self._rows("SELECT c AS complaint_id FROM unnest(%s::text[]) AS c"
                              " WHERE EXISTS (SELECT 1 FROM recovery_inbound WHERE complaint_id = c)",
                              (complaint_ids,))
        else:
            rows = self._rows_in("SELECT DISTINCT complaint_id FROM recovery_inbound", "complaint_id", complaint_ids)
        return {r["complaint_id"] for r in rows}

    def customer_issues(self, customers: list[str], since: int) -> list[tuple[str, str, int, str]]:
        rows = self._rows_in("SELECT customer_id, issue_key, received, complaint_id FROM recovery_customer_issues",
                             "customer_id", customers, " AND received >= ?", (since,))
        return [(r["customer_id"], r["issue_key"], r["received"], r["complaint_id"]) for r in rows]

    def deadlines_before(self, moment: int) -> list[tuple[int, str]]:
        rows = self._rows(
            "SELECT complaint_id, due FROM recovery_open_deadlines WHERE due < ? ORDER BY due, complaint_id",
            (moment,),
        )
        return [(r["due"], r["complaint_id"]) for r in rows]

    def refused_lines(self, digests: list[str]) -> set[str]:
        rows = self._rows_in("SELECT line_sha256 FROM recovery_refused", "line_sha256", digests)
        return {r["line_sha256"] for r in rows}

    def cases_selected(self, rounds: list[str]) -> dict[str, int]:
        """How many cases each of these rounds has selected."""
        rows = self._rows_in("SELECT round FROM recovery_case_rounds", "round", rounds)
        counts = dict.fromkeys(rounds, 0)
        for r in rows:
            counts[r["round"]] += 1
        return counts

    def policy_versions(self) -> list[tuple[int, int]]:
        rows = self._rows("SELECT number, effective_from FROM recovery_policy_versions ORDER BY number")
        return [(int(r["number"]), int(r["effective_from"])) for r in rows]

    def watcher_clock(self) -> int | None:
        return self.watcher_state().get("event_time")

    def watcher_state(self) -> dict[str, int]:
        """The event-time watcher's clock ('event_time') and the last any-complaint writer's token ('writer')."""
        return {r["name"]: r["clock"] for r in self._rows("SELECT name, clock FROM recovery_watcher")}


class SQLiteRecoveryRecorder(IndexReads, SQLiteProcessRecorder):
    dialect = SQLITE

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *INDEX_TABLES]

    def _insert_events(self, c: Any, stored_events: Any, **kwargs: Any) -> Any:
        ids = super()._insert_events(c, stored_events, **kwargs)
        assert ids is not None  # an application recorder returns the notification ids
        record_chain(self.dialect, c, stored_events, ids)
        if kwargs.get("index") is not None:
            kwargs["index"].write(self.dialect, c, self)
        return ids


class PostgresRecoveryRecorder(IndexReads, PostgresProcessRecorder):
    dialect = POSTGRES

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.sql_create_statements.extend(SQL(s) for s in INDEX_TABLES)  # type: ignore[misc]

    def _insert_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        if kwargs.get("index") is not None:
            kwargs["index"].write(self.dialect, curs, self)

    def _insert_stored_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> None:
        # eventsourcing's statement, with the events as four binary arrays instead of one array of
        # a composite type, which psycopg dumps as text in Python (the largest cost of a batch).
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(SQL(
            "INSERT INTO {}.{} (originator_id, originator_version, topic, state)"
            " SELECT * FROM unnest(%b::{}[], %b::bigint[], %b::text[], %b::bytea[]) RETURNING notification_id"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name),
                 Identifier(self.datastore.originator_id_type)),
            ([e.originator_id for e in stored_events], [e.originator_version for e in stored_events],
             [e.topic for e in stored_events], [e.state for e in stored_events]))

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> Any:
        # eventsourcing's, with the ids read as tuples (a dict per event was 3% of a batch). Here
        # the events hold their notification ids and the table's write lock: chain them.
        previous, curs.row_factory = curs.row_factory, tuple_row
        try:
            ids = [row[0] for row in curs.fetchall()]
        finally:
            curs.row_factory = previous
        if len(ids) != len(stored_events):
            raise ProgrammingError(f"Couldn't get all notification IDs (got {len(ids)}, expected {len(stored_events)})")
        # A cursor of its own: in pipeline mode the events' cursor still holds the insert's results.
        with curs.connection.cursor() as own:
            record_chain(self.dialect, own, stored_events, ids)
        return ids


def following(recorded: Sequence[Recording], position: int) -> Sequence[Recording]:
    """The run of `recorded` (this process's recordings, in log order) that comes right after
    `position` without a gap. Another writer's events, or ids a rolled-back write left unused,
    between two of ours end the run: what follows must be read from the log."""
    run = 0
    while run < len(recorded) and recorded[run].notification.id == position + 1 + run:
        run += 1
    return recorded[:run]


def database_env(url: str) -> dict[str, str]:
    """eventsourcing's environment for a database URL (sqlite:///rel.db, sqlite:////abs.db,
    postgresql://user:password@host:port/dbname)."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if not path or path == "/":
            raise ValueError(f"RECOVERY_DATABASE_URL: no file in {url!r}")
        path = path[1:]  # sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": get_topic(SQLiteRecoveryRecorder),
        }
    if parsed.scheme in ("postgresql", "postgres"):
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parsed.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parsed.port or 5432),
            "POSTGRES_USER": unquote(parsed.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            "POSTGRES_POOL_SIZE": "4",
            # How long a connection may take (eventsourcing's default is 30 s, and its recorders
            # try ten times): a server that has gone away fails in seconds, not minutes.
            "POSTGRES_CONNECT_TIMEOUT": "5",
            # eventsourcing's stored-function insert would bypass the recorder hooks that write
            # the indexes, keys, Kafka positions and hash chains with the events.
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
            "APPLICATION_RECORDER_TOPIC": get_topic(PostgresRecoveryRecorder),
        }
    raise ValueError(f"RECOVERY_DATABASE_URL: unsupported scheme in {url!r} (sqlite or postgresql)")


def read_only_sqlite(path: str) -> str:
    """A URI that opens the SQLite file read-only. Reading a WAL database needs its -shm file:
    in a folder this process cannot write, and with no -wal file (so no connection has the
    database open), the file is opened as immutable, which needs none."""
    file = Path(path).absolute()
    uri = f"{file.as_uri()}?mode=ro"
    wal = file.with_name(file.name + "-wal")
    if not os.access(file.parent, os.W_OK) and not wal.exists():
        uri += "&immutable=1"
    return uri


def sqlite_path(url: str) -> Path | None:
    env = database_env(url)
    return Path(env["SQLITE_DBNAME"]) if "SQLITE_DBNAME" in env else None


class RecoveryApplication(Application[UUID]):
    """The event store of complaints and inbound refusals."""

    name = "recovery"
    recorder: ProcessRecorder  # one of the process recorders below: they also keep tracking positions

    def __init__(self, url: str = DEFAULT_DATABASE_URL, cache_size: int = CACHED_COMPLAINTS, read_only: bool = False):
        env = database_env(url)
        env["AGGREGATE_CACHE_MAXSIZE"] = str(cache_size)
        if read_only:  # an auditor's login may create nothing
            env["CREATE_TABLE"] = "n"
            if "SQLITE_DBNAME" in env:
                env["SQLITE_DBNAME"] = read_only_sqlite(env["SQLITE_DBNAME"])
        # One writer per complaint (Kafka partitions by complaint_id), so cached aggregates need no
        # fast-forward query on every get; a stale one fails its save and the batch is retried.
        env["AGGREGATE_CACHE_FASTFORWARD"] = "n"
        self._writer: WriterLock | None = None
        super().__init__(env)

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """eventsourcing's save, without its runtime Protocol checks on every object (isinstance
        against a typing Protocol walks the protocol's attributes: 5% of an ingest batch) when all
        are aggregates, as the ingest service's are."""
        if not all(isinstance(obj, BaseAggregate) for obj in objs):
            return super().save(*objs, **kwargs)
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            processing_event.events.extend(obj.collect_events())
            processing_event.aggregates[obj.id] = obj
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)
        return recordings

    def forget_cached(self) -> None:
        """Empty the aggregate cache. eventsourcing's LRUCache.clear() resets its recency list but
        keeps the entries, so a cleared cache still answered with the aggregates it held."""
        cache = self.repository.cache
        if cache is not None:
            with getattr(cache, "lock", nullcontext()):
                cache.cache.clear()
                cache.clear()  # type: ignore[attr-defined]  # LRUCache's; a plain Cache has none
                if hasattr(cache, "full"):
                    cache.full = False

    @property
    def writer(self) -> WriterLock:
        """The store's cross-process writer lock (infra/writers.py)."""
        if self._writer is None:
            env = self.env
            if self.dialect.postgres:
                self._writer = postgres_writer_lock(
                    {"dbname": env.get("POSTGRES_DBNAME"), "host": env.get("POSTGRES_HOST"),
                     "port": env.get("POSTGRES_PORT"), "user": env.get("POSTGRES_USER"),
                     "password": env.get("POSTGRES_PASSWORD") or None, "connect_timeout": 10},
                    f"database {env.get('POSTGRES_DBNAME')}")
            else:
                self._writer = sqlite_writer_lock(Path(str(env.get("SQLITE_DBNAME"))))
        return self._writer

    @property
    def index(self) -> IndexReads:
        return self.recorder  # type: ignore[return-value]

    @property
    def dialect(self) -> Dialect:
        return self.index.dialect

    @property
    def datastore(self) -> Any:
        return self.recorder.datastore  # type: ignore[attr-defined]
