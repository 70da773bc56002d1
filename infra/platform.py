"""Opens the pieces one command needs: policy, event store, ingest service and KPI view."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import psycopg
from eventsourcing.application import Recording
from eventsourcing.persistence import PersistenceError

from domain.policy import Policy, load_policy
from infra.ingest import Outcome, IngestService
from infra.store import RecoveryApplication, database_url, sqlite_path
from projections.kpi import KpiViewMixin
from projections.runner import catch_up, open_view


class Platform:
    def __init__(self, url: str | None = None, policy: Policy | None = None, watcher: str = "event",
                 read_only: bool | None = None):
        self.url = url or database_url()
        # RECOVERY_READ_ONLY=1: for auditors' read-only logins. Nothing is created or caught up:
        # reports read the read model as it is, history and --as-of read the log.
        self.read_only = (os.environ.get("RECOVERY_READ_ONLY", "").lower() in ("1", "yes", "true")
                          if read_only is None else read_only)
        self.policy = policy or load_policy(os.environ.get("RECOVERY_POLICY_FILE") or None)
        for attempt in range(1, 6):
            try:
                self.app = RecoveryApplication(self.url, read_only=self.read_only)
                self.view: KpiViewMixin = open_view(self.app, self.policy, read_only=self.read_only)
                break
            except (PersistenceError, psycopg.errors.InternalError):
                # Schema creation at start-up can collide with another process: two creators race
                # in PostgreSQL's catalogue (CREATE ... IF NOT EXISTS is not atomic there: unique
                # violations, "tuple concurrently updated"), or a CREATE INDEX deadlocks with a
                # running writer's table lock. The loser tries again; a lasting fault still fails.
                if attempt == 5:
                    raise
                time.sleep(0.2 * attempt)
        self.service = IngestService(self.app, self.policy, watcher=watcher)

    def dead_letter_path(self) -> Path:
        """Beside the SQLite file; in the working directory for PostgreSQL."""
        configured = os.environ.get("RECOVERY_DEAD_LETTER_FILE")
        if configured:
            return Path(configured)
        db = sqlite_path(self.url)
        if db is not None:
            return db.with_name(db.stem + ".dead-letters.jsonl")
        return Path("recovery.dead-letters.jsonl")

    def ingest_lines(self, lines: Iterable[str | bytes], batch_size: int = 1000,
                     on_batch: Callable[[list[Outcome]], None] | None = None) -> list[Outcome]:
        """Ingest in batches (one transaction each), keeping the read model caught up after each.
        With `on_batch`, each batch's outcomes go to it and none are kept (memory stays flat however
        long the file); without, all are returned."""
        outcomes: list[Outcome] = []
        batch: list[str | bytes] = []

        def flush() -> None:
            done = self.service.ingest(batch)
            self.catch_up()
            if on_batch:
                on_batch(done)
            else:
                outcomes.extend(done)
            batch.clear()

        for line in lines:
            if line.strip():
                batch.append(line)
                if len(batch) >= batch_size:
                    flush()
        if batch:
            flush()
        return outcomes

    def catch_up(self, recorded: Sequence[Recording] | None = None) -> int:
        """Bring the read model up to date; what this process saved is applied without reading it
        back (`recorded`, else what the ingest service holds)."""
        if self.read_only:
            return 0
        if recorded is None:
            recorded = self.service.take_recorded()
        return catch_up(self.app, self.view, recorded=recorded)

    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
