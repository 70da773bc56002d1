"""`recovery dlq replay`: send dead letters back to the inbound topic (e.g. after a fix upstream or a
policy change).

It replays what reached the dead-letter topic before it started and no more (by message
timestamp): a message refused again comes back to the topic and waits for the next replay rather
than cycling forever. The replay
group's committed offsets remember what was replayed; replaying twice is harmless anyway, as ingest
is idempotent by event_id.
"""

from __future__ import annotations

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from consumers.settings import KafkaSettings
from domain import clock


def replay_dead_letters(settings: KafkaSettings, group: str | None = None, idle_s: float = 2.0) -> int:
    started_ms = int(clock.now().timestamp() * 1000)
    consumer = KafkaConsumer(**{**settings.consumer_config(), "group_id": group or f"{settings.group}.dlq-replay"})
    producer = KafkaProducer(**settings.producer_config())
    sent = 0
    try:
        partitions = [TopicPartition(settings.dlq_topic, p)
                      for p in sorted(consumer.partitions_for_topic(settings.dlq_topic) or ())]
        consumer.assign(partitions)
        done: set[TopicPartition] = set()
        upto: dict[TopicPartition, int] = {}
        idle_since: float | None = None
        while len(done) < len(partitions):
            polled = consumer.poll(timeout_ms=500)
            if not polled:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= idle_s:
                    break  # caught up with the topic
                continue
            idle_since = None
            for tp, records in polled.items():
                for m in records:
                    if tp in done or m.timestamp > started_ms:
                        done.add(tp)  # written after the replay began: next replay's business
                        break
                    headers = [(k, v) for k, v in (m.headers or []) if k not in ("reason", "message")]
                    producer.send(settings.topic, key=m.key, value=m.value,
                                  headers=headers + [("replayed_from", f"{m.topic}/{m.partition}/{m.offset}".encode())])
                    upto[tp] = m.offset + 1
                    sent += 1
            producer.flush()
            if upto:
                consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in upto.items()})
    finally:
        producer.close()
        consumer.close(autocommit=False)
    return sent
