"""What one /metrics scrape and one `recovery report` (whole history, by region) cost with few and
with many complaints in the store: both read only pre-aggregated tables, so the ratio large / small
should stay near 1 however large the store.

    .venv/bin/python bench/scrape_cost.py [--sizes 1000,10000,100000] [--store sqlite|postgres]
                                          [--scrapes 50]

Every store holds the same synthetic quarter (app.demo.generate), only with more complaints in it;
the scrape is timed through the real HTTP server at the same injected moment (the quarter's last
month is `current`). Prints a table and writes bench/results/scrape_cost.json. Figures are ratios
to the smallest store measured in the same run: this machine is shared and noisy. What a scrape
reads is bounded by the organisation (regions, units, tiers, days of two months), not by the
complaints: a small store has not met every unit on every day yet, so it exposes fewer series;
`series` shows it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, fresh_database, in_child, peak_mb, save, table  # noqa: E402

sys.path.insert(0, str(ROOT))

from app.demo import generate  # noqa: E402
from app.http import MetricsServer  # noqa: E402
from app.platform import Platform  # noqa: E402
from domain import clock  # noqa: E402

SEEN_AT = datetime(2026, 11, 30, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
TABLES = ("kpi_complaints", "kpi_daily", "kpi_totals", "kpi_penalty_totals", "kpi_ingest")


@contextmanager
def store_url(kind: str, workdir: Path, label: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / f'{label}.db'}"
    else:
        with fresh_database(f"scrape_{label}") as url:
            yield url


def worker(kind: str, url: str, arg: str, scrapes: int) -> None:
    """One step in its own process, so each reports its own peak memory: `generate` the store's
    lines into a file, `build` the store from it (streamed), `measure` report and scrape."""
    if kind == "generate":
        with open(arg, "w", encoding="utf-8") as f:
            for line in generate(seed=7, complaints=int(url)):
                f.write(line + "\n")
        print(json.dumps({"peak_mb": peak_mb()}))
        return
    if kind == "build":
        # The large stores put up to 11,000 new complaints a day into one quarter: more complaints
        # in flight than the default cache holds. Built as such a deployment should be configured
        # (README, RECOVERY_CACHED_COMPLAINTS), unless the caller set it.
        os.environ.setdefault("RECOVERY_CACHED_COMPLAINTS", "100000")
        with Platform(url) as platform:
            started = time.perf_counter()
            with open(arg, "rb") as f:
                platform.ingest_lines(f, batch_size=2000, on_batch=lambda outcomes: None)
            built = time.perf_counter() - started
            with platform.app.datastore.transaction(commit=False) as c:
                rows = {t: int(platform.app.dialect.rows(c, f"SELECT COUNT(*) AS n FROM {t}")[0]["n"]) for t in TABLES}
            events = platform.app.recorder.max_notification_id()
        if url.startswith("postgres"):
            # What autovacuum does between scrapes in production (the counter tables are set to be
            # vacuumed often); a test server may run with autovacuum off.
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE kpi_daily, kpi_totals, kpi_penalty_totals, kpi_penalty_daily, kpi_ingest")
        print(json.dumps({"events": events, "build_seconds": round(built, 1), "build_per_s": round(events / built),
                          "rows": rows, "build_peak_mb": peak_mb()}))
        return
    from projections.report import build_report

    clock.use_clock(lambda: SEEN_AT)
    platform = Platform(url)
    report_times = []
    for i in range(scrapes // 5 + 3):
        t0 = time.perf_counter()
        build_report(platform.app.dialect, platform.app.datastore, platform.policy, None, None, "region")
        if i >= 3:
            report_times.append(time.perf_counter() - t0)
    server = MetricsServer(platform, port=0).start()
    times, size = [], 0
    try:
        for i in range(scrapes + 5):
            t0 = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=60) as r:
                body = r.read()
            if i >= 5:  # the first few warm caches and connections
                times.append(time.perf_counter() - t0)
            size = len(body)
            series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    finally:
        server.stop()
        platform.close()
    print(json.dumps({"exposition_bytes": size, "series": series,
                      "scrape_ms_median": round(statistics.median(times) * 1000, 2),
                      "scrape_ms_p90": round(sorted(times)[int(len(times) * 0.9) - 1] * 1000, 2),
                      "report_ms_median": round(statistics.median(report_times) * 1000, 2),
                      "serving_peak_mb": peak_mb()}))


def measure(url: str, complaints: int, scrapes: int, workdir: Path) -> dict:
    lines = workdir / f"{complaints}.jsonl"
    in_child(Path(__file__), "generate", str(complaints), str(lines), str(scrapes))
    built = in_child(Path(__file__), "build", url, str(lines), str(scrapes))
    lines.unlink()
    return {"complaints": complaints, **built, **in_child(Path(__file__), "measure", url, "-", str(scrapes))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="complaints per store, smallest first")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, url, arg, scrapes = args.worker
        worker(kind, url, arg, int(scrapes))
        return 0
    sizes = [int(n) for n in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="bench-scrape-"))
    results = []
    for n in sizes:
        with store_url(args.store, workdir, str(n)) as url:
            results.append(measure(url, n, args.scrapes, workdir))
        print(f"measured: {results[-1]}", file=sys.stderr)
    base = results[0]
    per_series = base["scrape_ms_median"] / base["series"]
    rows = []
    for r in results:
        r["scrape_median_ratio"] = round(r["scrape_ms_median"] / base["scrape_ms_median"], 2)
        r["scrape_p90_ratio"] = round(r["scrape_ms_p90"] / base["scrape_ms_p90"], 2)
        r["per_series_ratio"] = round(r["scrape_ms_median"] / r["series"] / per_series, 2)
        r["report_ratio"] = round(r["report_ms_median"] / base["report_ms_median"], 2)
        rows.append([f"{r['complaints']:,}", f"{r['events']:,}", r["series"], r["scrape_ms_median"],
                     r["scrape_median_ratio"], r["per_series_ratio"], r["report_ms_median"], r["report_ratio"],
                     r["build_per_s"], r["build_peak_mb"], r["serving_peak_mb"]])
    print(f"store {args.store}; ratios to the {base['complaints']:,}-complaint store measured in this run")
    print(table(rows, ["complaints", "events", "series", "scrape ms", "ratio", "per series", "report ms", "ratio",
                       "build ev/s", "build MB", "serve MB"]))
    print("saved", save("scrape_cost", {"store": args.store, "targets_ms": {"report": 200, "scrape": 50},
                                        "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
