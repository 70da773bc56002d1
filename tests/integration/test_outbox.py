"""The outbox relay's bookkeeping: its position moves only past what the broker acknowledged."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaError, KafkaTimeoutError
from support.feed import Feed

from app.platform import Platform
from consumers.outbox import RELAY, OutboxRelay
from consumers.settings import KafkaSettings


class _Sent:
    def __init__(self, error: KafkaError | None):
        self.error = error

    def get(self, timeout: float | None = None) -> None:
        if self.error:
            raise self.error


class _Producer:
    """Stands in for KafkaProducer: records what it was given; its sends fail when told to."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.error: KafkaError | None = None

    def send(self, topic: str, value: bytes, key: bytes | None = None, headers: list | None = None) -> _Sent:
        self.sent.append((topic, key))
        return _Sent(self.error)

    def flush(self) -> None:
        pass


def test_a_failed_send_keeps_the_position_and_everything_is_sent_again(platform):
    f = Feed()
    f.received("C1", "2026-11-02T09:00:00+08:00")
    f.resolved("C1", "2026-11-02T10:00:00+08:00")
    platform.ingest_lines(f.lines)
    producer = _Producer()
    relay = OutboxRelay(platform.app, producer, KafkaSettings())
    producer.error = KafkaTimeoutError("broker gone")
    assert relay.publish_pending() == 0
    assert platform.app.recorder.max_tracking_id(RELAY) is None
    producer.error = None
    assert relay.publish_pending() == 3  # notifications: the policy version is not published
    assert [key for _, key in producer.sent] == [b"C1", b"C1"] * 2
    assert platform.app.recorder.max_tracking_id(RELAY) == 3
    assert relay.publish_pending() == 0


def test_the_relay_publishes_what_this_process_just_saved_without_reading_it_back(platform):
    f = Feed()
    f.received("C1", "2026-11-02T09:00:00+08:00")
    platform.service.ingest(f.lines)
    recorded = platform.service.take_recorded()
    producer = _Producer()
    relay = OutboxRelay(platform.app, producer, KafkaSettings())
    platform.app.recorder.select_notifications = None  # reading the log would fail
    assert relay.publish_pending(recorded=recorded) == 1
    assert platform.app.recorder.max_tracking_id(RELAY) == 1


def test_keyed_messages_go_where_kafkas_default_partitioner_puts_them():
    """Consumers find a complaint's events on the partition murmur2 of its id picks (Kafka's Java
    client, kafka-python): the cached partitioner must agree with kafka-python's own."""
    from kafka.partitioner.default import DefaultPartitioner

    from consumers.partitioning import CachedKeyPartitioner

    class Cluster:
        def topics(self):
            return {"t"}

        def partitions_for_topic(self, topic):
            return {3, 0, 2, 1, 5, 4}

        def available_partitions_for_topic(self, topic):
            return {0, 1, 2, 3, 4, 5}

    ours, theirs = CachedKeyPartitioner(), DefaultPartitioner()
    for n in range(500):
        key = f"C-2026-{n:06d}".encode()
        for _ in range(2):  # computed, then cached
            assert ours.partition("t", key, key, b"", b"", Cluster()) == \
                theirs.partition("t", key, key, b"", b"", Cluster())
    assert ours.partition("t", None, None, b"", b"", Cluster()) in range(6)


def test_where_serve_relays_is_a_process_of_its_own_on_postgresql_and_inline_on_sqlite(platform, monkeypatch):
    from app.relay import relay_mode
    from app.settings import Settings

    monkeypatch.delenv("RECOVERY_RELAY", raising=False)
    platform.settings = Settings.from_env()
    assert relay_mode(platform) == ("process" if platform.app.dialect.postgres else "inline")
    monkeypatch.setenv("RECOVERY_RELAY", "sideways")
    with pytest.raises(ValueError, match="RECOVERY_RELAY must be one of process, inline, off"):
        Settings.from_env()
    monkeypatch.setenv("RECOVERY_RELAY", "process")
    platform.settings = Settings.from_env()
    if platform.app.dialect.postgres:
        assert relay_mode(platform) == "process"
    else:
        with pytest.raises(ValueError, match="needs PostgreSQL"):
            relay_mode(platform)


@pytest.mark.postgres
def test_a_relay_whose_lock_went_with_its_session_stops_until_it_holds_the_lock_again(postgres_url, policy):
    """The server drops an advisory lock with the session that held it: the relay that held it must
    notice, or two would publish (and move the position) at once."""
    import time

    import psycopg

    from app.relay import RelayLeadership

    holding = ("FROM pg_locks WHERE locktype = 'advisory' AND objid = %s"
               " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")

    def lock_holders(admin: psycopg.Connection) -> int:
        return admin.execute(f"SELECT count(*) {holding}", (RelayLeadership.KEY,)).fetchone()[0]

    def released(admin: psycopg.Connection) -> None:
        deadline = time.monotonic() + 10
        while lock_holders(admin) and time.monotonic() < deadline:
            time.sleep(0.05)

    with Platform(postgres_url, policy) as p, psycopg.connect(postgres_url, autocommit=True) as admin:
        first, second = RelayLeadership(p, every_seconds=0), RelayLeadership(p, every_seconds=0)
        assert first.claim() and not second.claim()
        admin.execute(f"SELECT pg_terminate_backend(pid) {holding}", (RelayLeadership.KEY,))
        released(admin)
        assert second.claim()  # the lock went with the first relay's session
        assert not first.claim()  # and the first relay knows it
        second.release()
        released(admin)
        assert first.claim()
        first.release()
