"""/metrics, /healthz and /readyz over a store with hand-worked data: the November history of
test_scenarios plus two October complaints, seen on 2026-11-25 (so November is `current`)."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from datetime import timedelta

import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.exposition import samples, value
from support.histories import SEEN_AT, metrics_history, november_history
from support.prometheus_server import ensure_installed

from app.http import MetricsServer
from app.platform import Platform
from domain import clock
from projections.metrics import KpiCollector


@pytest.fixture
def fixed_clock():
    now = {"t": SEEN_AT}
    previous = clock.use_clock(lambda: now["t"])
    yield now
    clock.use_clock(previous)


@pytest.fixture
def platform(store_url, fixed_clock):
    p = Platform(store_url)
    p.ingest_lines(metrics_history(), batch_size=7)
    yield p
    p.close()


def scrape(platform: Platform) -> str:
    registry = CollectorRegistry()
    registry.register(KpiCollector(platform.app, platform.view, platform.policy))
    return generate_latest(registry).decode()


def test_exposition_gives_the_hand_worked_values(platform):
    text = scrape(platform)
    m = samples(text)
    assert value(m, "recovery_month_info", month="current", calendar_month="2026-11") == 1
    assert value(m, "recovery_month_info", month="previous", calendar_month="2026-10") == 1

    # SPEC §4 rates of November's cohort: the report's hand-worked totals, unrounded.
    current = {"region": "all", "month": "current"}
    assert value(m, "recovery_received_complaints", **current) == 9
    assert value(m, "recovery_repeat_ratio", **current) == 2 / 9
    assert value(m, "recovery_upgraded_ratio", **current) == 3 / 9
    assert value(m, "recovery_timely_ratio", **current) == 7 / 9
    assert value(m, "recovery_first_contact_resolution_ratio", **current) == 3 / 8
    assert value(m, "recovery_satisfaction_ratio", **current) == 4 / 6
    assert value(m, "recovery_recovered_ratio", **current) == 1 / 6
    assert value(m, "recovery_received_complaints", region="huaian", month="current") == 5
    assert value(m, "recovery_timely_ratio", region="xuzhou", month="current") == 1.0
    assert value(m, "recovery_timely_ratio_target") == 0.95
    # October: O1 on time, O2 late; O2 never closed, so only O1 has a recovery outcome.
    assert value(m, "recovery_timely_ratio", region="all", month="previous") == 0.5
    assert value(m, "recovery_recovered_ratio", region="all", month="previous") == 1.0
    assert value(m, "recovery_recovered_ratio", region="huaian", month="previous") is None  # 0/0: absent

    # Backlog, all months: C2 resolved late but not closed (open, not overdue); C5 never resolved
    # and its deadline missed (open and overdue); O2 resolved late, not closed.
    assert value(m, "recovery_open_complaints", tier="vip", region="huaian") == 1
    assert value(m, "recovery_overdue_complaints", tier="vip", region="huaian") == 0
    assert value(m, "recovery_open_complaints", tier="standard", region="huaian") == 2
    assert value(m, "recovery_overdue_complaints", tier="standard", region="huaian") == 1
    assert value(m, "recovery_open_complaints", tier="standard", region="xuzhou") == 0
    assert value(m, "recovery_open_complaints", tier="premium", region="xuzhou") == 0

    # Money by unit and month: penalties by trigger month, compensation by cohort.
    assert value(m, "recovery_compensation_cny", unit="huaian-store-1", month="current") == 80.0
    assert value(m, "recovery_compensation_cny", unit="huaian-cs", month="current") == 0.0
    nov = {"month": "current"}
    assert value(m, "recovery_penalty_amount_cny", unit="huaian-cs", reason="deadline_missed", **nov) == 350.0
    assert value(m, "recovery_penalties_assessed", unit="huaian-cs", reason="deadline_missed", **nov) == 5
    assert value(m, "recovery_penalty_amount_cny", unit="huaian-cs", reason="repeat_handling_fault", **nov) == 300.0
    assert value(m, "recovery_penalty_amount_cny", unit="huaian-store-1", reason="service_fault", **nov) == 100.0
    assert value(m, "recovery_penalty_points", unit="xuzhou-cs", reason="unrecorded", **nov) == 0.02
    assert value(m, "recovery_penalty_amount_cny", unit="huaian-cs", reason="deadline_missed",
                 month="previous") == 150.0

    # Inbound events by type and result; rejections carry their SPEC reason code.
    assert value(m, "recovery_inbound_events_total", type="complaint.received", result="accepted", reason="") == 11
    assert value(m, "recovery_inbound_events_total", type="complaint.closed", result="duplicate", reason="") == 1
    assert value(m, "recovery_inbound_events_total", type="complaint.compensated", result="rejected",
                 reason="over_authority") == 1
    assert value(m, "recovery_inbound_events_total", type="complaint.responded", result="rejected",
                 reason="unknown_complaint") == 1

    # Time to resolution for vip: C1 in 3 h, C2 in 10 h.
    vip = {"tier": "vip"}
    assert value(m, "recovery_time_to_resolution_seconds_bucket", le="7200.0", **vip) == 0
    assert value(m, "recovery_time_to_resolution_seconds_bucket", le="14400.0", **vip) == 1
    assert value(m, "recovery_time_to_resolution_seconds_bucket", le="86400.0", **vip) == 2
    assert value(m, "recovery_time_to_resolution_seconds_bucket", le="+Inf", **vip) == 2
    assert value(m, "recovery_time_to_resolution_seconds_count", **vip) == 2
    assert value(m, "recovery_time_to_resolution_seconds_sum", **vip) == 13 * 3600
    # C7 first answered at 22:30 the same day (13.5 h), before its resolve the next morning.
    assert value(m, "recovery_time_to_first_response_seconds_sum", tier="standard") == (
        (6 + 23 + 13.5 + 3 + 1) + (1 + 5 * 24)) * 3600  # November's C3 C4 C7 C8 C9, October's O1 O2

    assert value(m, "recovery_projection_lag_events") == 0
    assert value(m, "recovery_projection_lag_seconds") == 0

    _, promtool = ensure_installed()
    lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_no_labels_identify_customers_complaints_or_people(platform):
    allowed = {"type", "result", "reason", "tier", "region", "month", "calendar_month", "unit", "le",
               "topic", "partition", "resolution", "kind"}  # kind: a case author's (SPEC §7), two values
    for family in text_string_to_metric_families(scrape(platform)):
        for s in family.samples:
            assert set(s.labels) <= allowed, (s.name, s.labels)
            assert not any(v.startswith(("C", "O", "cust-", "h-", "tl-", "dh-", "cs-")) for v in s.labels.values())


def test_resending_the_history_changes_no_metric(platform):
    before = samples(scrape(platform))
    platform.ingest_lines(metrics_history(), batch_size=5)
    after = samples(scrape(platform))
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed <= {k for k in before if k[0] == "recovery_inbound_events_total"}
    assert all(after[k] > before[k] for k in changed)  # only the duplicate and rejection counts grew


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_readyz_follows_projection_lag_and_the_database(postgres_url, fixed_clock):
    platform = Platform(postgres_url)
    server = MetricsServer(platform, port=0, max_lag_seconds=60, ready_timeout_seconds=2).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert get(f"{base}/healthz") == (200, "ok\n")
        status, body = get(f"{base}/readyz")
        assert status == 200 and json.loads(body)["projection_lag_events"] == 0

        # Events recorded, read model not caught up: ready while they are younger than the limit.
        platform.service.ingest(november_history().lines[:3])
        status, body = get(f"{base}/readyz")
        assert status == 200 and json.loads(body)["projection_lag_events"] > 0
        fixed_clock["t"] = SEEN_AT + timedelta(seconds=61)
        status, body = get(f"{base}/readyz")
        assert status == 503 and json.loads(body)["projection_lag_seconds"] == 61
        assert value(samples(get(f"{base}/metrics")[1]), "recovery_projection_lag_seconds") == 61
        platform.catch_up()
        assert get(f"{base}/readyz")[0] == 200

        # The database goes away: not ready, with the reason; still alive.
        admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{postgres_url.rsplit("/", 1)[1]}" WITH (FORCE)')
        status, body = get(f"{base}/readyz")
        assert status == 503 and json.loads(body)["database"].startswith("unreachable")
        assert get(f"{base}/healthz")[0] == 200
        assert get(f"{base}/nothing")[0] == 404
    finally:
        server.stop()
        platform.close()


def test_recovery_metrics_serves_an_embedded_store_and_stops_on_sigterm(tmp_path):
    import os
    import signal
    import sys
    import time
    from pathlib import Path

    from support.prometheus_server import free_port

    url = f"sqlite:///{tmp_path / 'recovery.db'}"
    seeded = Platform(url)
    seeded.ingest_lines(metrics_history())
    seeded.close()
    recovery = str(Path(sys.executable).with_name("recovery"))
    env = {**os.environ, "RECOVERY_DATABASE_URL": url}
    port = free_port()
    proc = subprocess.Popen([recovery, "metrics", "--port", str(port), "--interval", "0.5"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if get(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        m = samples(get(f"http://127.0.0.1:{port}/metrics")[1])
        assert value(m, "recovery_timely_ratio_target") == 0.95
        assert value(m, "recovery_inbound_events_total", type="complaint.received", result="accepted", reason="") == 11

        taken = subprocess.run([recovery, "metrics", "--port", str(port)], env=env, capture_output=True,
                               text=True, timeout=60)
        assert taken.returncode == 2 and f"cannot serve /metrics on 127.0.0.1:{port}" in taken.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out


def test_a_read_model_of_an_older_release_is_rebuilt_from_the_log(platform, store_url):
    expected = scrape(platform)
    platform.close()
    # What an older release left: its own version, tables without today's counters, its position.
    old = Platform(store_url)
    with old.app.datastore.transaction(commit=True) as c:
        for table in ("kpi_totals", "kpi_penalty_totals", "kpi_daily"):
            old.app.dialect.execute(c, f"DROP TABLE {table}")
        old.app.dialect.execute(c, "CREATE TABLE kpi_daily (day TEXT, dim TEXT, key TEXT, received BIGINT)")
        old.app.dialect.execute(c, "UPDATE kpi_schema SET version = 1")
    old.close()
    reopened = Platform(store_url)
    try:
        assert reopened.catch_up() > 0  # every event applied again
        assert scrape(reopened) == expected
    finally:
        reopened.close()
