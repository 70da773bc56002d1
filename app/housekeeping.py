"""Housekeeping of a long-running process: the garbage collector set for large caches, and once a
minute a full collection and, on PostgreSQL, a vacuum of the tables every batch rewrites and fresh
statistics where they are stale. The Platform (app/platform.py) runs it after each catch-up."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import PersistenceError

from infra.memory import collect_all, collect_rarely
from infra.store import RecoveryApplication

# Rewritten by every batch, or (the last three) probed by every batch through their indexes, which
# answer alone only from pages a vacuum has marked all-visible; kept vacuumed by vacuum_hot_tables().
HOT_TABLES = ("recovery_open_deadlines", "recovery_watcher", "notification_tracking", "kpi_tracking",
              "kpi_daily", "kpi_totals", "kpi_penalty_daily", "kpi_penalty_totals", "kpi_ingest", "kpi_complaints",
              "recovery_inbound", "recovery_chain", "recovery_customer_issues")
# Probed by every batch on a column that is not unique (Dialect.rows_in, one probe per value).
# Without statistics the planner expects hundreds of rows per value and builds a bitmap for each:
# ten times slower. Analyzed by analyze_stale_tables() when autovacuum has not.
ANALYZED_TABLES = ("recovery_keys", "recovery_customer_issues", "kpi_penalties")
HOUSEKEEPING_EVERY_SECONDS = 60.0
log = logging.getLogger("recovery.platform")


def tune_collector() -> None:
    """Young collections rarer (infra/memory.py): every command's process opens one Platform, and
    keeps complaints cached."""
    collect_rarely()


class Housekeeping:
    def __init__(self, app: RecoveryApplication):
        self.app = app
        self._housekept = time.monotonic()

    def when_due(self) -> None:
        """Once a minute: a full garbage collection (infra/memory.py) and, on PostgreSQL, a vacuum
        of the tables every batch rewrites and fresh statistics where they are stale."""
        if time.monotonic() - self._housekept < HOUSEKEEPING_EVERY_SECONDS:
            return
        self._housekept = time.monotonic()
        collect_all()
        if self.app.dialect.postgres:
            self.vacuum_hot_tables()
            self.analyze_stale_tables()

    def vacuum_hot_tables(self) -> None:
        """VACUUM the tables every batch rewrites (open deadlines, counters, positions, facts) or
        probes (the write-side indexes). Dead row versions of the former grow with every batch, and
        so would the index scans of each batch and of every report; the latter answer from their
        indexes alone only on pages a vacuum marked all-visible. Autovacuum does this where it runs
        (the counter tables are set to be vacuumed often); this does it also where autovacuum is
        off or falls behind (as on the test server here)."""
        self._maintain("VACUUM", lambda conn: HOT_TABLES)

    def analyze_stale_tables(self) -> None:
        """ANALYZE those of ANALYZED_TABLES changed by more than a tenth since their statistics
        were gathered (autovacuum's rule; where it runs, this finds nothing to do)."""
        self._maintain("ANALYZE", lambda conn: [r["relname"] for r in conn.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() AND relname = ANY(%s)"
            " AND n_mod_since_analyze > 50 + 0.1 * n_live_tup", (list(ANALYZED_TABLES),))])

    def _maintain(self, command: str, tables: Callable[[psycopg.Connection[Any]], Sequence[str]]) -> None:
        """Skips a table another session holds locked; a failure is logged, never raised."""
        try:
            with self.app.datastore.get_connection() as conn:
                chosen = tables(conn)
                if chosen:
                    conn.execute(f"{command} (SKIP_LOCKED) {', '.join(chosen)}")
        except (psycopg.Error, PersistenceError) as error:
            log.warning(json.dumps({"event": f"{command.lower()}_failed", "error": str(error)[:300]}))
