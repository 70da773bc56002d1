"""File ingest into PostgreSQL with projections, against baselines measured in the same run on the
same envelopes:
  (a) COPY of the lines into a bare table (what the database takes at best);
  (c) eventsourcing's plain save, one transaction per event (what the library does unbatched).

    .venv/bin/python bench/file_ingest.py [--events 100000,1000000] [--plain-sample 20000]

Each measurement runs in its own process and reports its peak memory (ru_maxrss). Prints a table
and writes bench/results/file_ingest.json. Figures are ratios to the baselines: the machine is
shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse
from uuid import NAMESPACE_URL, uuid5

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, demo_file, fresh_database, in_child, peak_mb, save, table  # noqa: E402

sys.path.insert(0, str(ROOT))


def copy_baseline(url: str, path: Path) -> dict:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE raw_envelopes (line TEXT NOT NULL)")
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY raw_envelopes (line) FROM STDIN") as copy, path.open() as f:
            n = 0
            for line in f:
                copy.write_row((line.rstrip("\n"),))
                n += 1
        elapsed = time.perf_counter() - started
    return {"events": n, "seconds": elapsed}


def plain_baseline(url: str, path: Path, sample: int) -> dict:
    """The same envelopes as events of a minimal aggregate, each saved in its own transaction."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Record(Aggregate):
        @event("Received")
        def __init__(self, complaint_id: str, envelope: dict) -> None:
            self.complaint_id = complaint_id

        @event("Happened")
        def happened(self, envelope: dict) -> None:
            pass

        @staticmethod
        def create_id(complaint_id: str, envelope: dict) -> object:
            return uuid5(NAMESPACE_URL, complaint_id)

    p = urlparse(url)
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.postgres", "POSTGRES_DBNAME": p.path.lstrip("/"),
                           "POSTGRES_HOST": p.hostname, "POSTGRES_PORT": str(p.port or 5432),
                           "POSTGRES_USER": p.username or "postgres", "POSTGRES_PASSWORD": p.password or ""})
    seen: set[str] = set()
    n = 0
    started = time.perf_counter()
    with path.open() as f:
        for line in f:
            if n >= sample:
                break
            try:
                env = json.loads(line)
                complaint_id = env["complaint_id"]
            except (ValueError, KeyError, TypeError):
                continue
            if complaint_id in seen:
                record = app.repository.get(uuid5(NAMESPACE_URL, complaint_id))
                record.happened(env)
            else:
                record = Record(complaint_id, env)
                seen.add(complaint_id)
            app.save(record)
            n += 1
    elapsed = time.perf_counter() - started
    app.close()
    return {"events": n, "seconds": elapsed}


def ours(url: str, path: Path) -> dict:
    from app.platform import Platform

    platform = Platform(url)
    started = time.perf_counter()
    count = [0]
    with path.open("rb") as f:
        platform.ingest_lines(f, batch_size=1000, on_batch=lambda done: count.__setitem__(0, count[0] + len(done)))
    elapsed = time.perf_counter() - started
    recorded = platform.app.recorder.max_notification_id()
    platform.close()
    return {"events": count[0], "recorded": recorded, "seconds": elapsed}


def worker(kind: str, url: str, path: str, sample: int) -> None:
    run = {"copy": lambda: copy_baseline(url, Path(path)), "plain": lambda: plain_baseline(url, Path(path), sample),
           "ours": lambda: ours(url, Path(path))}[kind]
    result = run()
    result["per_s"] = round(result["events"] / result["seconds"])
    result["peak_mb"] = peak_mb()
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", default="100000", help="comma-separated sizes, e.g. 100000,1000000")
    parser.add_argument("--plain-sample", type=int, default=20_000,
                        help="events for the one-transaction-per-event baseline (it is slow)")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, sample=args.plain_sample)
        return 0
    folder = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    script = Path(__file__).resolve()
    results, rows = [], []
    for events in [int(n) for n in args.events.split(",")]:
        path = demo_file(events, folder)
        measured = {}
        for kind in ("copy", "plain", "ours"):
            with fresh_database(kind) as url:
                measured[kind] = in_child(script, kind, url, str(path), "--plain-sample", str(args.plain_sample))
            print(f"{events} {kind}: {measured[kind]}", file=sys.stderr)
        copy, plain, us = measured["copy"], measured["plain"], measured["ours"]
        result = {"events": events, "copy": copy, "plain_eventsourcing": plain, "recovery_ingest": us,
                  "fraction_of_copy": round(us["per_s"] / copy["per_s"], 3),
                  "multiple_of_plain": round(us["per_s"] / plain["per_s"], 2), "target_fraction_of_copy": 0.40}
        results.append(result)
        rows += [[f"{events:,}", "(a) COPY into a bare table", copy["per_s"], "1.000", "", copy["peak_mb"]],
                 [f"{events:,}", f"(c) eventsourcing, 1 txn/event ({plain['events']:,})", plain["per_s"],
                  f"{plain['per_s'] / copy['per_s']:.3f}", "1.00", plain["peak_mb"]],
                 [f"{events:,}", "recovery ingest + projections", us["per_s"], f"{result['fraction_of_copy']:.3f}",
                  f"{result['multiple_of_plain']:.2f}", us["peak_mb"]]]
    print(table(rows, ["events", "what (PostgreSQL)", "events/s", "of COPY", "x plain", "peak MB"]))
    save("file_ingest", {"results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
