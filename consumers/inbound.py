"""Kafka in: batches from the inbound topic, applied exactly once.

Each partition's position is a tracking record written in the same transaction as the events the
batch produced. On every assignment the consumer seeks to the stored position: Kafka's committed
offsets are only informational (for lag dashboards), never trusted for correctness.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from consumers.partitioning import key_slot
from consumers.settings import KafkaSettings
from infra.store import RecoveryApplication
from service.ingest import IngestService

log = logging.getLogger("recovery.consumer")


def position_name(topic: str, partition: int) -> str:
    return f"kafka:{topic}:{partition}"


def _replayed(message: Any) -> bool:
    """Sent again by `recovery dlq replay`: evaluated again even though the same bytes were refused."""
    return any(k == "replayed_from" for k, _ in (message.headers or []))


class _SeekToStoredPositions(ConsumerRebalanceListener):
    def __init__(self, consumer: InboundConsumer):
        self.owner = consumer

    def on_partitions_revoked(self, revoked: Any) -> None:
        # Batches commit before the next poll, so nothing in hand belongs to a revoked partition.
        # Cached complaints do: another process may change them while the partition is away.
        self.owner.app.forget_cached()

    def on_partitions_assigned(self, assigned: Any) -> None:
        # Cached aggregates skip the fast-forward query (one writer per complaint), so a partition
        # that comes back must not find the complaints as they were before it left.
        self.owner.app.forget_cached()
        self.owner.seek_to_stored(assigned)


class InboundConsumer:
    def __init__(self, app: RecoveryApplication, service: IngestService, settings: KafkaSettings):
        self.app, self.service, self.settings = app, service, settings
        self.consumer = KafkaConsumer(**settings.consumer_config())
        self.consumer.subscribe([settings.topic], listener=_SeekToStoredPositions(self))
        self.batches = 0
        service.owns = self.owns

    def owns(self, complaint_id: str) -> bool:
        """Whether the complaint's partition is ours: messages are keyed by complaint_id (case events
        by case_id: only complaints have deadlines to own) and placed by the default partitioner
        (murmur2, as Kafka's Java client and kafka-python do)."""
        partitions = sorted(self.consumer.partitions_for_topic(self.settings.topic) or ())
        if not partitions:
            return False
        mine = {tp.partition for tp in self.consumer.assignment() if tp.topic == self.settings.topic}
        return partitions[key_slot(complaint_id.encode(), len(partitions))] in mine

    def seek_to_stored(self, partitions: Any) -> None:
        for tp in partitions:
            stored = self.app.recorder.max_tracking_id(position_name(tp.topic, tp.partition))
            if stored is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, stored + 1)

    def step(self) -> Counter[str]:
        """Poll one batch and apply it in one transaction; returns the outcome counts."""
        started = time.perf_counter()
        polled = self.consumer.poll(timeout_ms=self.settings.linger_ms, max_records=self.settings.batch_size)
        messages = [m for records in polled.values() for m in records]
        if not messages:
            return Counter()
        last: dict[tuple[str, int], int] = {}
        for m in messages:
            last[(m.topic, m.partition)] = max(m.offset, last.get((m.topic, m.partition), -1))
        positions = [Tracking(position_name(t, p), o) for (t, p), o in last.items()]
        try:
            outcomes = self.service.ingest(
                [m.value or b"" for m in messages], positions=positions,  # a tombstone is a blank line
                sources=[f"{m.topic}/{m.partition}/{m.offset}" for m in messages],
                retry=[_replayed(m) for m in messages])
        except IntegrityError as error:
            # Another consumer applied these positions (a rebalance overtook us): drop what we
            # hold and carry on from the store's positions.
            self.app.forget_cached()
            self.seek_to_stored(self.consumer.assignment())
            log.warning(json.dumps({"event": "batch_superseded", "messages": len(messages),
                                    "error": str(error).splitlines()[0][:300]}))
            return Counter()
        counts = Counter(o.result for o in outcomes)
        self.batches += 1
        log.info(json.dumps({
            "event": "batch", "batch": self.batches, "messages": len(messages), **counts,
            "positions": {f"{t}/{p}": o for (t, p), o in last.items()},
            "ms": round((time.perf_counter() - started) * 1000, 1)}))
        try:  # informational only: lag dashboards read the group's committed offsets
            self.consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o + 1, "", -1) for (t, p), o in last.items()})
        except Exception as e:  # noqa: BLE001 - never let an informational commit stop ingest
            log.debug("offset commit failed: %s", e)
        return counts

    def recover(self) -> None:
        """After a failed batch (the store or the broker away): drop what is cached and start again
        from the stored positions (raises while they cannot be read)."""
        self.app.forget_cached()
        self.seek_to_stored(self.consumer.assignment())

    def close(self) -> None:
        self.consumer.close(autocommit=False)
