"""`recovery serve`: the long-running service. One loop: a Kafka batch in (one transaction), the
wall-clock deadline watcher ticked; beside the next batch, the read model caught up. The outbox
relay runs as a process of its own beside serve on PostgreSQL, or in the follow-up thread
(app/relay.py; RECOVERY_RELAY). SIGTERM/SIGINT finish the batch in hand and stop; SIGKILL loses
nothing, because every batch commits whole with its Kafka positions."""

from __future__ import annotations

import json
import logging
import signal
import time
from functools import partial
from typing import Any

from kafka import KafkaProducer

from app.http import MetricsServer
from app.platform import Platform
from app.relay import RelayLeadership, RelayProcess, relay_mode
from app.settings import Settings
from consumers.inbound import InboundConsumer
from consumers.lag import ConsumerLagCollector, OutboxLagCollector
from consumers.outbox import OutboxRelay
from consumers.settings import KafkaSettings

log = logging.getLogger("recovery.serve")


def serve(app_settings: Settings | None = None, tick_seconds: float = 5.0) -> int:
    app_settings = app_settings or Settings.from_env()
    settings = app_settings.kafka()
    platform = Platform(watcher=settings.watcher, settings=app_settings)
    platform.record_first_policy()
    mode = relay_mode(platform)
    stopping = {"flag": False}

    def stop(signum: int, _frame: Any) -> None:
        log.info(json.dumps({"event": "stopping", "signal": signum}))
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    consumer = InboundConsumer(platform.app, platform.service, settings)
    child = RelayProcess() if mode == "process" else None
    inline = _InlineRelay(platform, settings) if mode == "inline" else None
    lag = ConsumerLagCollector()
    metrics = _start_metrics(platform, lag)
    last_tick = 0.0
    failures = 0
    log.info(json.dumps({"event": "started", "topic": settings.topic, "group": settings.group, "relay": mode}))

    def follow(recorded: list[Any]) -> None:
        """After a batch: the read model caught up (and, inline, the outbox relayed)."""
        platform.catch_up(recorded)
        if inline:
            inline.publish(recorded, stopping)

    try:
        with platform.beside() as beside:  # a batch's follow-up runs while the next is ingested
            while not stopping["flag"]:
                if child:
                    child.keep_running()
                try:
                    if failures:
                        consumer.recover()  # before polling again: a failed batch is read again, never skipped
                    platform.refresh_policy()  # a version adopted while serve runs applies from its next batch
                    counts = consumer.step()
                except Exception as error:  # noqa: BLE001 - no line does this (ingest isolates them): an outage
                    failures += 1
                    pause = min(30.0, 0.5 * 2 ** min(failures, 6))
                    log.error(json.dumps({"event": "batch_failed", "error": f"{type(error).__name__}: {error}"[:500],
                                          "retry_in_seconds": pause}))
                    time.sleep(pause)
                    continue
                failures = 0
                lag.update(consumer.consumer)
                now = time.monotonic()
                if settings.watcher == "wall" and now - last_tick >= tick_seconds:
                    platform.service.tick()
                    last_tick = now
                beside(partial(follow, platform.service.take_recorded()))
                if not counts:
                    time.sleep(0.01)
    finally:
        if metrics:
            metrics.stop()
        consumer.close()
        if child:
            child.stop()
        if inline:
            inline.close()
        platform.close()
    log.info(json.dumps({"event": "stopped"}))
    return 0


class _InlineRelay:
    """The outbox relayed in serve's own follow-up thread (RECOVERY_RELAY=inline; SQLite's default),
    from what each batch recorded, by whichever serve holds the relay's lock."""

    def __init__(self, platform: Platform, settings: KafkaSettings):
        self.producer = KafkaProducer(**settings.producer_config())
        self.relay = OutboxRelay(platform.app, self.producer, settings)
        self.leadership = RelayLeadership(platform)

    def publish(self, recorded: list[Any], stopping: dict[str, bool]) -> None:
        if self.leadership.claim():
            self.relay.publish_pending(recorded=recorded)
            while self.relay.publish_pending() and not stopping["flag"]:
                pass

    def close(self) -> None:
        self.producer.close()
        self.leadership.release()


def _start_metrics(platform: Platform, lag: ConsumerLagCollector) -> MetricsServer | None:
    """/metrics, /healthz and /readyz on RECOVERY_METRICS_PORT (default 9477; `off` for none)."""
    port = platform.settings.metrics_port
    if port is None:
        return None
    server = MetricsServer(platform, host=platform.settings.metrics_host, port=port)
    server.registry.register(lag)
    server.registry.register(OutboxLagCollector(platform.app))
    return server.start()
