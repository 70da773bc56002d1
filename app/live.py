"""`recovery up` and `recovery down` (make up, make down): the platform live on this machine with the
real binaries the tests use. PostgreSQL (the server at RECOVERY_DATABASE_URL, else 127.0.0.1:5432,
if one answers, with a database of its own; else a server of ours under .run/), the Kafka-protocol
broker tansu with the inbound topic in 4 partitions, `recovery serve` with its relay and metrics
port, Prometheus with infra/prometheus/rules.yml, and the live feeder (`recovery demo --live`).

Everything started is recorded under the run folder (RECOVERY_RUN_DIR, default .run/): a pid file
and a log per process, and live.json (pids with their start times, so a pid the system has since
given to another process is never signalled). `down` stops those pids, and nothing else.
The broker keeps its topics in memory, so each `up` starts the database afresh: the store's Kafka
positions must be those of the broker it reads."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from app import binaries
from app.binaries import CannotStart
from app.localdb import LocalServer, answers
from app.settings import Settings
from consumers.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "infra/prometheus/rules.yml"
JOB = "service-recovery"  # the job of infra/prometheus/prometheus.yml, which the alert rules select
PARTITIONS = 4
ORDER = ("postgres", "kafka", "serve", "prometheus", "feeder")  # started in this order, stopped in reverse
GRAPH = "sum by (result) (rate(recovery_inbound_events_total[1m]))"


def scrape_config(targets: list[str], rule_files: list[str], interval: str) -> dict[str, Any]:
    """A Prometheus config (JSON is YAML) scraping `targets` as infra/prometheus/prometheus.yml's job."""
    return {"global": {"scrape_interval": interval, "evaluation_interval": interval}, "rule_files": rule_files,
            "scrape_configs": [{"job_name": JOB, "metrics_path": "/metrics",
                                "static_configs": [{"targets": targets}]}]}


class Run:
    """The run folder and what is recorded in it."""

    def __init__(self, folder: Path) -> None:
        self.dir = folder
        self.state_file = self.dir / "live.json"
        self.state: dict[str, Any] = {"processes": {}, "where": []}
        if self.state_file.exists():
            self.state = json.loads(self.state_file.read_text())

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(self.state, indent=2))

    def record(self, name: str, pid: int) -> None:
        self.state["processes"][name] = {"pid": pid, "started": started_at(pid)}
        (self.dir / f"{name}.pid").write_text(f"{pid}\n")
        self.save()

    def running(self) -> list[str]:
        return [n for n, p in self.state["processes"].items() if alive(p)]

    def log(self, name: str) -> Path:
        return self.dir / f"{name}.log"


def started_at(pid: int) -> str | None:
    """The process's start time (Linux /proc), None when it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else fields[19]


def alive(process: dict[str, Any]) -> bool:
    return process["started"] is not None and started_at(process["pid"]) == process["started"]


def _port(name: str, setting: str, port: int) -> int:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise CannotStart(f"port {port} for {name} is taken: free it or set {setting} (0: any free port)") from None
        return s.getsockname()[1]


def _wait(what: str, ready: Any, proc: subprocess.Popen[bytes] | None, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ready():
            return
        if proc is not None and proc.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
            raise CannotStart(f"{what} exited at start-up: {(lines or ['no output'])[-1][:300]} (log: {log})")
        time.sleep(0.2)
    raise CannotStart(f"{what} did not answer within {seconds:.0f} s (log: {log})")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _fresh_database(server: str, name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise CannotStart(f"RECOVERY_LIVE_DATABASE must be letters, digits and _, got {name!r}")
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urllib.parse.urlunparse(urllib.parse.urlparse(server)._replace(path=f"/{name}"))


def _database(run: Run, settings: Settings) -> tuple[str, str]:
    """The database URL, and where it lives: the PostgreSQL server at RECOVERY_DATABASE_URL if one
    answers there, else a throwaway server of ours under the run folder."""
    name = settings.live_database
    server = settings.database_url if "database_url" in settings.model_fields_set else None
    if server and server.startswith(("postgresql:", "postgres:")) and answers(server):
        return _fresh_database(server, name), f"the server at RECOVERY_DATABASE_URL; database {name}, made afresh"
    local = LocalServer(run.dir / "postgres", _port("PostgreSQL", "RECOVERY_LIVE_POSTGRES_PORT",
                                                    settings.live_postgres_port))
    run.record("postgres", local.start())
    return _fresh_database(local.url, name), f"a server of ours, log {local.log}"


class _Starter:
    def __init__(self, run: Run, env: dict[str, str]):
        self.run, self.env = run, env

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with self.run.log(name).open("ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    env=self.env, cwd=ROOT, start_new_session=True)
        self.run.record(name, proc.pid)
        return proc


def _create_topics(bootstrap: str, settings: KafkaSettings) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError

    deadline = time.monotonic() + 30
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap)
            try:
                admin.create_topics([NewTopic(settings.topic, PARTITIONS, 1), NewTopic(settings.dlq_topic, 1, 1),
                                     NewTopic(settings.outbound_topic, 1, 1)])
            finally:
                admin.close()
            return
        except KafkaError as e:
            if time.monotonic() > deadline:
                raise CannotStart(f"could not create the topics on the broker at {bootstrap}: {e}") from None
            time.sleep(0.5)


def up(settings: Settings) -> int:
    logging.getLogger("kafka").setLevel(logging.WARNING)  # the admin client's connection lines
    run = Run(settings.run_dir)
    if run.running():
        if set(run.running()) == set(run.state["processes"]) and run.state["where"]:
            print("already up:\n" + "\n".join(run.state["where"]))
            return 0
        raise CannotStart(f"partly up ({', '.join(run.running())} running): run make down first")
    _stop(run)  # none of them runs: forgets the records of an earlier run
    kafka_port = _port("Kafka", "RECOVERY_LIVE_KAFKA_PORT", settings.live_kafka_port)
    if settings.metrics_port is None:
        raise CannotStart("the live stack needs serve's metrics: RECOVERY_METRICS_PORT is off")
    metrics_port = _port("serve's metrics", "RECOVERY_METRICS_PORT", settings.metrics_port)
    prom_port = _port("Prometheus", "RECOVERY_LIVE_PROMETHEUS_PORT", settings.live_prometheus_port)
    prometheus, _ = binaries.prometheus(announce=True)
    tansu = binaries.tansu()
    try:
        return _start(run, settings, kafka_port, metrics_port, prom_port, prometheus, str(tansu))
    except BaseException:
        _stop(run)
        raise


def _start(run: Run, settings: Settings, kafka_port: int, metrics_port: int, prom_port: int, prometheus: str,
           tansu: str) -> int:
    url, db_where = _database(run, settings)
    bootstrap = f"127.0.0.1:{kafka_port}"
    env = {**os.environ, "RECOVERY_DATABASE_URL": url, "RECOVERY_KAFKA_BOOTSTRAP": bootstrap,
           "RECOVERY_METRICS_HOST": "127.0.0.1", "RECOVERY_METRICS_PORT": str(metrics_port),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = _Starter(run, env)
    kafka = settings.kafka()
    listener = f"tcp://{bootstrap}"
    proc = start.spawn("kafka", [tansu, "broker", "--listener-url", listener, "--advertised-listener-url", listener,
                                 "--storage-engine", "memory://tansu/", "--cluster-id", "recovery-live"])
    _wait("the Kafka broker (tansu)", lambda: _connects(kafka_port), proc, run.log("kafka"), 30)
    _create_topics(bootstrap, kafka)
    metrics = f"http://127.0.0.1:{metrics_port}"
    proc = start.spawn("serve", [sys.executable, "-m", "app.cli", "serve"])
    _wait("recovery serve", lambda: _http_ok(f"{metrics}/healthz"), proc, run.log("serve"))
    folder = run.dir / "prometheus"
    folder.mkdir(exist_ok=True)
    config = scrape_config([f"127.0.0.1:{metrics_port}"], [str(RULES)], settings.live_scrape_interval)
    (folder / "prometheus.yml").write_text(json.dumps(config, indent=2))
    prom = f"http://127.0.0.1:{prom_port}"
    proc = start.spawn("prometheus", [prometheus, f"--config.file={folder / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={folder / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{prom_port}"])
    _wait("Prometheus", lambda: _http_ok(f"{prom}/-/ready"), proc, run.log("prometheus"))
    start.spawn("feeder", [sys.executable, "-m", "app.cli", "demo", "--live", "--rate", str(settings.live_rate),
                           "--speed", str(settings.live_speed)])
    graph = f"{prom}/graph?" + urllib.parse.urlencode({"g0.expr": GRAPH, "g0.tab": "0", "g0.range_input": "15m"})
    run.state.update(database_url=url, kafka=bootstrap, metrics=metrics, prometheus=prom)
    run.state["where"] = [
        f"PostgreSQL  {url} ({db_where})",
        f"Kafka       {bootstrap} (tansu, in memory), topic {kafka.topic} in {PARTITIONS} partitions, "
        f"log {run.log('kafka')}",
        f"serve       {metrics}/metrics (and /readyz), relay beside it, log {run.log('serve')}",
        f"Prometheus  {prom} (rules {RULES.relative_to(ROOT)}, every {settings.live_scrape_interval}), "
        f"log {run.log('prometheus')}",
        f"feeder      demo quarter from now at {settings.live_speed:g}x real time, {settings.live_rate:g} events/s "
        f"at most, log {run.log('feeder')}",
        f"watch       {graph}",
        f"report      RECOVERY_DATABASE_URL={url} .venv/bin/recovery report",
        "stop        make down",
    ]
    run.save()
    print("\n".join(run.state["where"]))
    return 0


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended between the check and the signal
        os.kill(pid, signum)


def _stop(run: Run, seconds: float = 30) -> list[str]:
    """Stops the recorded processes, the last started first; returns what it did, one line each."""
    done = []
    for name in sorted(run.state["processes"], key=ORDER.index, reverse=True):
        process = run.state["processes"][name]
        if alive(process):
            # PostgreSQL: SIGINT is its fast shutdown. The others finish what they hold on SIGTERM.
            _signal(process["pid"], signal.SIGINT if name == "postgres" else signal.SIGTERM)
            deadline = time.monotonic() + seconds
            while alive(process) and time.monotonic() < deadline:
                time.sleep(0.1)
            if alive(process):
                _signal(process["pid"], signal.SIGKILL)
                done.append(f"killed {name} (pid {process['pid']}): it did not stop within {seconds:.0f} s")
            else:
                done.append(f"stopped {name} (pid {process['pid']})")
        (run.dir / f"{name}.pid").unlink(missing_ok=True)
    run.state = {"processes": {}, "where": []}
    run.save()
    return done


def down(settings: Settings) -> int:
    run = Run(settings.run_dir)
    if not run.running():
        if run.state_file.exists():
            _stop(run)  # forgets stale records
        print(f"nothing to stop: no process recorded in {run.dir}/ is running")
        return 0
    print("\n".join(_stop(run)))
    return 0
