"""Kafka ingest through `recovery serve` into PostgreSQL, projections and outbox relay included,
against a baseline measured in the same run on the same messages:
  (b) a bare kafka-python consumer that does nothing with them.

    .venv/bin/python bench/kafka_ingest.py [--events 100000] [--partitions 4] [--replicas 1,2]

The demo generator's mix (resends and refusals included) is produced to the test broker (tansu, in
memory, on a free loopback port; or RECOVERY_TEST_KAFKA), keyed by complaint id as operational
systems must. Then `recovery serve` runs as its own process (or several in one consumer group, one
per `--replicas` value) over a fresh database, and the clock runs from the first batch committed
to the moment the read model has applied every message (all of them accepted, refused or found to
be resends). The outbox relay (serve's child process) publishes meanwhile; its lag at that moment
is reported. Peak memory is each serve process's own, and its relay's. Prints a table and writes
bench/results/kafka_ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, demo_file, fresh_database, in_child, peak_mb, save, table  # noqa: E402

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def bare_consume(bootstrap: str, topic: str, total: int) -> dict:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4().hex[:6]}",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=6000, heartbeat_interval_ms=500, max_poll_records=1000)
    seen, started = 0, None
    while seen < total:
        for records in consumer.poll(200).values():
            started = started or time.perf_counter()
            seen += len(records)
    elapsed = time.perf_counter() - started
    consumer.close()
    return {"events": seen, "seconds": elapsed, "peak_mb": peak_mb()}


def _applied(conn: psycopg.Connection) -> int:
    try:
        return int(conn.execute("SELECT COALESCE(SUM(n), 0) FROM kpi_ingest").fetchone()[0])
    except psycopg.errors.UndefinedTable:
        return 0


def _vm_hwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _children(pid: int) -> list[int]:
    """The processes `pid` started (serve's outbox relay)."""
    return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]


def serve_run(bootstrap: str, topic: str, total: int, url: str, replicas: int, batch: int,
              timeout: float) -> dict:
    env = {**os.environ, "RECOVERY_DATABASE_URL": url, "RECOVERY_KAFKA_BOOTSTRAP": bootstrap,
           "RECOVERY_KAFKA_TOPIC": topic, "RECOVERY_KAFKA_GROUP": f"bench-{uuid.uuid4().hex[:6]}",
           "RECOVERY_KAFKA_OUTBOUND_TOPIC": f"{topic}.out", "RECOVERY_KAFKA_DLQ_TOPIC": f"{topic}.dlq",
           "RECOVERY_BATCH_SIZE": str(batch), "RECOVERY_WATCHER": "wall", "RECOVERY_METRICS_PORT": "off"}
    recovery = Path(sys.executable).with_name("recovery")
    logs = tempfile.TemporaryDirectory()
    procs = [subprocess.Popen([str(recovery), "serve"], env=env, cwd=logs.name, stdout=subprocess.DEVNULL,
                              stderr=open(Path(logs.name) / f"serve-{i}.log", "w"))  # noqa: SIM115 - the child writes it
             for i in range(replicas)]
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + timeout
            started = first = None
            done = 0
            while done < total:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    tail = (Path(logs.name) / "serve-0.log").read_text()[-2000:]
                    raise SystemExit(f"serve did not apply {total} messages (at {done}):\n{tail}")
                done = _applied(conn)
                if done and started is None:
                    started, first = time.perf_counter(), done
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            events = int(conn.execute("SELECT MAX(notification_id) FROM recovery_events").fetchone()[0])
            relayed = conn.execute("SELECT MAX(notification_id) AS n FROM notification_tracking"
                                   " WHERE application_name = 'outbox'").fetchone()[0] or 0
        peaks = [_vm_hwm(p.pid) for p in procs]
        relay_peaks = [_vm_hwm(child) for p in procs for child in _children(p.pid)]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        logs.cleanup()
    # The first poll already found `first` applied: they are not in the timed span.
    return {"events": total - first, "seconds": elapsed, "recorded_events": events,
            "outbox_lag_events": events - relayed, "peak_mb": max(peaks),
            "relay_peak_mb": max(relay_peaks, default=None), "replicas": replicas}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default="100000", help="comma-separated message counts")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--replicas", default="1,2", help="comma-separated numbers of serve processes")
    parser.add_argument("--batch", type=int, default=1000, help="RECOVERY_BATCH_SIZE (max records per poll)")
    parser.add_argument("--timeout", type=float, default=7200)
    parser.add_argument("--worker", nargs=3, metavar=("BOOTSTRAP", "TOPIC", "EVENTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(bare_consume(args.worker[0], args.worker[1], int(args.worker[2]))))
        return 0

    from kafka import KafkaProducer
    from support.kafka_broker import broker, create_topics

    rows, results = [], []
    with tempfile.TemporaryDirectory() as tmp, broker() as bootstrap:
        for events in (int(x) for x in args.events.split(",")):
            # The quarter starts now: the wall-clock watcher (production's) then finds deadlines
            # due only as they would fall in live traffic, not every complaint of a past quarter.
            path = demo_file(events, Path(tmp), start=datetime.now(UTC).replace(second=0, microsecond=0))
            topic = f"bench-{uuid.uuid4().hex[:6]}"
            create_topics(bootstrap, {topic: args.partitions, f"{topic}.out": args.partitions,
                                      f"{topic}.dlq": 1})
            producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=256 * 1024)
            with path.open("rb") as f:
                for line in f:
                    try:
                        env = json.loads(line)
                        key = env.get("complaint_id") or env.get("case_id")
                    except ValueError:
                        key = None
                    producer.send(topic, value=line.rstrip(b"\n"), key=key.encode() if isinstance(key, str) else None)
            producer.flush()
            producer.close()
            bare = in_child(Path(__file__).resolve(), bootstrap, topic, str(events))  # its own peak memory
            base_rate = bare["events"] / bare["seconds"]
            row = {"events": events, "partitions": args.partitions,
                   "bare_consume": {**bare, "per_s": round(base_rate)}, "serve": []}
            rows.append([f"{events:,} bare kafka-python consume (b)", round(base_rate), "1.000", "", bare["peak_mb"]])
            for replicas in (int(x) for x in args.replicas.split(",")):
                with fresh_database("kafka") as url:
                    run = serve_run(bootstrap, topic, events, url, replicas, args.batch, args.timeout)
                rate = run["events"] / run["seconds"]
                row["serve"].append({**run, "per_s": round(rate), "fraction_of_b": round(rate / base_rate, 4)})
                rows.append([f"{events:,} recovery serve x{replicas} (PG, projections, outbox)", round(rate),
                             f"{rate / base_rate:.4f}", run["outbox_lag_events"],
                             f"{run['peak_mb']} + relay {run['relay_peak_mb']}"])
            results.append(row)
    print(table(rows, ["run", "events/s", "of (b)", "outbox lag", "peak MB"]))
    print("saved", save("kafka_ingest", {"cores": os.cpu_count(), "batch": args.batch, "target_per_s": 5000,
                                         "runs": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
