"""`make up` and `make down`: the platform live on this machine (PostgreSQL, the tansu broker,
`recovery serve`, Prometheus, the feeder), checked through Prometheus' API and `recovery report`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml
from support.prometheus_server import Prometheus

from app.live import started_at

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent
NAMES = ("kafka", "serve", "prometheus", "feeder")
UNEVALUATED = "0001-01-01T00:00:00Z"


def make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The venv this test runs in is the one `make install` made: -o keeps make from reinstalling it.
    return subprocess.run(["make", "-s", "-o", f"{VENV}/.installed", f"VENV={VENV}", target], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def until(what: str, condition, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"not within {seconds:.0f} s: {what}")


def total(prom: Prometheus, expr: str) -> float:
    result = prom.query(expr)
    return float(result[0]["value"][1]) if result else 0.0


def relay_children(serve_pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"relay" in cmdline and str(serve_pid).encode() in cmdline and started_at(int(proc.name)):
            found.append(int(proc.name))
    return found


def test_make_up_runs_the_platform_live_and_make_down_stops_all_it_started(postgres_server, tmp_path):
    run = tmp_path / "run"
    database = f"recovery_live_test_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "RECOVERY_RUN_DIR": str(run), "RECOVERY_DATABASE_URL": postgres_server,
           "RECOVERY_LIVE_DATABASE": database, "RECOVERY_LIVE_KAFKA_PORT": "0", "RECOVERY_METRICS_PORT": "0",
           "RECOVERY_LIVE_PROMETHEUS_PORT": "0", "RECOVERY_LIVE_SPEED": "36000", "RECOVERY_LIVE_RATE": "100",
           "RECOVERY_LIVE_SCRAPE_INTERVAL": "1s"}
    env.pop("RECOVERY_POLICY_FILE")  # the shipped policy: an envelope stamped ahead of the clock is refused
    started = time.monotonic()
    up = make("up", env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "Prometheus  http://127.0.0.1:" in up.stdout and f"{run}/serve.log" in up.stdout
        state = json.loads((run / "live.json").read_text())
        pids = {name: int((run / f"{name}.pid").read_text()) for name in NAMES}
        assert set(state["processes"]) == set(NAMES)  # the server at RECOVERY_DATABASE_URL answered
        again = make("up", env)
        assert again.returncode == 0 and again.stdout.startswith("already up"), again.stdout + again.stderr
        prom = Prometheus(state["prometheus"])

        until("the recovery target up", lambda: prom.query('up{job="service-recovery"} == 1'))
        received = 'sum(recovery_inbound_events_total{type="complaint.received", result="accepted"})'
        first = until("complaints received", lambda: total(prom, received))
        until("the received counter growing", lambda: total(prom, received) > first)

        def evaluated():
            rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
            return rules if all(r["health"] == "ok" and r["lastEvaluation"] != UNEVALUATED for r in rules) else None

        rules = yaml.safe_load((ROOT / "infra/prometheus/rules.yml").read_text())["groups"][0]["rules"]
        assert len(until("every alert rule evaluated", evaluated)) == len(rules)

        os.kill(pids["feeder"], signal.SIGTERM)
        until("the feeder stopped", lambda: started_at(pids["feeder"]) is None, 15)
        accepted = 'sum(recovery_inbound_events_total{result="accepted"})'
        last = {"at": 0.0, "value": -1.0}

        def settled():  # serve caught up: the same total over 3 s of 1 s scrapes
            value = total(prom, accepted)
            if value != last["value"]:
                last.update(at=time.monotonic(), value=value)
            return time.monotonic() - last["at"] >= 3

        until("serve caught up", settled)
        report = subprocess.run([sys.executable, "-m", "app.cli", "report", "--format", "json"], cwd=ROOT,
                                env={**env, "RECOVERY_DATABASE_URL": state["database_url"]},
                                capture_output=True, text=True, timeout=60)
        assert report.returncode == 0, report.stderr
        figures = json.loads(report.stdout)
        assert figures["ingest"]["accepted"] == total(prom, accepted) > 0
        assert figures["totals"]["received"] == total(prom, received)
        assert figures["ingest"]["rejected"] == total(prom, 'sum(recovery_inbound_events_total{result="rejected"})')
        serve_relay = relay_children(pids["serve"])
    finally:
        down = make("down", env)
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    assert down.returncode == 0, down.stdout + down.stderr
    assert all(started_at(pid) is None for pid in pids.values()), down.stdout
    assert serve_relay and not relay_children(pids["serve"])  # serve's relay followed it out
    assert not list(run.glob("*.pid"))
    assert time.monotonic() - started < 60


def test_with_no_postgresql_named_make_up_runs_a_throwaway_server_and_make_down_stops_it(monkeypatch):
    from app.live import Run, _database, down
    from app.localdb import answers
    from app.settings import Settings

    monkeypatch.delenv("RECOVERY_DATABASE_URL", raising=False)
    folder = Path(tempfile.mkdtemp(prefix="recovery-live-"))
    folder.chmod(0o755)  # the server runs as `postgres` when we are root: it must reach its folder
    settings = Settings(run_dir=folder / "run", live_postgres_port=0)
    run = Run(settings.run_dir)
    try:
        url, where = _database(run, settings)
        assert where.startswith("a server of ours") and answers(url)
        assert url.endswith("/recovery_live")
        pid = run.state["processes"]["postgres"]["pid"]
    finally:
        assert down(settings) == 0
        shutil.rmtree(folder, ignore_errors=True)
    assert started_at(pid) is None and not answers(url)
