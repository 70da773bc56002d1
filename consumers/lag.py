"""Serve's lags, for /metrics: the Kafka consumer's per partition (the serve loop takes a snapshot
after each batch, as the consumer is not thread-safe; the HTTP thread reports the latest one), and
the outbox relay's behind the event log (read from the store at each scrape, whichever process
relays)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from consumers.outbox import RELAY
from domain import clock
from infra.store import RecoveryApplication
from projections.metrics import lag_behind, lag_gauges


def consumer_lag(consumer: Any) -> dict[tuple[str, int], int]:
    """Messages between the next offset to apply and the partition's high-water mark, for every
    assigned partition whose high-water mark the consumer has seen."""
    lag = {}
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        try:
            position = consumer.position(tp, timeout_ms=200)
        except Exception:  # noqa: BLE001 - no position yet (being reset): report it next time
            continue
        if position is not None:
            lag[(tp.topic, tp.partition)] = max(0, highwater - position)
    return lag


class ConsumerLagCollector(Collector):
    def __init__(self) -> None:
        self.snapshot: dict[tuple[str, int], int] = {}
        self.taken: float | None = None

    def update(self, consumer: Any) -> None:
        self.snapshot = consumer_lag(consumer)
        self.taken = clock.now().timestamp()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("recovery_consumer_lag_messages",
                                   "Messages in the partition not applied yet", labels=["topic", "partition"])
        for (topic, partition), lag in sorted(self.snapshot.items()):
            family.add_metric([topic, str(partition)], lag)
        yield family
        if self.taken is not None:  # a loop that stopped turning stops refreshing the lag: alert on its age
            taken = GaugeMetricFamily("recovery_consumer_lag_snapshot_timestamp_seconds",
                                      "When the serve loop last measured consumer lag (Unix time)")
            taken.add_metric([], self.taken)
            yield taken


class OutboxLagCollector(Collector):
    def __init__(self, app: RecoveryApplication):
        self.app = app

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        lag = lag_behind(self.app, self.app.recorder.max_tracking_id(RELAY))
        yield from lag_gauges("recovery_outbox_lag", "the outbox relay has not published", lag)
