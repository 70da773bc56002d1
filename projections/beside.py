"""A read model built beside the live one, from the log, by the same view code, in a scratch SQLite
database: for `report --as-of`, for `rebuild` (which then swaps its rows in, in one transaction,
so readers never see partial figures) and for `rebuild --check` (which compares every row)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventsourcing.sqlite import SQLiteDatastore

from domain.policy import Policy
from infra.sql import SQLITE, Cursor
from infra.store import RecoveryApplication
from projections.facts import COUNTERS, FACT_FIELDS
from projections.kpi import KpiViewMixin, SQLiteKpiView
from projections.runner import REBUILD_BATCH, apply_log, view_writer
from projections.schema import CASE_BIGINT_COLUMNS, FACT_TYPES, SCHEMA_VERSION, VIEW_TABLES

# Counter tables: a row whose counters are all zero says nothing (a cohort that gained and lost a
# complaint in two batches keeps one, the same history in one batch does not).
_SUMS = {"kpi_daily": COUNTERS, "kpi_totals": COUNTERS, "kpi_penalty_daily": ("n", "amount_fen", "points_centi"),
         "kpi_penalty_totals": ("n", "amount_fen", "points_centi"), "kpi_ingest": ("n",)}


SCRATCH_PREFIX = "recovery-beside-"


def _remove_abandoned_scratch() -> None:
    """Scratch folders of processes that died (a rebuild killed outright leaves its own)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*-*"):
        pid = folder.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def scratch_view(policy: Policy) -> Iterator[SQLiteKpiView]:
    """An empty KPI view in a scratch SQLite file, gone when the block ends."""
    _remove_abandoned_scratch()
    with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-") as folder:
        datastore = SQLiteDatastore(str(Path(folder) / "beside.db"))
        view = SQLiteKpiView(datastore)
        view.policy = policy
        view.create_table()
        try:
            yield view
        finally:
            datastore.close()


def build(app: RecoveryApplication, view: KpiViewMixin, upto: int | None = None,
          progress: Callable[[int], None] | None = None) -> int:
    """Apply the log to `view` from its position up to `upto` (default: the head); returns how many."""
    return apply_log(app, view, REBUILD_BATCH, progress, (), None, stop=upto)


def position(view: KpiViewMixin, app: RecoveryApplication, cursor: Cursor) -> int:
    return view._max_tracking_id(app.name, cursor) or 0  # type: ignore[attr-defined]


def table_rows(view: KpiViewMixin, cursor: Cursor) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the read model's tables, sorted, without counter rows that are all zero."""
    found = {}
    for table in VIEW_TABLES:
        rows = view.dialect.rows(cursor, f"SELECT * FROM {table}")
        sums = _SUMS.get(table)
        kept = [tuple(r.values()) for r in rows if not sums or any(r[k] for k in sums)]
        found[table] = sorted(kept, key=repr)
    return found


@dataclass(frozen=True)
class Difference:
    table: str
    only_live: list[tuple[Any, ...]]
    only_rebuilt: list[tuple[Any, ...]]


def check(app: RecoveryApplication, live: KpiViewMixin, policy: Policy,
          progress: Callable[[int], None] | None = None) -> tuple[int, list[Difference]]:
    """Build the read model beside the live one up to the live one's position and compare every row;
    switches nothing. Returns the position compared at and the tables that differ."""
    with scratch_view(policy) as scratch:
        while True:
            with live.datastore.transaction(commit=False) as c:
                if live.dialect.postgres:  # the position and the rows of one moment
                    live.dialect.execute(c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                at = position(live, app, c)
                with scratch.datastore.transaction(commit=False) as s:
                    behind = position(scratch, app, s) < at
                if not behind:
                    rows = table_rows(live, c)
                    break
            build(app, scratch, upto=at, progress=progress)
        with scratch.datastore.transaction(commit=False) as s:
            rebuilt = table_rows(scratch, s)
    differences = []
    for table in VIEW_TABLES:
        a, b = set(rows[table]), set(rebuilt[table])
        if a != b:
            differences.append(Difference(table, sorted(a - b, key=repr), sorted(b - a, key=repr)))
    return at, differences


def rebuild_beside(app: RecoveryApplication, live: KpiViewMixin, policy: Policy,
                   progress: Callable[[int], None] | None = None, lock_timeout: float | None = None) -> int:
    """Build a new read model beside the live one, then put its rows in place of the live ones in
    one transaction: until then readers see the old figures, and a rebuild stopped at any point
    leaves them as they were. Returns the log position the new read model stands at."""
    with scratch_view(policy) as scratch:
        build(app, scratch, progress=progress)
        dialect = app.dialect
        with nullcontext() if dialect.postgres else app.writer.held():
            build(app, scratch, progress=progress)  # what was recorded meanwhile
            with scratch.datastore.transaction(commit=False) as s:
                at = position(scratch, app, s)
                rows = {table: SQLITE.rows(s, f"SELECT * FROM {table}") for table in VIEW_TABLES}
            tracking = getattr(live, "tracking_table_name", "tracking")
            with view_writer(app, lock_timeout) as c:
                for table in VIEW_TABLES:
                    dialect.execute(c, f"DELETE FROM {table}")
                    found = rows[table]
                    if found:
                        columns = list(found[0])
                        types = [_sql_type(col) for col in columns]
                        dialect.insert(c, table, columns, types, [tuple(r[col] for col in columns) for r in found],
                                       copy=dialect.postgres)
                dialect.execute(c, f"DELETE FROM {tracking} WHERE application_name = ?", (app.name,))
                if at:
                    dialect.execute(c, f"INSERT INTO {tracking} (application_name, notification_id) VALUES (?, ?)",
                                    (app.name, at))
                dialect.execute(c, "DELETE FROM kpi_schema")
                dialect.execute(c, "INSERT INTO kpi_schema (version) VALUES (?)", (SCHEMA_VERSION,))
    if live.facts_cache is not None:
        live.facts_cache.forget()
    return at


_BIGINT = {*(f for f, t in zip(FACT_FIELDS, FACT_TYPES, strict=True) if t == "bigint"), *COUNTERS,
           "n", "amount_fen", "points_centi", "at", "position", *CASE_BIGINT_COLUMNS}


def _sql_type(column: str) -> str:
    return "bigint" if column in _BIGINT else "text"
