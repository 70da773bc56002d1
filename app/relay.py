"""`recovery relay`: the outbox relay (consumers/outbox.py) as a process of its own, following the
event log. `recovery serve` starts one beside itself on PostgreSQL (RECOVERY_RELAY=process), so
that publishing runs on another core instead of taking a third of serve's interpreter; or run it
alone (serve with RECOVERY_RELAY=off). One relay publishes at a time: a PostgreSQL advisory lock,
held for the process's life; the others wait to take over."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from kafka import KafkaProducer

from app.platform import Platform
from app.settings import Settings
from consumers.outbox import OutboxRelay
from infra.schema import RELAY_LOCK

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("recovery.relay")


def relay_mode(platform: Platform) -> str:
    """RECOVERY_RELAY: where `serve` relays the outbox. Default: a process of its own on PostgreSQL;
    inline (serve's own thread) on SQLite, which has one writer at a time."""
    mode = platform.settings.relay or ("process" if platform.app.dialect.postgres else "inline")
    if mode == "process" and not platform.app.dialect.postgres:
        raise ValueError("RECOVERY_RELAY=process needs PostgreSQL (SQLite has one writer at a time)")
    return mode


class RelayLeadership:
    """Only one relay publishes at a time: a PostgreSQL advisory lock held for the process's life
    (SQLite stores have one process)."""

    KEY = RELAY_LOCK
    conn: psycopg.Connection[Any] | None  # opened on the first claim (PostgreSQL)

    def __init__(self, platform: Platform, every_seconds: float = 5.0):
        self.platform, self.conn, self.held = platform, None, not platform.app.dialect.postgres
        self.every_seconds, self.claimed = every_seconds, float("-inf")

    def claim(self) -> bool:
        """Whether this process holds the lock, trying for it (or, held, checking that its session
        is still there: the server drops the lock with it) at most every `every_seconds`."""
        if (self.conn is not None or not self.held) and time.monotonic() - self.claimed >= self.every_seconds:
            self.claimed = time.monotonic()
            self.acquire()
        return self.held

    def acquire(self) -> bool:
        import psycopg

        env = self.platform.app.env
        try:
            if self.conn is None:
                self.conn = psycopg.connect(
                    dbname=env.get("POSTGRES_DBNAME"), host=env.get("POSTGRES_HOST"), port=env.get("POSTGRES_PORT"),
                    user=env.get("POSTGRES_USER"), password=env.get("POSTGRES_PASSWORD") or None, autocommit=True)
            if self.held:
                self.conn.execute("SELECT 1")
            else:
                self.held = bool(self.conn.execute("SELECT pg_try_advisory_lock(%s)",  # always one row
                                                   (self.KEY,)).fetchone()[0])  # type: ignore[index]
        except psycopg.OperationalError as error:  # the session (and any lock it held) is gone
            log.warning(json.dumps({"event": "relay_lock_lost", "error": str(error)[:300]}))
            self.release()
            self.conn, self.held = None, False
        return self.held

    def release(self) -> None:
        if self.conn is not None:
            self.conn.close()


def relay(app_settings: Settings | None = None, parent: int | None = None, idle_seconds: float = 0.05) -> int:
    """Publish what the log records, until SIGTERM/SIGINT or, with `parent`, until that process is
    gone (a serve killed outright leaves no relay behind)."""
    app_settings = app_settings or Settings.from_env()
    settings = app_settings.kafka()
    stopping = {"flag": False}

    def stop(signum: int, _frame: Any) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    platform = Platform(watcher=settings.watcher, settings=app_settings)
    producer = KafkaProducer(**settings.producer_config())
    outbox = OutboxRelay(platform.app, producer, settings)
    leadership = RelayLeadership(platform)
    log.info(json.dumps({"event": "relay_started", "topic": settings.outbound_topic}))
    try:
        while not stopping["flag"] and (parent is None or os.getppid() == parent):
            if not (leadership.claim() and outbox.publish_pending()):
                time.sleep(idle_seconds)
    finally:
        producer.close()
        leadership.release()
        platform.close()
    log.info(json.dumps({"event": "relay_stopped"}))
    return 0


class RelayProcess:
    """serve's relay child: `recovery relay` in a process of its own, started again if it dies."""

    def __init__(self, restart_seconds: float = 5.0):
        self.proc: subprocess.Popen[bytes] | None = None
        self.restart_seconds, self.started = restart_seconds, 0.0

    def keep_running(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        if self.proc is not None:
            if time.monotonic() - self.started < self.restart_seconds:
                return
            log.warning(json.dumps({"event": "relay_exited", "returncode": self.proc.returncode}))
        self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", "relay", "--parent", str(os.getpid())])
        self.started = time.monotonic()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
