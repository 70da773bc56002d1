"""Waiting for PostgreSQL locks a limited time, and naming the sessions that held them.

A statement needing an exclusive lock (DROP TABLE) waits behind every session that has read the
table in a transaction still open, however idle; and every later reader waits behind it. With a
lock_timeout it gives up instead, and the sessions holding locks on those tables are named.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg


@dataclass(frozen=True)
class Holder:
    """A session holding a lock; `state` and `since` are None when this role may not see them
    (another role's sessions need pg_read_all_stats)."""

    pid: int
    user: str | None
    application: str | None
    state: str | None
    since: datetime | None

    def __str__(self) -> str:
        parts = [f"user {self.user}" if self.user else "",
                 f"application {self.application}" if self.application else ""]
        if self.state:
            since = f" since {self.since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}" if self.since else ""
            parts.append(self.state + since)
        details = ", ".join(p for p in parts if p)
        return f"pid {self.pid}" + (f" ({details})" if details else "")


class LockBusy(Exception):
    """A lock was not granted within the lock timeout; the transaction was rolled back."""

    def __init__(self, holders: Sequence[Holder]):
        who = ", ".join(map(str, holders)) or "a session that has ended since"
        super().__init__(f"blocked by {who}")
        self.holders = list(holders)


def set_lock_timeout(seconds: float) -> str:
    """The statement limiting this transaction's lock waits (SET LOCAL: it ends with it)."""
    return f"SET LOCAL lock_timeout = '{max(1, round(seconds * 1000))}ms'"


@contextmanager
def naming_holders(datastore: Any, tables: Sequence[str], advisory_key: int) -> Iterator[None]:
    """Turns a lock timeout inside (PostgreSQL's LockNotAvailable, as raised or as eventsourcing
    wraps it) into LockBusy naming the other sessions holding a lock on `tables` or the advisory
    lock `advisory_key`, looked up once the waiting transaction has rolled back."""
    try:
        yield
    except Exception as error:
        if not isinstance(error, psycopg.errors.LockNotAvailable) and not isinstance(
                error.__cause__, psycopg.errors.LockNotAvailable):
            raise
        raise LockBusy(holders(datastore, tables, advisory_key)) from error


HOLDERS = """
SELECT DISTINCT a.pid, a.usename, a.application_name, a.state, a.state_change
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.granted AND l.pid <> pg_backend_pid()
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND ((l.locktype = 'relation' AND l.relation IN (SELECT to_regclass(t) FROM unnest(%s::text[]) AS t))
       OR (l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.objsubid = 1))
ORDER BY a.pid
"""


def holders(datastore: Any, tables: Sequence[str], advisory_key: int) -> list[Holder]:
    high, low = (advisory_key >> 32) & 0xFFFFFFFF, advisory_key & 0xFFFFFFFF  # as pg_locks shows a bigint key
    with datastore.transaction(commit=False) as c:
        c.execute(HOLDERS, (list(tables), high, low))
        return [Holder(r["pid"], r["usename"], r["application_name"] or None, r["state"], r["state_change"])
                for r in c.fetchall()]
