"""`recovery serve`: the long-running service. One loop: a Kafka batch in (one transaction), the
wall-clock deadline watcher ticked; beside the next batch, the read model caught up and the outbox
relayed. SIGTERM/SIGINT finish the batch in hand and stop; SIGKILL loses nothing, because every
batch commits whole with its Kafka positions."""

from __future__ import annotations

import logging
import signal
import time
from functools import partial
from typing import Any

from kafka import KafkaProducer

from consumers.inbound import InboundConsumer
from consumers.lag import ConsumerLagCollector
from consumers.outbox import OutboxRelay
from consumers.settings import KafkaSettings
from infra.http import MetricsServer
from infra.platform import Platform

log = logging.getLogger("recovery.serve")


class _RelayLeadership:
    """Only one relay publishes at a time: a PostgreSQL advisory lock held for the process's life
    (SQLite stores have one process)."""

    KEY = 7_270_127

    def __init__(self, platform: Platform):
        self.platform, self.conn, self.held = platform, None, not platform.app.dialect.postgres

    def acquire(self) -> bool:
        if self.held:
            return True
        import psycopg

        env = self.platform.app.env
        if self.conn is None:
            self.conn = psycopg.connect(
                dbname=env.get("POSTGRES_DBNAME"), host=env.get("POSTGRES_HOST"), port=env.get("POSTGRES_PORT"),
                user=env.get("POSTGRES_USER"), password=env.get("POSTGRES_PASSWORD") or None, autocommit=True)
        self.held = bool(self.conn.execute("SELECT pg_try_advisory_lock(%s)", (self.KEY,)).fetchone()[0])
        return self.held

    def release(self) -> None:
        if self.conn is not None:
            self.conn.close()


def serve(settings: KafkaSettings | None = None, tick_seconds: float = 5.0) -> int:
    settings = settings or KafkaSettings.from_env()
    platform = Platform(watcher=settings.watcher)
    stopping = {"flag": False}

    def stop(signum: int, _frame: Any) -> None:
        log.info('{"event": "stopping", "signal": %d}', signum)
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer = InboundConsumer(platform.app, platform.service, settings)
    producer = KafkaProducer(**settings.producer_config())
    relay = OutboxRelay(platform.app, producer, settings)
    leadership = _RelayLeadership(platform)
    lag = ConsumerLagCollector()
    metrics = _start_metrics(platform, lag)
    last_tick, last_claim = 0.0, 0.0
    log.info('{"event": "started", "topic": "%s", "group": "%s"}', settings.topic, settings.group)

    def follow(recorded: list[Any]) -> None:
        """After a batch: the read model caught up, the outbox relayed (by the leader)."""
        platform.catch_up(recorded)
        if leadership.held:
            relay.publish_pending(recorded=recorded)
            while relay.publish_pending() and not stopping["flag"]:
                pass

    try:
        with platform.beside() as beside:  # a batch's follow-up runs while the next is ingested
            while not stopping["flag"]:
                counts = consumer.step()
                lag.update(consumer.consumer)
                now = time.monotonic()
                if settings.watcher == "wall" and now - last_tick >= tick_seconds:
                    platform.service.tick()
                    last_tick = now
                if not leadership.held and now - last_claim >= tick_seconds:
                    leadership.acquire()
                    last_claim = now
                beside(partial(follow, platform.service.take_recorded()))
                if not counts:
                    time.sleep(0.01)
    finally:
        if metrics:
            metrics.stop()
        consumer.close()
        producer.close()
        leadership.release()
        platform.close()
    log.info('{"event": "stopped"}')
    return 0


def _start_metrics(platform: Platform, lag: ConsumerLagCollector) -> MetricsServer | None:
    """/metrics, /healthz and /readyz on RECOVERY_METRICS_PORT (default 9477; `off` for none)."""
    import os

    port = os.environ.get("RECOVERY_METRICS_PORT") or "9477"
    if port.lower() == "off":
        return None
    if not port.isdigit():
        raise ValueError(f"RECOVERY_METRICS_PORT must be a port number or 'off', got {port!r}")
    server = MetricsServer(platform, host=os.environ.get("RECOVERY_METRICS_HOST") or "0.0.0.0", port=int(port))
    server.registry.register(lag)
    return server.start()
