"""Keeping the read model caught up with the event store.

On SQLite the recorder cannot be subscribed to, so the view catches up by reading the notification
log from its tracking position after each ingest batch (and before each report); PostgreSQL can use
the same catch-up or eventsourcing's ProjectionRunner, with one projection class for both.
"""

from __future__ import annotations

from collections.abc import Callable

from eventsourcing.persistence import IntegrityError, Tracking

from domain.policy import Policy
from infra.store import RecoveryApplication
from projections.kpi import KpiViewMixin, PostgresKpiView, SQLiteKpiView


def open_view(app: RecoveryApplication, policy: Policy) -> KpiViewMixin:
    """The KPI view in the application's own database (created on first use)."""
    if app.dialect.postgres:
        view: KpiViewMixin = PostgresKpiView(app.datastore, tracking_table_name="kpi_tracking")
    else:
        view = SQLiteKpiView(app.datastore)
    view.policy = policy
    view.create_table()  # type: ignore[attr-defined]
    return view


def catch_up(app: RecoveryApplication, view: KpiViewMixin, batch_size: int = 2000,
             progress: Callable[[int], None] | None = None) -> int:
    """Apply every recorded event the view has not applied yet; returns how many."""
    done = 0
    while True:
        last = view.max_tracking_id(app.name) or 0  # type: ignore[attr-defined]
        notifications = app.recorder.select_notifications(start=last + 1, limit=batch_size)
        if not notifications:
            return done
        try:
            view.process([(app.mapper.to_domain_event(n), Tracking(app.name, n.id)) for n in notifications],
                         after=last)
        except IntegrityError:
            # Another process applied (some of) these first: its transaction won, ours rolled
            # back whole. Re-read the position and go on from there.
            continue
        done += len(notifications)
        if progress:
            progress(len(notifications))
