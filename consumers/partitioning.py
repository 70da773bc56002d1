"""Where Kafka's default partitioner puts a key: murmur2, as Kafka's Java client and kafka-python
do. kafka-python computes it in Python for every message; every event of a complaint has the same
key, so the slot is cached."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from kafka.partitioner.default import DefaultPartitioner, murmur2


@lru_cache(maxsize=100_000)
def key_slot(key: bytes, partitions: int) -> int:
    """The index, among the topic's partitions sorted, of the one a keyed message goes to."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class CachedKeyPartitioner(DefaultPartitioner):
    """kafka-python's default partitioner, with each key's hash computed once."""

    def partition(self, topic: str, key: Any, serialized_key: bytes | None, value: Any,
                  serialized_value: Any, cluster: Any) -> int:
        partitions = cluster.partitions_for_topic(topic) if serialized_key is not None else None
        if not partitions:  # no key (random partition), or a topic not known yet (raises)
            return super().partition(topic, key, serialized_key, value, serialized_value, cluster)
        return sorted(partitions)[key_slot(serialized_key, len(partitions))]
