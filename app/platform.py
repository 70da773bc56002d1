"""Opens the pieces one command needs: policy, event store, ingest service and KPI view."""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import psycopg
from eventsourcing.application import Recording
from eventsourcing.persistence import PersistenceError

from app.housekeeping import Housekeeping, tune_collector
from app.settings import Settings
from domain import clock
from domain.policy import Policy, load_policy, policy_text
from infra.reach import check_reachable, sqlite_unusable
from infra.store import RecoveryApplication, sqlite_path
from projections.beside import Difference, check, rebuild_beside
from projections.kpi import KpiViewMixin
from projections.runner import catch_up, open_view
from service.ingest import IngestService, Outcome
from service.policies import PolicyBook

START_ATTEMPTS = 8  # about 5.6 s of waiting in all


def _a_start_up_race(error: Exception) -> bool:
    if isinstance(error, sqlite3.Error):
        return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)
    return True


class Platform:
    def __init__(self, url: str | None = None, policy: Policy | None = None, watcher: str = "event",
                 read_only: bool | None = None, settings: Settings | None = None):
        # The entrypoints pass the settings they read; a Platform opened without (tests, benchmarks)
        # reads them here, still at the app's floor.
        self.settings = settings = settings or Settings.from_env()
        self.url = url or settings.database_url
        # RECOVERY_READ_ONLY=1: for auditors' read-only logins. Nothing is created or caught up:
        # reports read the read model as it is, history and --as-of read the log.
        self.read_only = settings.read_only if read_only is None else read_only
        configured = policy or load_policy(settings.policy_file)
        tune_collector()
        cached = settings.cached_complaints
        check_reachable(self.url, read_only=self.read_only)  # StoreUnavailable, PathUnusable
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self.app = RecoveryApplication(self.url, cache_size=cached, read_only=self.read_only)
                self.book = PolicyBook(self.app)
                self.configured = configured  # the first version, recorded with the first write
                self._policy_generation = self.book.generation
                recorded = self.book.policy()
                self.policy = recorded or configured
                if policy is None and recorded is not None:
                    self._warn_if_the_file_differs(configured)
                self.view: KpiViewMixin = open_view(self.app, self.policy, read_only=self.read_only,
                                                    cached_complaints=cached)
                break
            except (sqlite3.Error, PersistenceError, psycopg.errors.InternalError) as error:
                # Schema creation at start-up can collide with another process: two creators race
                # in PostgreSQL's catalogue (CREATE ... IF NOT EXISTS is not atomic there: unique
                # violations, "tuple concurrently updated"), a CREATE INDEX deadlocks with a
                # running writer's table lock, or a new SQLite file is locked by its creator while
                # we switch it to WAL (eventsourcing lets that through unwrapped). The loser tries
                # again; a lasting fault still fails.
                self._explain(error)
                if attempt == START_ATTEMPTS or not _a_start_up_race(error):
                    raise
                time.sleep(0.2 * attempt)
        self.service = IngestService(self.app, self.policy, watcher=watcher)
        self.housekeeping = Housekeeping(self.app)

    def _warn_if_the_file_differs(self, configured: Policy) -> None:
        """RECOVERY_POLICY_FILE only seeds a store's first version: once it has versions, a file that
        says otherwise is ignored, and every command says so."""
        file = self.settings.policy_file
        in_force = self.policy.at(clock.now())
        if file and policy_text(configured) != policy_text(in_force):
            number = next((v.number for v in reversed(self.book.versions()) if v.effective_from <= clock.now()), 1)
            print(f"recovery: warning: RECOVERY_POLICY_FILE {file} differs from policy version {number}, in force "
                  "in this store; the store's versions apply (recovery policy adopt FILE --effective-from T to "
                  "change the rules)", file=sys.stderr)

    def record_first_policy(self) -> None:
        """A store that has no policy version records the configured one, effective from the
        beginning, before its first write (SPEC §3.5)."""
        if not self.read_only and not self.book.versions():
            self.book.seed(self.configured)
            self.refresh_policy()

    def refresh_policy(self) -> None:
        """Take up a version adopted since (by `recovery policy adopt`, maybe in another process)."""
        self.book.versions()  # one small query; the versions are read again only when they changed
        if self.book.generation != self._policy_generation:
            found = self.book.policy()
            if found is not None:
                self.policy = self.service.policy = self.view.policy = found
            self._policy_generation = self.book.generation

    def _explain(self, error: Exception) -> None:
        """Raise the one-line error (PathUnusable, StoreUnavailable) when `error` means the store
        cannot be used: an SQLite file that cannot be opened or written, a database gone since."""
        db = sqlite_path(self.url)
        if db is None:
            check_reachable(self.url, read_only=self.read_only)
            return
        unusable = sqlite_unusable(error, db)
        if unusable is not None:
            raise unusable from error

    def dead_letter_path(self) -> Path:
        """Beside the SQLite file; in the working directory for PostgreSQL."""
        configured = self.settings.dead_letter_file
        if configured:
            return configured
        db = sqlite_path(self.url)
        if db is not None:
            return db.with_name(db.stem + ".dead-letters.jsonl")
        return Path("recovery.dead-letters.jsonl")

    def ingest_lines(self, lines: Iterable[str | bytes], batch_size: int = 1000,
                     on_batch: Callable[[list[Outcome]], None] | None = None,
                     retry_refused: bool = False) -> list[Outcome]:
        """Ingest in batches (one transaction each), keeping the read model caught up after each.
        With `on_batch`, each batch's outcomes go to it and none are kept (memory stays flat however
        long the file); without, all are returned. On PostgreSQL the read model applies one batch
        while the next is ingested (a thread of its own: each waits on the server much of its time);
        either's failure stops the ingest, and the read model is caught up when this returns."""
        outcomes: list[Outcome] = []
        batch: list[str | bytes] = []
        self.record_first_policy()
        with self.beside() as beside:
            def flush() -> None:
                self.refresh_policy()
                done = self.service.ingest(batch, retry=retry_refused)
                if on_batch:  # first: the batch is recorded, whatever the previous catch-up raises
                    on_batch(done)
                else:
                    outcomes.extend(done)
                batch.clear()
                beside(partial(self.catch_up, self.service.take_recorded()))

            for line in lines:
                batch.append(line)
                if len(batch) >= batch_size:
                    flush()
            if batch:
                flush()
        return outcomes

    @contextmanager
    def beside(self) -> Iterator[Callable[[Callable[[], object]], None]]:
        """A function that runs the work that follows a batch (the read model's catch-up, the
        outbox relay) beside the next batch: on PostgreSQL in a thread of its own, one piece at a
        time (each waits for the previous, whose failure it raises); on SQLite (one writer at a
        time) at once. Leaving waits for the last piece. Both sides wait on the server much of
        their time, so overlapping them is faster even with one interpreter lock."""
        if not self.app.dialect.postgres:
            def at_once(work: Callable[[], object]) -> None:
                work()

            yield at_once
            return
        pending: list[Future[object]] = []
        with ThreadPoolExecutor(1, thread_name_prefix="after-batch") as pool:
            def submit(work: Callable[[], object]) -> None:
                if pending:
                    pending.pop().result()
                pending.append(pool.submit(work))

            yield submit
            if pending:
                pending.pop().result()

    def catch_up(self, recorded: Sequence[Recording] | None = None) -> int:
        """Bring the read model up to date; what this process saved is applied without reading it
        back (`recorded`, else what the ingest service holds)."""
        if self.read_only:
            return 0
        if recorded is None:
            recorded = self.service.take_recorded()
        done = catch_up(self.app, self.view, recorded=recorded)
        self.housekeeping.when_due()
        return done

    def rebuild(self, progress: Callable[[int], None] | None = None, lock_timeout: float | None = None) -> int:
        """Build the read model again from the log beside the live one, then swap it in, in one
        transaction (projections/beside.py); returns the log position it stands at. On PostgreSQL
        the swap waits at most `lock_timeout` seconds for the read model's locks; else LockBusy
        names who held them, and nothing changed."""
        return rebuild_beside(self.app, self.view, self.policy, progress=progress, lock_timeout=lock_timeout)

    def check(self, progress: Callable[[int], None] | None = None) -> tuple[int, list[Difference]]:
        """The read model compared, row by row, with one built from the log beside it; nothing switched."""
        if not self.read_only:
            self.catch_up()
        return check(self.app, self.view, self.policy, progress=progress)

    def close(self) -> None:
        self.app.close()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
