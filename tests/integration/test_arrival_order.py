"""SPEC §2.1: every figure is a function of the recorded events and the policy, never of arrival
order. A month of history (the demo generator's, plus hand-made edge cases) is ingested in time
order and in other orders that keep each complaint's own order and delay no event beyond the
allowed lateness; reports under every `--by`, penalties, histories and /metrics must be identical.
On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from support.feed import Feed

from app.demo import generate
from app.platform import Platform
from projections.history import complaint_history
from projections.metrics import KpiCollector
from projections.report import build_report

TZ = ZoneInfo("Asia/Shanghai")
LATENESS = timedelta(hours=6)
DIMENSIONS = (None, "region", "unit", "tier", "category", "channel")


def at(day: int, hm: str) -> str:
    return f"2026-10-{day:02d}T{hm}:00+08:00"


def edge_cases() -> list[str]:
    f = Feed(id_prefix="edge-")
    # Twins, three hours apart: whichever arrives first, E-TWIN-2 repeats E-TWIN-1.
    f.received("E-TWIN-1", at(6, "09:00"), customer="cust-twin", issue_key="sim")
    f.received("E-TWIN-2", at(6, "12:00"), customer="cust-twin", issue_key="sim")
    f.resolved("E-TWIN-1", at(6, "13:00"))
    f.envelope("verified", "E-TWIN-1", at(6, "13:30"),
               {"liability": "company", "service_fault": False, "handling_fault": True})
    f.closed("E-TWIN-1", at(6, "14:00"))
    # Three of one customer: the middle one, arriving last, sits between the others.
    f.received("E-TRI-1", at(7, "09:00"), customer="cust-tri", issue_key="bill")
    f.received("E-TRI-2", at(7, "11:00"), customer="cust-tri", issue_key="bill")
    f.received("E-TRI-3", at(7, "13:00"), customer="cust-tri", issue_key="bill")
    # A major batch straddling a window: ten on one cause within an hour, from 09:50 to 10:50.
    for n in range(10):
        f.received(f"E-BATCH-{n}", at(8, f"{9 + (50 + 6 * n) // 60:02d}:{(50 + 6 * n) % 60:02d}"),
                   category="network", region="suqian", customer=f"cust-batch-{n}")
    # Resolves just inside and just outside the deadline (vip: 8 hours).
    f.received("E-IN", at(9, "09:00"), tier="vip")
    f.resolved("E-IN", at(9, "17:00"))
    f.received("E-OUT", at(9, "09:00"), tier="vip")
    f.resolved("E-OUT", at(9, "17:01"))
    # A transfer just before the deadline, never resolved: the new handler answers for the miss.
    f.received("E-XFER", at(10, "09:00"), tier="vip")
    f.envelope("assigned", "E-XFER", at(10, "16:59"), {"to": {"handler": "h-late", "team_lead": "tl-late"}})
    # Something later the same day, so the watcher's clock passes the deadline.
    f.received("E-CLOCK", at(11, "09:00"))
    return f.lines


def history() -> list[str]:
    start = datetime(2026, 10, 1, tzinfo=TZ)
    return generate(seed=21, complaints=160, start=start, days=30) + edge_cases()


def _key(line: str) -> tuple[str | None, datetime | None]:
    try:
        env = json.loads(line)
        moment = datetime.fromisoformat(env["occurred_at"])
        return (env.get("complaint_id") or env["case_id"], moment) if moment.tzinfo else (None, None)
    except (ValueError, KeyError, TypeError):
        return None, None


def arrival(lines: list[str], delay) -> list[str]:
    """The lines in the order they arrive when each is delayed by delay(complaint, index) (at most
    the lateness), each complaint's own events staying in order. A line that is no envelope rides
    with the line before it."""
    keyed, last, previous = [], {}, None
    for i, line in enumerate(lines):
        complaint, moment = _key(line)
        if moment is None:
            keyed.append((previous or datetime.min.replace(tzinfo=TZ), i, line))
            continue
        arrives = max(moment + delay(complaint, i), last.get(complaint, moment))
        last[complaint] = arrives
        previous = arrives
        keyed.append((arrives, i, line))
    return [line for _, _, line in sorted(keyed, key=lambda k: (k[0], k[1]))]


def in_time_order(lines: list[str]) -> list[str]:
    return arrival(lines, lambda c, i: timedelta(0))


def orders(lines: list[str]) -> dict[str, list[str]]:
    timed = in_time_order(lines)
    rng = random.Random(7)
    jitter = {i: rng.random() for i in range(len(timed))}
    return {
        "random delays": arrival(timed, lambda c, i: LATENESS * jitter[i]),
        "every other complaint as late as allowed": arrival(
            timed, lambda c, i: LATENESS if hash(c) % 2 else timedelta(0)),
        "the later twins first": arrival(
            timed, lambda c, i: LATENESS if c in ("E-TWIN-1", "E-TRI-1", "E-TRI-2", "E-BATCH-0") else timedelta(0)),
    }


def figures(url: str, policy, lines: list[str], batch_size: int) -> dict:
    with Platform(url, policy) as p:
        p.ingest_lines(lines, batch_size=batch_size)
        p.catch_up()
        reports = {dim: build_report(p.app.dialect, p.app.datastore, p.policy, None, None, dim) for dim in DIMENSIONS}
        histories = {}
        for cid in ("E-TWIN-1", "E-TWIN-2", "E-TRI-2", "E-TRI-3", "E-BATCH-0", "E-IN", "E-OUT", "E-XFER",
                    "C-2026-000042"):
            h = complaint_history(p.app, p.policy, cid)
            histories[cid] = {"state": h["state"], "penalties": h["penalties"]}
        metrics = sorted((m.name, tuple(sorted(s.labels.items())), s.value)
                         for m in KpiCollector(p.app, p.view, p.policy).collect() for s in m.samples
                         if "lag" not in m.name)
    return {"reports": reports, "histories": histories, "metrics": metrics}


def fresh_store(store_url: str, server: str, tmp_path, n: int) -> str:
    """Another empty store of the same backend as `store_url` (dropped with the server's test databases)."""
    if store_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / f'order-{n}.db'}"
    if n == 0:
        return store_url
    import psycopg

    name = f"{store_url.rsplit('/', 1)[1]}_{n}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{store_url.rsplit('/', 1)[0]}/{name}"


@pytest.fixture
def late_policy(policy):
    return replace(policy, file_lateness_seconds=int(LATENESS.total_seconds()))


def test_any_order_within_the_lateness_gives_the_figures_of_time_order(store_url, late_policy, tmp_path,
                                                                        postgres_server):
    lines = history()
    reference = figures(f"sqlite:///{tmp_path / 'reference.db'}", late_policy, in_time_order(lines), 1000)
    r = reference["reports"][None]["totals"]
    assert r["repeat"] > 5 and r["major_batch"] >= 10 and r["late"] > 0  # the history exercises the rules
    h = reference["histories"]
    assert h["E-TWIN-2"]["state"]["repeat_of"] == "E-TWIN-1"
    # the handling fault found on the original costs its department head
    assert [p["who"] for p in h["E-TWIN-2"]["penalties"] if p["reason"] == "repeat_handling_fault"] == ["dh-1"]
    assert h["E-TRI-3"]["state"]["repeat_of"] == "E-TRI-2"
    assert h["E-OUT"]["state"]["deadline_missed_recorded"] and not h["E-IN"]["state"]["deadline_missed_recorded"]
    assert {p["who"] for p in h["E-XFER"]["penalties"]} == {"h-late", "tl-late"}

    for n, (name, lines_in_order) in enumerate(orders(lines).items()):
        assert sorted(lines_in_order) == sorted(lines)
        got = figures(fresh_store(store_url, postgres_server, tmp_path, n), late_policy, lines_in_order,
                      batch_size=(37, 250, 1000)[n])
        for part in ("histories", "reports", "metrics"):
            assert got[part] == reference[part], f"{name}: {part} differ"
