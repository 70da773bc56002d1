"""The private eventsourcing members we override or call (infra/store.py, projections/kpi.py,
projections/beside.py), fenced: a release that renames one, changes its parameters, or stops
calling our override from the public path fails here, naming the member. Why the version is
pinned: pyproject.toml."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from uuid import UUID

import pytest
from eventsourcing import application, postgres, sqlite
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Tracking

from infra.store import IndexChanges, PostgresRecoveryRecorder, RecoveryApplication, SQLiteRecoveryRecorder
from projections.kpi import PostgresKpiView, SQLiteKpiView

ANY_KEYWORDS = "**"  # the member takes **kwargs: we pass `index=` (and eventsourcing `tracking=`) through

# (class, member, the parameters after self we call it with or override it with)
MEMBERS = [
    # infra/store.py: our recorders add the hash chains, write-side indexes and positions to each write.
    (sqlite.SQLiteProcessRecorder, "_insert_events", ["c", "stored_events", ANY_KEYWORDS]),
    (postgres.PostgresProcessRecorder, "_insert_events", ["curs", "stored_events", ANY_KEYWORDS]),
    # ...and on PostgreSQL replace the events' INSERT (binary arrays) and the reading of their ids.
    (postgres.PostgresApplicationRecorder, "_insert_stored_events", ["curs", "stored_events", ANY_KEYWORDS]),
    (postgres.PostgresApplicationRecorder, "_fetch_ids_after_insert_events", ["curs", "stored_events", ANY_KEYWORDS]),
    (postgres.PostgresApplicationRecorder, "_lock_table", ["curs"]),
    (postgres.PostgresApplicationRecorder, "_notify_channel", ["curs"]),
    # Tracking records written and read inside our own transactions (Kafka positions, the read model).
    (sqlite.SQLiteTrackingRecorder, "_insert_tracking", ["c", "tracking"]),
    (sqlite.SQLiteTrackingRecorder, "_max_tracking_id", ["application_name", "c"]),
    (postgres.PostgresTrackingRecorder, "_insert_tracking", ["curs", "tracking"]),
    (postgres.PostgresTrackingRecorder, "_max_tracking_id", ["application_name", "curs"]),
    # RecoveryApplication.save: eventsourcing's save without its per-object Protocol checks.
    (application.Application, "_record", ["processing_event"]),
    (application.Application, "_take_snapshots", ["processing_event"]),
    (application.Application, "_notify", ["recordings"]),
    # The public methods the overrides above are reached through, with **kwargs passed on.
    (sqlite.SQLiteProcessRecorder, "insert_events", ["stored_events", ANY_KEYWORDS]),
    (postgres.PostgresProcessRecorder, "insert_events", ["stored_events", ANY_KEYWORDS]),
]

# Attributes read or set: class -> names.
ATTRIBUTES = {
    application.ProcessingEvent: ["events", "aggregates", "saved_kwargs", "tracking"],  # RecoveryApplication.save
    application.LRUCache: ["cache", "lock", "full", "clear"],  # RecoveryApplication.forget_cached
}


def parameters(member: object) -> list[str]:
    found = inspect.signature(member).parameters.values()  # type: ignore[arg-type]
    return [ANY_KEYWORDS if p.kind is p.VAR_KEYWORD else p.name for p in found][1:]  # without self


@pytest.mark.unit
@pytest.mark.parametrize(("cls", "name", "expected"), MEMBERS,
                         ids=[f"{cls.__name__}.{name}" for cls, name, _ in MEMBERS])
def test_each_private_member_we_use_is_there_with_the_parameters_we_rely_on(cls, name, expected) -> None:
    member = getattr(cls, name, None)
    assert callable(member), f"eventsourcing {cls.__qualname__}.{name} is gone: infra/store.py or projections/ use it"
    assert parameters(member) == expected, (
        f"eventsourcing {cls.__qualname__}.{name} now takes {parameters(member)}, we rely on {expected}")


@pytest.mark.unit
def test_our_recorders_and_views_still_derive_from_the_classes_whose_members_they_use() -> None:
    assert issubclass(SQLiteRecoveryRecorder, sqlite.SQLiteProcessRecorder)
    assert issubclass(PostgresRecoveryRecorder, postgres.PostgresProcessRecorder)
    assert issubclass(SQLiteKpiView, sqlite.SQLiteTrackingRecorder)
    assert issubclass(PostgresKpiView, postgres.PostgresTrackingRecorder)


@pytest.mark.unit
@pytest.mark.parametrize("cls", list(ATTRIBUTES), ids=lambda cls: cls.__name__)
def test_the_private_attributes_we_touch_are_there(cls) -> None:
    sample = cls(maxsize=1) if cls is application.LRUCache else cls()
    missing = [name for name in ATTRIBUTES[cls] if not hasattr(sample, name)]
    assert not missing, f"eventsourcing {cls.__qualname__} has no {', '.join(missing)}: RecoveryApplication uses them"


class Probe(Aggregate):
    """Any aggregate: the write path is the same for all."""

    def __init__(self, label: str):
        self.label = label


@dataclass
class Written:
    ids: list[int]
    last_id: int
    chained: int
    tracked: int | None
    watcher: list[int]
    cached: bool
    forgotten: bool


def write_through_the_public_path(url: str) -> Written:
    """Save two events with write-side index changes and a position, as ingest does."""
    app = RecoveryApplication(url, cache_size=10)
    try:
        probe = Probe("a")
        probe.trigger_event(Aggregate.Event)
        index = IndexChanges(watcher_clock=42, positions=[Tracking("kafka:contract:0", 7)])
        recordings = app.save(probe, index=index)
        dialect = app.recorder.dialect  # type: ignore[attr-defined]
        with app.recorder.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
            chained = dialect.rows(c, "SELECT count(*) AS n FROM recovery_chain")[0]["n"]
            watcher = [r["clock"] for r in dialect.rows(c, "SELECT clock FROM recovery_watcher")]
        cache = app.repository.cache
        cached = cache is not None and _cached(cache, probe.id)
        app.forget_cached()
        return Written(ids=[r.notification.id for r in recordings], last_id=app.recorder.max_notification_id() or 0,
                       chained=chained, tracked=app.recorder.max_tracking_id("kafka:contract:0"), watcher=watcher,
                       cached=cached, forgotten=cache is not None and not _cached(cache, probe.id))
    finally:
        app.close()


def _cached(cache: application.Cache[UUID, object], key: UUID) -> bool:
    try:
        cache.get(key)
    except KeyError:
        return False
    return True


def check_written(done: Written) -> None:
    assert done.ids == [1, 2] and done.last_id == 2, "notification ids: _insert_events / _fetch_ids_after_insert_events"
    assert done.chained == 2, "hash chain not written: our _insert_events override was not called"
    assert done.watcher == [42], "write-side index not written: `index=` no longer reaches _insert_events"
    assert done.tracked == 7, "position not recorded: _insert_tracking"
    assert done.cached, "saved aggregate not cached: Application._record"
    assert done.forgotten, "LRUCache internals: RecoveryApplication.forget_cached"


@pytest.mark.unit
def test_our_sqlite_override_is_called_by_the_public_save(sqlite_url: str) -> None:
    check_written(write_through_the_public_path(sqlite_url))


@pytest.mark.postgres
def test_our_postgres_overrides_are_called_by_the_public_save(postgres_url: str) -> None:
    check_written(write_through_the_public_path(postgres_url))


@pytest.mark.unit
def test_tracking_written_and_read_in_our_own_transaction(sqlite_url: str) -> None:
    app = RecoveryApplication(sqlite_url)
    try:
        recorder = app.recorder
        with recorder.datastore.transaction(commit=True) as c:  # type: ignore[attr-defined]
            recorder._insert_tracking(c, Tracking("contract", 5))  # type: ignore[attr-defined]
            assert recorder._max_tracking_id("contract", c) == 5  # type: ignore[attr-defined]
        assert recorder.max_tracking_id("contract") == 5
        assert recorder.max_notification_id() in (None, 0)
    finally:
        app.close()
