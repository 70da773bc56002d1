"""`recovery dlq replay`: send dead letters back to the inbound topic (e.g. after a fix upstream or a
policy change). The replay group's committed offsets remember what was replayed; replaying twice
is harmless anyway, as ingest is idempotent by event_id."""

from __future__ import annotations

from kafka import KafkaConsumer, KafkaProducer

from consumers.settings import KafkaSettings


def replay_dead_letters(settings: KafkaSettings, group: str | None = None, idle_ms: int = 3000) -> int:
    consumer = KafkaConsumer(settings.dlq_topic, **{
        **settings.consumer_config(), "group_id": group or f"{settings.group}.dlq-replay"})
    producer = KafkaProducer(**settings.producer_config())
    sent = 0
    try:
        while True:
            polled = consumer.poll(timeout_ms=idle_ms)
            if not polled:
                break
            for records in polled.values():
                for m in records:
                    headers = [(k, v) for k, v in (m.headers or []) if k not in ("reason", "message")]
                    producer.send(settings.topic, key=m.key, value=m.value,
                                  headers=headers + [("replayed_from", f"{m.topic}/{m.partition}/{m.offset}".encode())])
                    sent += 1
            producer.flush()
            consumer.commit()
    finally:
        producer.close()
        consumer.close(autocommit=False)
    return sent
