"""A batch looks up its thousand keys (event ids, customers, complaints) with one index probe per key,
however much history the tables hold; the tables probed by a column that is not unique get
statistics where autovacuum does not gather them."""

from __future__ import annotations

import sqlite3
import time
from unittest import mock

import psycopg
import pytest
from psycopg.rows import dict_row
from support.feed import Feed

from app import housekeeping
from app.housekeeping import ANALYZED_TABLES
from app.platform import Platform
from infra.sql import POSTGRES, SQLITE


class _Statements:
    """A cursor that remembers what it executed."""

    def __init__(self, cursor):
        self.cursor, self.executed = cursor, []

    def execute(self, statement, params=()):
        self.executed.append((statement, params))
        return self.cursor.execute(statement, params)

    def fetchall(self):
        return self.cursor.fetchall()


def _issues(cursor, n: int) -> None:
    cursor.execute("CREATE TABLE issues (customer_id TEXT NOT NULL, n INT NOT NULL)")
    cursor.execute("CREATE INDEX issues_customer ON issues (customer_id)")
    cursor.executemany("INSERT INTO issues VALUES (?, ?)" if isinstance(cursor, sqlite3.Cursor)
                       else "INSERT INTO issues VALUES (%s, %s)", [(f"cust-{i}", i) for i in range(n)])


def test_each_value_looked_up_is_found_once_however_often_it_is_asked_for(tmp_path):
    conn = sqlite3.connect(tmp_path / "lookups.db")
    conn.row_factory = sqlite3.Row
    _issues(conn.cursor(), 2000)
    rows = SQLITE.rows_in(conn.cursor(), "SELECT n FROM issues", "customer_id",
                          ["cust-7", "cust-7", "cust-1500", "nobody"])
    assert sorted(r["n"] for r in rows) == [7, 1500]


@pytest.mark.postgres
def test_a_batch_lookup_probes_each_value_and_never_scans_the_whole_table(postgres_url):
    """With no statistics yet, `customer_id = ANY(<1,000 values>)` was planned as a scan of every row."""
    with psycopg.connect(postgres_url, autocommit=True) as conn, conn.cursor(row_factory=dict_row) as c:
        _issues(c, 50_000)
        wanted = [f"cust-{i}" for i in range(1, 2000, 2)] + ["cust-7", "nobody"]
        spy = _Statements(c)
        rows = POSTGRES.rows_in(spy, "SELECT n FROM issues", "customer_id", wanted)
        assert sorted(r["n"] for r in rows) == list(range(1, 2000, 2))
        (statement, params), = spy.executed
        c.execute("EXPLAIN " + statement, params)
        plan = "\n".join(r["QUERY PLAN"] for r in c.fetchall())
    assert "Seq Scan on issues" not in plan, plan


@pytest.mark.postgres
def test_housekeeping_gathers_statistics_of_the_probed_tables_where_autovacuum_has_not(postgres_url, policy):
    f = Feed()
    for i in range(120):
        f.received(f"C{i}", "2026-11-02T09:00:00+08:00", customer=f"cust-{i}")
    with Platform(postgres_url, policy) as p, psycopg.connect(postgres_url, autocommit=True) as conn:
        for table in ("recovery_keys", "recovery_customer_issues"):  # as on a server without autovacuum
            conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
        p.ingest_lines(f.lines)
        deadline, analyzed = time.monotonic() + 20, set()
        while not {"recovery_keys", "recovery_customer_issues"} <= analyzed and time.monotonic() < deadline:
            # Each server process reports its counts of changed rows within a second or so.
            with mock.patch.object(housekeeping, "HOUSEKEEPING_EVERY_SECONDS", 0):
                p.catch_up()
            analyzed = {r[0] for r in conn.execute(
                "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL AND relname = ANY(%s)",
                (list(ANALYZED_TABLES),))}
            time.sleep(0.2)
        assert {"recovery_keys", "recovery_customer_issues"} <= analyzed
        stale = conn.execute("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'recovery_keys'")
        assert stale.fetchone()[0] == 0
