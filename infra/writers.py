"""One writer at a time per store, across processes: `recovery ingest` runs, `serve` and the
read model's catch-up on one database all finish, instead of one of them dying.

SQLite allows one writing transaction at a time, and one that read before writing fails at once
("database is locked") when another wrote meanwhile; its busy timeout does not help there. So
writers take an exclusive lock on a file beside the database (`<db>.writer.lock`) around each
write. On PostgreSQL an advisory lock held by a connection of its own does the same for ingest
batches, so that two watchers never record a miss of the same complaint at once.

A writer that has to wait says so on standard error, with the holder's pid and command, every
`REPORT_EVERY_SECONDS`, and goes on waiting: nothing is lost either way.
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from infra.files import private_fd
from infra.schema import INGEST_WRITER_LOCK

REPORT_EVERY_SECONDS = 5.0
POLL_SECONDS = 0.02


def _say(message: str) -> None:
    print(f"recovery: {message}", file=sys.stderr, flush=True)


def _me() -> str:
    command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:3]))
    return f"pid {os.getpid()}: {command or 'python'}, since {datetime.now(UTC):%H:%M:%S}Z"


class WriterLock:
    """Re-entrant within a process (threads wait for each other), exclusive across processes."""

    def __init__(self, acquire: Callable[[], bool], wait: Callable[[], None], release: Callable[[], None],
                 holder: Callable[[], str], what: str, on_wait: Callable[[str], None] = _say):
        self._try, self._wait, self._release, self._holder = acquire, wait, release, holder
        self.what, self.on_wait = what, on_wait
        self._local = threading.RLock()
        self._depth = 0

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._local:
            if self._depth == 0:
                self._acquire()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._release()

    def _acquire(self) -> None:
        if self._try():
            return
        said = 0.0
        while True:
            if time.monotonic() - said >= REPORT_EVERY_SECONDS:
                self.on_wait(f"waiting for another writer of {self.what} ({self._holder()})")
                said = time.monotonic()
            self._wait()
            if self._try():
                return


def sqlite_writer_lock(database: Path) -> WriterLock:
    path = database.with_name(database.name + ".writer.lock")
    state: dict[str, Any] = {"fd": None}

    def fd() -> int:
        if state["fd"] is None:
            state["fd"] = private_fd(path, os.O_RDWR)
        return int(state["fd"])

    def acquire() -> bool:
        try:
            fcntl.flock(fd(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        os.ftruncate(fd(), 0)
        os.pwrite(fd(), _me().encode(), 0)
        return True

    def holder() -> str:
        try:
            return os.pread(fd(), 512, 0).decode("utf-8", "replace") or "unknown"
        except OSError:
            return "unknown"

    return WriterLock(acquire, lambda: time.sleep(POLL_SECONDS), lambda: fcntl.flock(fd(), fcntl.LOCK_UN),
                      holder, str(database))


def postgres_writer_lock(conninfo: dict[str, Any], what: str) -> WriterLock:
    """Held by a connection of its own, opened on first use and again if the server dropped it."""
    state: dict[str, Any] = {"conn": None}

    def conn() -> psycopg.Connection[Any]:
        if state["conn"] is None or state["conn"].closed:
            state["conn"] = psycopg.connect(**conninfo, autocommit=True, application_name="recovery writer lock")
        return state["conn"]

    def acquire() -> bool:
        row = conn().execute("SELECT pg_try_advisory_lock(%s)", (INGEST_WRITER_LOCK,)).fetchone()
        return bool(row and row[0])

    def release() -> None:
        try:
            conn().execute("SELECT pg_advisory_unlock(%s)", (INGEST_WRITER_LOCK,))
        except psycopg.Error:
            state["conn"] = None  # the session, and the lock with it, is gone

    def holder() -> str:
        row = conn().execute(
            "SELECT a.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted LIMIT 1",
            (INGEST_WRITER_LOCK,)).fetchone()
        return f"pid {row[0]}" if row else "unknown"

    return WriterLock(acquire, lambda: time.sleep(POLL_SECONDS), release, holder, what)
