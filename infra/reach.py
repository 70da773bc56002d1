"""Can the configured store be used at all? Asked once, before eventsourcing opens it: its
connection pool retries a database that does not answer for minutes and then fails with a
traceback that never names the cause. Here the answer is one error naming the target and why."""

from __future__ import annotations

import errno
import os
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

from infra.files import PathUnusable, check_readable, create_private

CONNECT_TIMEOUT_SECONDS = 5


class StoreUnavailable(Exception):
    """The database server cannot be reached, or refuses this login or database."""

    def __init__(self, target: str, cause: str):
        super().__init__(f"cannot reach the database at {target}: {cause}")
        self.target, self.cause = target, cause


def check_reachable(url: str, read_only: bool = False, timeout: int = CONNECT_TIMEOUT_SECONDS) -> None:
    """PostgreSQL: one connection attempt of at most `timeout` seconds. SQLite: the file can be
    opened; unless `read_only`, it is created (0600) when missing, so its -wal and -shm files,
    which SQLite creates with the database file's mode, are private too."""
    import psycopg  # here, not above: the command line imports this module's errors at start-up

    from infra.store import database_env

    env = database_env(url)
    if "SQLITE_DBNAME" in env:
        _check_sqlite_file(Path(env["SQLITE_DBNAME"]), read_only)
        return
    target = f"{env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}"
    try:
        psycopg.connect(dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
                        user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"],
                        connect_timeout=timeout).close()
    except psycopg.Error as error:
        raise StoreUnavailable(target, connection_cause(str(error), timeout)) from error


def _check_sqlite_file(path: Path, read_only: bool) -> None:
    if path.is_dir():
        raise PathUnusable(path, os.strerror(errno.EISDIR))
    if not read_only:
        try:
            create_private(path)
        except PathUnusable as error:
            if path.exists() and os.access(path, os.R_OK):
                raise PathUnusable(path, f"{error.reason}; RECOVERY_READ_ONLY=1 reads it without writing") from error
            raise
        return
    check_readable(path)


def sqlite_unusable(error: Exception, path: Path) -> PathUnusable | None:
    """SQLite's errors for a database (or its -wal/-shm files) that cannot be opened or written,
    as one error naming the file; None for any other error."""
    message = str(error)
    if isinstance(error.__cause__, sqlite3.Error):
        message = str(error.__cause__)
    if "unable to open database file" in message:
        return PathUnusable(path, "unable to open the database file or create its -wal/-shm files beside it")
    if "readonly database" in message:
        return PathUnusable(path, "the database (or its folder) is read-only; "
                                  "RECOVERY_READ_ONLY=1 reads it without writing")
    return None


_Cause = Callable[[re.Match[str], int], str]
# psycopg's (libpq's) message text -> the cause in a few words; the first match wins.
CAUSES: list[tuple[re.Pattern[str], _Cause]] = [
    (re.compile(r"connection refused", re.I), lambda m, t: "connection refused"),
    (re.compile(r"failed to resolve host '([^']*)'|could not translate host name \"([^\"]*)\""),
     lambda m, t: f"unknown host {m.group(1) or m.group(2)}"),
    (re.compile(r'database "[^"]*" does not exist'), lambda m, t: m.group(0)),
    (re.compile(r'role "[^"]*" does not exist'), lambda m, t: m.group(0)),
    (re.compile(r'password authentication failed for user "[^"]*"'), lambda m, t: m.group(0)),
    (re.compile(r"no password supplied|fe_sendauth"), lambda m, t: "the server asks for a password and none was given"),
    (re.compile(r"timeout expired|timed out", re.I), lambda m, t: f"no answer within {t} s (timeout)"),
    (re.compile(r"no route to host|network is unreachable", re.I), lambda m, t: m.group(0).lower()),
]


def connection_cause(message: str, timeout: int = CONNECT_TIMEOUT_SECONDS) -> str:
    for pattern, cause in CAUSES:
        found = pattern.search(message)
        if found:
            return cause(found, timeout)
    # Anything else: libpq's last reason, on one line ("... failed: FATAL:  <reason>").
    last = message.split("failed:")[-1].strip().splitlines()[0] if message.strip() else "unknown error"
    return re.sub(r"^(FATAL|ERROR):\s+", "", last)
