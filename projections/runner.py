"""Keeping the read model caught up with the event store.

On SQLite the recorder cannot be subscribed to, so the view catches up by reading the notification
log from its tracking position after each ingest batch (and before each report); PostgreSQL can use
the same catch-up or eventsourcing's ProjectionRunner, with one projection class for both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from eventsourcing.application import Recording
from eventsourcing.persistence import IntegrityError, Tracking

from domain.policy import Policy
from infra.config import CACHED_COMPLAINTS
from infra.locks import naming_holders, set_lock_timeout
from infra.schema import VIEW_WRITER_LOCK
from infra.store import RecoveryApplication, following
from projections.batchfacts import FactsCache
from projections.kpi import KpiViewMixin, PostgresKpiView, SQLiteKpiView
from projections.schema import POSTGRES_VACUUM, SCHEMA_TABLE, SCHEMA_VERSION, TABLES, VIEW_TABLES

log = logging.getLogger("recovery.read_model")


def open_view(app: RecoveryApplication, policy: Policy, read_only: bool = False,
              cached_complaints: int = CACHED_COMPLAINTS) -> KpiViewMixin:
    """The KPI view in the application's own database (created on first use; rebuilt from the
    event log when it was made by a release with other tables or counters), keeping the facts of
    up to `cached_complaints` complaints between batches."""
    if app.dialect.postgres:
        view: KpiViewMixin = PostgresKpiView(app.datastore, tracking_table_name="kpi_tracking")
    else:
        view = SQLiteKpiView(app.datastore)
    view.policy = policy
    view.facts_cache = FactsCache(cached_complaints)
    if not read_only:
        with nullcontext() if app.dialect.postgres else app.writer.held():
            view.create_table()
            reset_view(app, view)
    return view


@contextmanager
def view_writer(app: RecoveryApplication, lock_timeout: float | None = None) -> Iterator[Any]:
    """A transaction that may rewrite the read model's tables: on PostgreSQL it holds the view
    writers' lock, waiting at most `lock_timeout` seconds for it and for the tables' locks (else
    LockBusy names the sessions that held them)."""
    with naming_holders(app.datastore, (*VIEW_TABLES, "kpi_schema"), VIEW_WRITER_LOCK), \
            app.datastore.transaction(commit=True) as c:
        if app.dialect.postgres:
            if lock_timeout is not None:
                app.dialect.execute(c, set_lock_timeout(lock_timeout))
            app.dialect.execute(c, "SELECT pg_advisory_xact_lock(?)", (VIEW_WRITER_LOCK,))
        yield c


def reset_view(app: RecoveryApplication, view: KpiViewMixin, always: bool = False,
               lock_timeout: float | None = None) -> bool:
    """Empty the read model and its position, so catch-up rebuilds it from the log (the only
    truth): `always`, or when it was built by a release of another schema version (or records
    none). One transaction: readers see the old tables or the new empty ones. Returns whether it
    did. Replicas of an older release must be stopped first: they would write the old way.
    With `lock_timeout` (seconds, PostgreSQL), a lock not granted in time raises LockBusy naming
    the sessions that held it, and nothing is changed."""
    dialect = app.dialect
    tracking = getattr(view, "tracking_table_name", "tracking")
    with view_writer(app, lock_timeout) as c:
        dialect.execute(c, SCHEMA_TABLE)
        found = [r["version"] for r in dialect.rows(c, "SELECT version FROM kpi_schema")]
        if found == [SCHEMA_VERSION] and not always:
            return False
        for table in VIEW_TABLES:
            dialect.execute(c, f"DROP TABLE IF EXISTS {table}")
        for statement in [*TABLES, *(POSTGRES_VACUUM if dialect.postgres else [])]:
            dialect.execute(c, statement)
        dialect.execute(c, f"DELETE FROM {tracking} WHERE application_name = ?", (app.name,))
        dialect.execute(c, "DELETE FROM kpi_schema")
        dialect.execute(c, "INSERT INTO kpi_schema (version) VALUES (?)", (SCHEMA_VERSION,))
    return True


# Larger batches than catch-up's: a complaint's events that fall in one batch cost one write of its
# facts, and a rebuild has no reader waiting for the first batch.
REBUILD_BATCH = 10_000


def catch_up(app: RecoveryApplication, view: KpiViewMixin, batch_size: int = 2000,
             progress: Callable[[int], None] | None = None, recorded: Sequence[Recording] = (),
             after_batch: Callable[[], None] | None = None) -> int:
    """Apply every recorded event the view has not applied yet; returns how many (see apply_log).
    On SQLite under the store's writer lock: a writer that read first fails at once when another
    wrote meanwhile. On PostgreSQL the view's writers serialise on a lock of their own."""
    with nullcontext() if app.dialect.postgres else app.writer.held():
        return apply_log(app, view, batch_size, progress, recorded, after_batch)


def apply_log(app: RecoveryApplication, view: KpiViewMixin, batch_size: int,
              progress: Callable[[int], None] | None, recorded: Sequence[Recording],
              after_batch: Callable[[], None] | None, stop: int | None = None) -> int:
    """Apply every recorded event the view has not applied yet (up to position `stop`, when given),
    without taking the store's writer lock; returns how many. `recorded`: what
    this process has just saved (eventsourcing's recordings, with their log positions). When they
    are next in the log they are applied as they are, without reading and decoding them again.
    `after_batch` runs after each batch read from the log (housekeeping of a long catch-up)."""
    done = 0
    if recorded:
        last = view.max_tracking_id(app.name) or 0
        run = following(recorded, last)[:batch_size]  # the rest, if any, is read below
        if run:
            try:
                view.process([(r.domain_event, Tracking(app.name, r.notification.id)) for r in run], after=last)
                done = len(run)
                if progress:
                    progress(done)
            except IntegrityError:
                pass  # another process applied them first: read on from its position
            except Exception:  # noqa: BLE001 - read from the log below, where one event at a time is isolated
                pass
    size = batch_size
    while True:
        last = view.max_tracking_id(app.name) or 0
        if stop is not None and last >= stop:
            return done
        notifications = app.recorder.select_notifications(start=last + 1, limit=size, stop=stop)
        if not notifications:
            return done
        try:
            items = [(app.mapper.to_domain_event(n), Tracking(app.name, n.id)) for n in notifications]
            view.process(items, after=last)
        except IntegrityError:
            # Another process applied (some of) these first: its transaction won, ours rolled
            # back whole. Go on from its position. If nobody moved it, the conflict is not a
            # race but a fault of this batch: retrying would fail the same way for ever.
            if (view.max_tracking_id(app.name) or 0) == last:
                raise
            continue
        except Exception as error:
            # An event the read model cannot apply (a bug) must not wedge it: halves down to the
            # event, which is then passed over as a fault on record (a metric and an alert).
            if not view.dialect.answers(view.datastore):
                raise
            if size > 1:
                size = max(1, size // 2)
                continue
            view.record_fault(notifications[0].id, Tracking(app.name, notifications[0].id),
                              f"{type(error).__name__}: {error}"[:500], after=last)
            log.error(json.dumps({"event": "read_model_fault", "position": notifications[0].id,
                                  "topic": notifications[0].topic, "error": f"{type(error).__name__}: {error}"[:500]}))
            size = batch_size
            continue
        done += len(notifications)
        size = min(batch_size, size * 2)
        if progress:
            progress(len(notifications))
        if after_batch:
            after_batch()

