"""`recovery rebuild` speed: the KPI read model dropped and rebuilt from the log, in events per
second, against reading the same log and decoding every event without applying it (the floor the
rebuild cannot beat) measured in the same run.

    .venv/bin/python bench/rebuild.py [--events 100000] [--store postgres|sqlite]

Prints a table and writes bench/results/rebuild.json. Peak memory per step is its own process's.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, demo_file, fresh_database, in_child, peak_mb, save, table  # noqa: E402

sys.path.insert(0, str(ROOT))


def worker(kind: str, url: str, path: str) -> None:
    from app.platform import Platform

    with Platform(url) as platform:
        if kind == "load":
            with open(path, "rb") as f:
                platform.ingest_lines(f, batch_size=1000, on_batch=lambda outcomes: None)
            result = {"events": platform.app.recorder.max_notification_id()}
        elif kind == "read":
            started, n, start = time.perf_counter(), 0, 1
            while notifications := platform.app.recorder.select_notifications(start=start, limit=2000):
                for note in notifications:
                    platform.app.mapper.to_domain_event(note)
                n += len(notifications)
                start = notifications[-1].id + 1
            result = {"events": n, "seconds": time.perf_counter() - started}
        else:
            started = time.perf_counter()
            n = platform.rebuild()
            result = {"events": n, "seconds": time.perf_counter() - started}
    if "seconds" in result:
        result["per_s"] = round(result["events"] / result["seconds"])
    result["peak_mb"] = peak_mb()
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "URL", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return 0
    folder = Path(tempfile.mkdtemp(prefix="bench-rebuild-"))
    path = demo_file(args.events, folder)
    script = Path(__file__).resolve()

    def run(url: str) -> dict:
        loaded = in_child(script, "load", url, str(path))
        read = in_child(script, "read", url, str(path))
        rebuilt = in_child(script, "rebuild", url, str(path))
        return {"recorded_events": loaded["events"], "read_and_decode": read, "rebuild": rebuilt,
                "fraction_of_read": round(rebuilt["per_s"] / read["per_s"], 3), "target_per_s": 20_000}

    if args.store == "postgres":
        with fresh_database("rebuild") as url:
            result = run(url)
    else:
        result = run(f"sqlite:///{folder / 'rebuild.db'}")
    read, rebuilt = result["read_and_decode"], result["rebuild"]
    print(table([["read and decode the log (floor)", read["per_s"], "1.000", read["peak_mb"]],
                 ["recovery rebuild", rebuilt["per_s"], f"{result['fraction_of_read']:.3f}", rebuilt["peak_mb"]]],
                [f"{args.store}, {result['recorded_events']:,} recorded events", "events/s", "of floor", "peak MB"]))
    save("rebuild", {"store": args.store, **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
