"""The read model as it stood at a past moment: the events recorded up to then, applied by the same
view code to a scratch SQLite database. Today's tables are never consulted, so a month-end figure
can be re-derived later exactly (as long as the policy's amounts are the same)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import cast

from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import Tracking

from domain.policy import Policy
from infra.store import RecoveryApplication
from projections.beside import scratch_view
from projections.kpi import SQLiteKpiView


@contextmanager
def view_as_of(app: RecoveryApplication, policy: Policy, moment: datetime, batch_size: int = 2000,
               progress: Callable[[int], None] | None = None) -> Iterator[SQLiteKpiView]:
    """A KPI view of every event recorded at or before `moment` (its recorded timestamp), in log
    order; gone when the block ends."""
    with scratch_view(policy) as view:
        applied, start = 0, 1
        while notifications := app.recorder.select_notifications(start=start, limit=batch_size):
            items = [(event, Tracking(app.name, n.id)) for n in notifications
                     if (event := cast(DomainEvent, app.mapper.to_domain_event(n))).timestamp <= moment]
            if items:
                view.process(items, after=applied)
                applied = items[-1][1].notification_id
            start = notifications[-1].id + 1
            if progress:
                progress(len(notifications))
        yield view
