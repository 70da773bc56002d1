"""Shared by the benchmarks: fresh PostgreSQL databases, the demo mix at a given number of events,
measurements in child processes (so each reports its own peak memory), and result files."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SERVER = os.environ.get("RECOVERY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database(label: str) -> Iterator[str]:
    name = f"recovery_bench_{label}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield SERVER.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(SERVER, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def demo_file(events: int, folder: Path, seed: int = 2026, start: datetime | None = None) -> Path:
    """The demo generator's mix (resends and refusals included), cut to `events` lines; its quarter
    begins at `start` (default: the generator's)."""
    from app.demo import generate

    path = folder / f"demo-{events}{'-' + start.strftime('%Y%m%d%H%M') if start else ''}.jsonl"
    if not path.exists():
        lines = generate(seed=seed, complaints=math.ceil(events / 5.5) + 10, start=start)
        if len(lines) < events:
            raise SystemExit(f"the generator gave {len(lines)} lines, fewer than {events}")
        path.write_text("\n".join(lines[:events]) + "\n", encoding="utf-8")
    return path


def in_child(script: Path, *args: str) -> dict[str, Any]:
    """Run `script --worker ...` in a fresh interpreter; it prints one JSON object (with its peak
    memory) as its last line."""
    done = subprocess.run([sys.executable, str(script), "--worker", *args], capture_output=True, text=True,
                          cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{script.name} {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_mb() -> float:
    """This process's peak resident memory. Not ru_maxrss: Linux carries that over exec from the
    parent that forked us (the benchmark, holding the generated data)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(cells[0]), fmt(["-" * w for w in widths]), *map(fmt, cells[1:])])
