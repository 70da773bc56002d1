"""Failures that explain themselves: a database that cannot be reached, a path that cannot be used.
Each ends the real command line with one line on stderr naming the target and the cause, quickly,
and with a documented exit code (3 unreachable, 2 unusable path); `--debug` keeps the traceback.
Files the platform creates are readable by their owner only."""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from support.feed import Feed

from infra.reach import connection_cause

ROOT = Path(__file__).resolve().parents[2]


def recovery(*args: str, url: str, prefix: tuple[str, ...] = (), cwd: Path | None = None,
             **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    # The shipped policy: the tests' replay policy lies in a folder another user may not read.
    environ = {**{k: v for k, v in os.environ.items() if k != "RECOVERY_POLICY_FILE"},
               "PYTHONPATH": str(ROOT), "RECOVERY_DATABASE_URL": url, **env}
    started = time.monotonic()
    done = subprocess.run([*prefix, sys.executable, "-m", "app.cli", *args], env=environ, cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - started


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _with_netloc(url: str, netloc: str | None = None, path: str | None = None) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(netloc=netloc or parts.netloc, path=path or parts.path))


def _server(url: str) -> str:
    parts = urlparse(url)
    return f"{parts.hostname}:{parts.port or 5432}"


# --- an unreachable database ---------------------------------------------------------------------

def unreachable(url: str, cause: str, *args: str) -> None:
    done, elapsed = recovery(*(args or ("report",)), url=url)
    line = one_line(done)
    assert done.returncode == 3
    assert line.startswith("recovery: cannot reach the database at ")
    assert cause in line, line
    assert elapsed < 10


def test_a_refused_port_is_one_line_naming_it():
    port = _free_port()
    unreachable(f"postgresql://postgres@127.0.0.1:{port}/recovery", f"127.0.0.1:{port}: connection refused")


def test_an_unknown_host_is_one_line_naming_it():
    unreachable("postgresql://postgres@db.invalid:5432/recovery", "db.invalid:5432: unknown host db.invalid")


@pytest.mark.postgres
def test_a_missing_database_is_one_line_naming_it(postgres_server):
    url = _with_netloc(postgres_server, path="/nope_recovery")
    unreachable(url, f'{_server(postgres_server)}: database "nope_recovery" does not exist', "ingest", __file__)


@pytest.mark.postgres
def test_a_missing_role_is_one_line_naming_it(postgres_server):
    ghost = f"ghost_{uuid.uuid4().hex[:8]}"
    url = _with_netloc(postgres_server, netloc=f"{ghost}@{_server(postgres_server)}")
    unreachable(url, f'role "{ghost}" does not exist', "audit", "verify")


class FakePostgres:
    """A server that speaks just enough of PostgreSQL's protocol to refuse a password, or (`silent`)
    accepts connections and never answers. The test server trusts every login, so a wrong password
    cannot be provoked there."""

    def __init__(self, silent: bool = False):
        self.silent = silent
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)
            if not self.silent:
                threading.Thread(target=self._refuse_password, args=(conn,), daemon=True).start()

    @staticmethod
    def _refuse_password(conn: socket.socket) -> None:
        try:
            while True:  # SSL or GSS encryption requests are declined; then the startup message
                length, code = struct.unpack("!ii", conn.recv(8))
                conn.recv(length - 8)
                if code not in (80877103, 80877104):
                    break
                conn.sendall(b"N")
            conn.sendall(b"R" + struct.pack("!ii", 8, 3))  # cleartext password, please
            conn.recv(4096)
            fields = b"".join(k + v.encode() + b"\0" for k, v in [
                (b"S", "FATAL"), (b"V", "FATAL"), (b"C", "28P01"),
                (b"M", 'password authentication failed for user "clerk"')]) + b"\0"
            conn.sendall(b"E" + struct.pack("!i", 4 + len(fields)) + fields)
        finally:
            conn.close()

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def fake_postgres() -> Iterator[type[FakePostgres]]:
    servers: list[FakePostgres] = []

    def start(silent: bool = False) -> FakePostgres:
        servers.append(FakePostgres(silent))
        return servers[-1]

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()


def test_a_wrong_password_is_one_line_naming_the_user(fake_postgres):
    server = fake_postgres()
    unreachable(f"postgresql://clerk:wrong@127.0.0.1:{server.port}/recovery",
                f'127.0.0.1:{server.port}: password authentication failed for user "clerk"')


def test_a_server_that_never_answers_is_a_timeout_within_ten_seconds(fake_postgres):
    server = fake_postgres(silent=True)
    unreachable(f"postgresql://postgres@127.0.0.1:{server.port}/recovery", "no answer within 5 s (timeout)")


@pytest.mark.parametrize(("message", "cause"), [
    ('connection failed: connection to server at "10.0.0.5", port 5432 failed: FATAL:  password authentication '
     'failed for user "x"', 'password authentication failed for user "x"'),
    ('connection failed: connection to server at "10.0.0.5", port 5432 failed: fe_sendauth: no password supplied',
     "the server asks for a password and none was given"),
    ("connection timeout expired", "no answer within 5 s (timeout)"),
    ('could not translate host name "db.invalid" to address: Name or service not known', "unknown host db.invalid"),
    ('connection failed: connection to server at "10.0.0.5", port 5432 failed: FATAL:  the database system is '
     'starting up', "the database system is starting up"),
])
def test_libpq_messages_name_the_cause(message, cause):
    assert connection_cause(message) == cause


def test_debug_keeps_the_traceback():
    done, _ = recovery("--debug", "report", url=f"postgresql://postgres@127.0.0.1:{_free_port()}/recovery")
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "StoreUnavailable" in done.stderr and "Connection refused" in done.stderr


# --- a path that cannot be used --------------------------------------------------------------------

def test_an_sqlite_file_in_a_missing_folder_is_one_line_naming_it(tmp_path):
    db = tmp_path / "gone" / "recovery.db"
    done, _ = recovery("report", url=f"sqlite:///{db}")
    assert one_line(done) == f"recovery: cannot use {db}: No such file or directory"
    assert done.returncode == 2


def test_an_sqlite_path_that_is_a_folder_is_one_line_naming_it(tmp_path):
    done, _ = recovery("history", "C1", url=f"sqlite:///{tmp_path}")
    assert one_line(done) == f"recovery: cannot use {tmp_path}: Is a directory"
    assert done.returncode == 2


def _small_feed(folder: Path) -> Path:
    f = Feed()
    f.received("C1", "2026-11-02T09:00:00+08:00")
    f.closed("C1", "2026-11-02T10:00:00+08:00")  # refused: not resolved yet
    f.raw("not json")
    return f.write(folder / "events.jsonl")


def test_an_export_to_an_unusable_place_is_one_line_naming_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'recovery.db'}"
    assert recovery("ingest", str(_small_feed(tmp_path)), url=url)[0].returncode == 0
    out = tmp_path / "missing" / "all.jsonl"
    done, _ = recovery("export", "--output", str(out), url=url)
    assert one_line(done) == f"recovery: cannot use {out}: No such file or directory"
    assert done.returncode == 2


def test_a_dead_letter_file_that_cannot_be_opened_is_one_line_naming_it(tmp_path):
    done, _ = recovery("ingest", str(_small_feed(tmp_path)), url=f"sqlite:///{tmp_path / 'recovery.db'}",
                       RECOVERY_DEAD_LETTER_FILE=str(tmp_path))
    assert one_line(done) == f"recovery: cannot use {tmp_path}: Is a directory"
    assert done.returncode == 2


@pytest.fixture
def read_only_folder() -> Iterator[tuple[Path, tuple[str, ...]]]:
    """An ingested SQLite file in a folder the command cannot write: as root (whom permissions do
    not stop) the command runs as `nobody` in a folder of root's; otherwise the folder is 0555."""
    folder = Path(tempfile.mkdtemp(prefix="recovery-ro-"))  # not under pytest's 0700 folders
    try:
        url = f"sqlite:///{folder / 'recovery.db'}"
        assert recovery("ingest", str(_small_feed(folder)), url=url, cwd=folder)[0].returncode == 0
        prefix: tuple[str, ...] = ()
        if os.geteuid() == 0:
            prefix = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups")
            (folder / "recovery.db").chmod(0o644)  # the operator lets auditors read it
        folder.chmod(0o555)
        yield folder, prefix
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


@pytest.mark.parametrize("args", [("report",), ("history", "C1"), ("audit", "verify")])
def test_audit_commands_read_an_sqlite_file_in_a_read_only_folder(read_only_folder, args):
    folder, prefix = read_only_folder
    done, _ = recovery(*args, url=f"sqlite:///{folder / 'recovery.db'}", prefix=prefix, cwd=folder,
                       RECOVERY_READ_ONLY="1")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert not (folder / "recovery.db-wal").exists()


def test_without_read_only_a_read_only_folder_is_one_line(read_only_folder):
    folder, prefix = read_only_folder
    done, _ = recovery("report", url=f"sqlite:///{folder / 'recovery.db'}", prefix=prefix, cwd=folder)
    line = one_line(done)
    assert line.startswith(f"recovery: cannot use {folder / 'recovery.db'}: ") and "RECOVERY_READ_ONLY=1" in line
    assert done.returncode == 2


# --- file modes ------------------------------------------------------------------------------------

def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_dead_letters_are_created_owner_only(tmp_path):
    db = tmp_path / "recovery.db"
    done, _ = recovery("ingest", str(_small_feed(tmp_path)), url=f"sqlite:///{db}")
    assert done.returncode == 0, done.stderr
    dead = tmp_path / "recovery.dead-letters.jsonl"
    assert dead.read_text().count("\n") == 2
    assert mode(db) == mode(dead) == 0o600
    import sqlite3

    with sqlite3.connect(db) as conn:  # an open connection has the -wal and -shm files
        conn.execute("SELECT COUNT(*) FROM stored_events").fetchone()
        for side in ("-wal", "-shm"):
            assert mode(db.with_name(db.name + side)) == 0o600


def test_an_existing_file_keeps_the_mode_its_operator_chose(tmp_path):
    dead = tmp_path / "recovery.dead-letters.jsonl"
    dead.touch()
    dead.chmod(0o640)
    done, _ = recovery("ingest", str(_small_feed(tmp_path)), url=f"sqlite:///{tmp_path / 'recovery.db'}")
    assert done.returncode == 0, done.stderr
    assert mode(dead) == 0o640 and dead.read_text().count("\n") == 2


def test_exports_are_created_owner_only(tmp_path):
    url = f"sqlite:///{tmp_path / 'recovery.db'}"
    assert recovery("ingest", str(_small_feed(tmp_path)), url=url)[0].returncode == 0
    out = tmp_path / "all.jsonl"
    done, _ = recovery("export", "--output", str(out), url=url)
    assert done.returncode == 0, done.stderr
    assert mode(out) == 0o600 and out.read_text().count("\n") == 4  # and the policy version
    out.chmod(0o644)
    assert recovery("export", "--format", "csv", "--output", str(out), url=url)[0].returncode == 0
    assert mode(out) == 0o644


# --- a rebuild blocked by another session ------------------------------------------------------------

def _read_model(url: str) -> dict[str, str]:
    from projections.schema import VIEW_TABLES

    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT md5(string_agg(r::text, ',' ORDER BY r::text)) FROM {t} AS r").fetchone()[0]
                for t in (*VIEW_TABLES, "kpi_tracking")}


@pytest.mark.postgres
def test_a_rebuild_blocked_by_another_session_names_it_and_changes_nothing(postgres_url):
    """A reader's open transaction does not block a rebuild (it swaps rows, readers keep reading);
    a session holding a lock that stops writers does, and is named."""
    from support.histories import november_history

    from app.platform import Platform

    with Platform(postgres_url) as platform:
        platform.ingest_lines(november_history().lines)
    before = _read_model(postgres_url)
    with psycopg.connect(postgres_url, application_name="psql") as reader:  # BEGIN; SELECT ..., left open
        reader.execute("SELECT * FROM kpi_complaints").fetchall()
        done, _ = recovery("rebuild", url=postgres_url, RECOVERY_LOCK_TIMEOUT_SECONDS="1")
        assert done.returncode == 0, done.stderr
    assert _read_model(postgres_url) == before
    with psycopg.connect(postgres_url, application_name="psql") as holder:  # BEGIN; LOCK TABLE ..., left open
        holder.execute("LOCK TABLE kpi_daily IN SHARE MODE")
        done, elapsed = recovery("rebuild", url=postgres_url, RECOVERY_LOCK_TIMEOUT_SECONDS="1")
        line = one_line(done)
        assert done.returncode == 4
        assert re.fullmatch(rf"recovery rebuild: blocked by pid {holder.info.backend_pid} \(user {holder.info.user}, "
                            r"application psql, idle in transaction since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\); "
                            r"nothing was changed", line), line
        assert elapsed < 10
        assert _read_model(postgres_url) == before
    done, _ = recovery("rebuild", url=postgres_url)
    assert done.returncode == 0 and done.stdout.startswith("rebuilt projection kpi from 39 recorded events")
    assert _read_model(postgres_url) == before
