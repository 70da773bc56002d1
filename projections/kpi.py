"""The KPI read model: complaint facts, daily counters per dimension, penalties and ingest counts,
as SQL tables in the store's own database.

Each batch of events is applied in one transaction together with its tracking record, so every
event is applied exactly once even if the process dies between two batches.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from psycopg.sql import SQL

from domain.clock import from_us, to_us
from domain.complaint import complaint_uuid
from domain.events import (
    DEAD_LETTER,
    DUPLICATE_DELIVERY,
    RECEIVED,
    UNKNOWN_FIELDS,
    is_case_event,
    is_complaint_event,
    spec_type,
)
from domain.policy import Policy
from infra.schema import VIEW_WRITER_LOCK
from infra.sql import POSTGRES, SQLITE, Cursor, Dialect
from projections import cases
from projections.batchfacts import BatchFacts, FactsCache
from projections.facts import (
    COUNTERS,
    DIMENSIONS,
    FACT_FIELDS,
    Facts,
    FactsUpdater,
    Penalty,
    assessed,
    contributions,
    fact_values,
    from_assessed,
    penalties_of,
)
from projections.report import UNKNOWN_FIELD
from projections.schema import FACT_TYPES, TABLES


def _adding(table: str, keys: Sequence[str], counters: Sequence[str]) -> str:
    """The upsert tail of a counter table: a row already there gets the new values added."""
    return (f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
            + ", ".join(f"{k} = {table}.{k} + excluded.{k}" for k in counters))


def _spans(moments: list[int], gap: int) -> list[tuple[int, int]]:
    """Sorted moments grouped into (first, last) runs whose neighbours are at most `gap` apart."""
    spans: list[tuple[int, int]] = []
    for m in moments:
        if spans and m - spans[-1][1] <= gap:
            spans[-1] = (spans[-1][0], m)
        else:
            spans.append((m, m))
    return spans


_cohort = attrgetter("day", *DIMENSIONS)
_TIER, _REGION = 1 + DIMENSIONS.index("tier"), 1 + DIMENSIONS.index("region")


def counts(f: Facts) -> dict[str, int]:
    """contributions(f) without its zeros: an event changes few counters, so deltas and sums
    stay a handful of entries instead of every counter."""
    return {k: n for k, n in contributions(f).items() if n}


def _difference(after: dict[str, int], before: dict[str, int] | None) -> dict[str, int]:
    if before is None:
        return after
    delta = after.copy()
    for k, n in before.items():
        delta[k] = delta.get(k, 0) - n
    return {k: n for k, n in delta.items() if n}


def _add(sums: dict[Any, dict[str, int]], key: Any, delta: dict[str, int]) -> None:
    found = sums.get(key)
    if found is None:
        sums[key] = delta.copy()
        return
    for k, n in delta.items():
        found[k] = found.get(k, 0) + n


def _rows(sums: dict[Any, dict[str, int]]) -> list[list[Any]]:
    return [[*key, *(found.get(c, 0) for c in COUNTERS)] for key, found in sums.items()]


class KpiViewMixin:
    dialect: Dialect
    datastore: Any
    policy: Policy
    facts_cache: FactsCache | None = None

    if TYPE_CHECKING:  # eventsourcing's tracking recorder's, which every view also is (declared only
        # for the type checker: a method here would come before the recorder's)
        def max_tracking_id(self, application_name: str) -> int | None: ...

        def create_table(self) -> None: ...

    def process(self, items: Sequence[tuple[Any, Tracking]], after: int | None = None) -> None:
        """Apply a batch of recorded events and its last tracking record in one transaction.

        `after` is the position the batch was read from. Tracking records only move forward, but
        two processes catching up at once could both read from 0 and the later one apply events the
        earlier already applied; so view writers are serialised and the start is checked."""
        if not items:
            return
        if self.facts_cache is None:
            self.facts_cache = FactsCache()
        cache = self.facts_cache
        try:
            with self.datastore.transaction(commit=True) as c:
                if after is not None:
                    if self.dialect.postgres:
                        self.dialect.execute(c, "SELECT pg_advisory_xact_lock(?)", (VIEW_WRITER_LOCK,))
                    name = items[-1][1].application_name
                    current = self._max_tracking_id(name, c) or 0  # type: ignore[attr-defined]
                    if current != after:
                        raise IntegrityError(f"read model moved from {after} to {current} meanwhile")
                batch = self._apply(c, items, cache if cache.valid_at(after) else None)
                self._insert_tracking(c, items[-1][1])  # type: ignore[attr-defined]
        except BaseException:
            cache.forget()  # the batch may have changed cached facts before it rolled back
            raise
        if after is not None:
            cache.keep(batch, items[-1][1].notification_id)

    def record_fault(self, position: int, tracking: Tracking, error: str, after: int) -> None:
        """Pass over an event the read model cannot apply, on record, with its tracking record."""
        if self.facts_cache is not None:
            self.facts_cache.forget()
        with self.datastore.transaction(commit=True) as c:
            if self.dialect.postgres:
                self.dialect.execute(c, "SELECT pg_advisory_xact_lock(?)", (VIEW_WRITER_LOCK,))
            current = self._max_tracking_id(tracking.application_name, c) or 0  # type: ignore[attr-defined]
            if current != after:
                raise IntegrityError(f"read model moved from {after} to {current} meanwhile")
            self.dialect.execute(c, "INSERT INTO kpi_faults (position, error) VALUES (?, ?)", (position, error))
            self._insert_tracking(c, tracking)  # type: ignore[attr-defined]

    def _apply(self, c: Cursor, items: Sequence[tuple[Any, Tracking]], cache: FactsCache | None) -> BatchFacts:
        batch = BatchFacts(self.dialect, c, cache)
        needed = set()
        for event, _ in items:
            if is_complaint_event(event):
                needed.add(event.originator_id.hex)
                if getattr(event, "repeat_of", None):
                    needed.add(complaint_uuid(event.repeat_of).hex)
        batch.preload(needed)
        received = sorted(to_us(e.occurred_at) for e, _ in items if type(e) is RECEIVED)
        window = max(v.batch_window_minutes for v in self.policy.every_version()) * 60_000_000
        # The major-batch check looks one window around each new complaint: load those spans
        # whole, one query per run of complaints less than two windows apart.
        for lo, hi in _spans(received, 2 * window):
            batch.preload_received(lo - window, hi + window)
        updater = FactsUpdater(batch, self.policy, complaint_uuid)
        penalties: list[Penalty] = []  # triggered (the unrecorded points); the others follow from the facts
        ingest: dict[tuple[str, str, str], int] = defaultdict(int)
        for event, _ in items:
            kind = type(event)
            if is_complaint_event(event):
                penalties += updater.apply(event)
                if event.event_id is not None:
                    ingest[(spec_type(event), "accepted", "")] += 1
            elif is_case_event(event):
                ingest[(spec_type(event), "accepted", "")] += 1
            elif kind is DEAD_LETTER and getattr(event, "again", False):
                ingest[(event.type or "", "duplicate", "")] += 1  # refused again on request: not a new rejection
            elif kind is DEAD_LETTER:
                ingest[(event.type or "", "rejected", event.reason)] += 1
            elif kind is UNKNOWN_FIELDS:
                for key, n in event.counts.items():
                    ingest[(key, UNKNOWN_FIELD, "")] += n
            elif kind is DUPLICATE_DELIVERY:
                ingest[(event.type or "", "duplicate", "")] += 1
        cases.apply_cases(self.dialect, c, self.policy, [e for e, _ in items if is_case_event(e)])
        withdrawn = self._assess(batch, updater, penalties)
        self._write_facts(c, batch)
        self._write_penalties(c, penalties, withdrawn)
        self.dialect.insert(
            c, "kpi_ingest", ("type", "result", "reason", "n"), ("text", "text", "text", "bigint"),
            [(*k, n) for k, n in ingest.items()],
            _adding("kpi_ingest", ("type", "result", "reason"), ("n",)))
        return batch

    def _assess(self, batch: BatchFacts, updater: FactsUpdater, penalties: list[Penalty]) -> list[Penalty]:
        """Penalties again for every complaint the batch touched: new ones join `penalties`; those
        its facts no longer trigger (a transfer before the deadline that arrived after the miss, a
        repeat link moved to a later-arriving twin) are returned, to be withdrawn."""
        withdrawn = []
        for f in list(batch.facts.values()):  # an original looked up below joins the batch unchanged
            if f is None:
                continue
            now = penalties_of(f, updater.original(f), self.policy)
            text = assessed(now)
            if text == f.assessed:
                continue
            before = set(from_assessed(f.uuid, f.assessed))
            withdrawn += [p for p in before if p not in now]
            penalties += [p for p in now if p not in before]
            f.assessed = text
        return withdrawn

    def _write_facts(self, c: Cursor, batch: BatchFacts) -> None:
        cohorts: dict[tuple[str, ...], dict[str, int]] = {}  # counter deltas per (day, *DIMENSIONS)
        changed = []
        for uuid, f in batch.facts.items():
            if f is None:
                continue
            values, loaded = fact_values(f), batch.loaded.get(uuid)
            if values == loaded:
                continue
            changed.append(values)
            before = batch.counts.get(uuid) or (counts(Facts(*loaded)) if loaded else None)
            after = batch.counts[uuid] = counts(f)
            delta = _difference(after, before)
            if delta:
                _add(cohorts, _cohort(f), delta)
        daily: dict[tuple[str, str, str], dict[str, int]] = {}
        totals: dict[tuple[str, str], dict[str, int]] = {}
        for cohort, delta in cohorts.items():
            day = cohort[0]
            _add(daily, (day, "all", ""), delta)
            for dim, key in zip(DIMENSIONS, cohort[1:]):
                _add(daily, (day, dim, str(key)), delta)
            _add(totals, (cohort[_TIER], cohort[_REGION]), delta)
        self.dialect.insert(
            c, "kpi_complaints", FACT_FIELDS, FACT_TYPES, changed,
            "ON CONFLICT (uuid) DO UPDATE SET " + ", ".join(f"{k} = excluded.{k}" for k in FACT_FIELDS if k != "uuid"),
            copy=True)
        self.dialect.insert(
            c, "kpi_daily", ("day", "dim", "key", *COUNTERS), ("text",) * 3 + ("bigint",) * len(COUNTERS),
            _rows(daily), _adding("kpi_daily", ("dim", "key", "day"), COUNTERS), copy=True)
        self.dialect.insert(
            c, "kpi_totals", ("tier", "region", *COUNTERS), ("text",) * 2 + ("bigint",) * len(COUNTERS),
            _rows(totals), _adding("kpi_totals", ("tier", "region"), COUNTERS))

    def _write_penalties(self, c: Cursor, penalties: list[Penalty], withdrawn: list[Penalty]) -> None:
        """Assessed once per complaint, trigger and role (a withdrawn one first leaves the sums);
        unrecorded points stop at the monthly cap (扣完为止)."""
        used: dict[tuple[str, str], int] = {}
        totals: dict[tuple[str, str, str], list[int]] = {}
        daily: dict[tuple[str, str, str, str], list[int]] = {}

        def count(p: Penalty, points: int, sign: int) -> tuple[str, str]:
            local = self.policy.local(from_us(p.at))
            day, month = local.date().isoformat(), local.strftime("%Y-%m")
            for total in (totals.setdefault((month, p.unit, p.reason), [0, 0, 0]),
                          daily.setdefault((day, p.who, p.reason, month), [0, 0, 0])):
                total[0] += sign
                total[1] += sign * p.amount_fen
                total[2] += sign * points
            return day, month

        for p in withdrawn:
            count(p, p.points_centi, -1)
        self.dialect.delete_keys(c, "kpi_penalties", ("complaint", "reason", "role"),
                                 [(p.complaint, p.reason, p.role) for p in withdrawn])
        unrecorded = sorted({p.complaint for p in penalties if p.reason == "unrecorded"})
        seen = {(r["complaint"], r["reason"], r["role"]) for r in self.dialect.rows_in(
            c, "SELECT complaint, reason, role FROM kpi_penalties", "complaint", unrecorded)} if unrecorded else set()
        rows = []
        for p in penalties:
            if (p.complaint, p.reason, p.role) in seen:
                continue
            seen.add((p.complaint, p.reason, p.role))
            points = p.points_centi
            if p.reason == "unrecorded":
                local = self.policy.local(from_us(p.at))
                month = local.strftime("%Y-%m")
                key = (p.who, month)
                if key not in used:
                    total: list[Any] = self.dialect.rows(
                        c, "SELECT COALESCE(SUM(points_centi), 0) AS s FROM kpi_penalty_daily "
                        "WHERE who = ? AND month = ? AND reason = 'unrecorded'", key)
                    used[key] = int(total[0]["s"])
                # The cap of the version in force at the first instant of that month (SPEC §3.5).
                first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
                cap = int(self.policy.at(first).unrecorded_monthly_points_cap * 100)
                points = max(0, min(points, cap - used[key]))
                used[key] += points
            day, month = count(p, points, 1)
            rows.append((p.complaint, p.reason, p.role, p.who, p.unit, p.at, day, month, p.amount_fen, points))
        self.dialect.insert(
            c, "kpi_penalties", ("complaint", "reason", "role", "who", "unit", "at", "day", "month", "amount_fen",
                                 "points_centi"), ("text",) * 5 + ("bigint", "text", "text", "bigint", "bigint"), rows,
            copy=True)
        sums = ("n", "amount_fen", "points_centi")
        self.dialect.insert(
            c, "kpi_penalty_totals", ("month", "unit", "reason", *sums), ("text",) * 3 + ("bigint",) * 3,
            [(*k, *v) for k, v in totals.items()],
            _adding("kpi_penalty_totals", ("month", "unit", "reason"), sums))
        self.dialect.insert(
            c, "kpi_penalty_daily", ("day", "who", "reason", "month", *sums), ("text",) * 4 + ("bigint",) * 3,
            [(*k, *v) for k, v in daily.items()],
            _adding("kpi_penalty_daily", ("day", "who", "reason"), sums), copy=True)


class SQLiteKpiView(KpiViewMixin, SQLiteTrackingRecorder):
    dialect = SQLITE

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *TABLES]


class PostgresKpiView(KpiViewMixin, PostgresTrackingRecorder):
    dialect = POSTGRES

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # POSTGRES_VACUUM's ALTER TABLEs run when reset_view creates the tables, not at every start:
        # they wait for any session holding a lock that stops writers.
        self.sql_create_statements.extend(SQL(s) for s in TABLES)  # type: ignore[misc]
