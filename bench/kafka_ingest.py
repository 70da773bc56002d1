"""Kafka ingest throughput into PostgreSQL, projections included, against a baseline measured in the
same run on the same messages: a bare kafka-python consumer that does nothing with them.

    .venv/bin/python bench/kafka_ingest.py [--complaints 6000] [--partitions 4] [--batch 500]

Uses the test broker (tansu, in memory) on a free loopback port, or RECOVERY_TEST_KAFKA, and a
fresh database on RECOVERY_TEST_POSTGRES_URL or 127.0.0.1:5432. Prints a table and writes
bench/results/kafka_ingest.json. Figures are ratios to the baseline: this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

import psycopg
from kafka import KafkaConsumer, KafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from kafka_broker import broker, create_topics  # noqa: E402

from consumers.inbound import InboundConsumer  # noqa: E402
from consumers.settings import KafkaSettings  # noqa: E402
from infra.demo import generate  # noqa: E402
from infra.platform import Platform  # noqa: E402


def baseline(bootstrap: str, topic: str, total: int) -> float:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4().hex[:6]}",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=6000, heartbeat_interval_ms=500, max_poll_records=500)
    seen, started = 0, None
    while seen < total:
        for records in consumer.poll(200).values():
            started = started or time.perf_counter()
            seen += len(records)
    elapsed = time.perf_counter() - started
    consumer.close()
    return total / elapsed


def ours(bootstrap: str, topic: str, total: int, url: str, batch: int) -> float:
    settings = KafkaSettings(bootstrap=bootstrap, topic=topic, group=f"bench-{uuid.uuid4().hex[:6]}",
                             batch_size=batch, linger_ms=100, watcher="event")
    platform = Platform(url, watcher="event")
    consumer = InboundConsumer(platform.app, platform.service, settings)
    done, started = 0, None
    try:
        while done < total:
            counts = consumer.step()
            if counts:
                started = started or time.perf_counter()
                done += sum(counts.values())
                platform.catch_up()
        elapsed = time.perf_counter() - started
    finally:
        consumer.close()
        platform.close()
    return total / elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--complaints", type=int, default=6000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    server = os.environ.get("RECOVERY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    db = f"recovery_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    url = server.rsplit("/", 1)[0] + f"/{db}"
    lines = generate(seed=2026, complaints=args.complaints)
    try:
        with broker() as bootstrap:
            topic = f"bench-{uuid.uuid4().hex[:6]}"
            create_topics(bootstrap, {topic: args.partitions})
            producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
            for line in lines:
                producer.send(topic, value=line.encode())
            producer.flush()
            bare = baseline(bootstrap, topic, len(lines))
            rate = ours(bootstrap, topic, len(lines), url, args.batch)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    result = {"messages": len(lines), "partitions": args.partitions, "batch": args.batch,
              "baseline_consume_only_per_s": round(bare), "recovery_ingest_per_s": round(rate),
              "fraction_of_baseline": round(rate / bare, 3), "target_per_s": 3000, "cores": os.cpu_count()}
    print(f"{'':32}{'events/s':>10}{'vs bare consume':>18}")
    print(f"{'bare kafka-python consume':32}{bare:>10.0f}{1:>18.3f}")
    print(f"{'recovery ingest (PG, projections)':32}{rate:>10.0f}{rate / bare:>18.3f}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "kafka_ingest.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
