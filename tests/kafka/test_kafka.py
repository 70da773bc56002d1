"""`recovery serve` against a real Kafka-protocol broker and PostgreSQL, as real subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from support.exposition import samples, value
from support.histories import november_history
from support.kafka_broker import broker, create_topics
from support.prometheus_server import free_port

from app.demo import generate
from app.platform import Platform
from projections.report import build_report

pytestmark = pytest.mark.postgres
RECOVERY = str(Path(sys.executable).with_name("recovery"))


@pytest.fixture(scope="module")
def kafka() -> str:
    with broker() as bootstrap:
        yield bootstrap


@pytest.fixture
def topics(kafka):
    def make(partitions: int) -> dict[str, str]:
        suffix = uuid.uuid4().hex[:8]
        names = {"RECOVERY_KAFKA_TOPIC": f"complaint-events-{suffix}",
                 "RECOVERY_KAFKA_DLQ_TOPIC": f"complaint-events-{suffix}.dlq",
                 "RECOVERY_KAFKA_OUTBOUND_TOPIC": f"service-recovery-{suffix}.events"}
        create_topics(kafka, {names["RECOVERY_KAFKA_TOPIC"]: partitions, names["RECOVERY_KAFKA_DLQ_TOPIC"]: 1,
                              names["RECOVERY_KAFKA_OUTBOUND_TOPIC"]: 1})
        return {**names, "RECOVERY_KAFKA_BOOTSTRAP": kafka, "RECOVERY_KAFKA_GROUP": f"group-{suffix}"}
    return make


def produce(bootstrap: str, topic: str, lines: list[str]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for line in lines:
        try:
            env = json.loads(line)
            key = (env.get("complaint_id") or env.get("case_id") or "").encode() or None  # SPEC §7: cases by case_id
        except (ValueError, AttributeError):
            key = None
        producer.send(topic, key=key, value=line.encode())
    producer.flush()
    producer.close()


def start_serve(url: str, env: dict[str, str], batch: int = 100) -> subprocess.Popen:
    log = tempfile.NamedTemporaryFile("w+", prefix="serve-", suffix=".log", delete=False)  # noqa: SIM115 - outlives this call
    port = free_port()
    proc = subprocess.Popen(
        [RECOVERY, "serve"],
        env={**os.environ, "RECOVERY_WATCHER": "event", **env, "RECOVERY_DATABASE_URL": url,
             "RECOVERY_BATCH_SIZE": str(batch), "RECOVERY_BATCH_LINGER_MS": "100",
             "RECOVERY_METRICS_HOST": "127.0.0.1", "RECOVERY_METRICS_PORT": str(port)},
        stdout=subprocess.DEVNULL, stderr=log, text=True)
    proc.log_path = log.name  # type: ignore[attr-defined]
    proc.metrics_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    return proc


def scrape(proc: subprocess.Popen) -> dict:
    with urllib.request.urlopen(f"{proc.metrics_url}/metrics", timeout=10) as r:  # type: ignore[attr-defined]
        return samples(r.read().decode())


def serve_log(proc: subprocess.Popen) -> str:
    return Path(proc.log_path).read_text()[-4000:]  # type: ignore[attr-defined]


def report(url: str) -> dict:
    platform = Platform(url)
    try:
        platform.catch_up()
        return build_report(platform.app.dialect, platform.app.datastore, platform.policy, None, None, "region")
    finally:
        platform.close()


def ingested(url: str) -> int:
    i = report(url)["ingest"]
    return i["accepted"] + i["duplicates"] + i["rejected"]


def wait_for(condition, timeout: float = 180.0, procs: tuple = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"serve exited {p.returncode}: {serve_log(p)}")
        time.sleep(0.5)
    raise AssertionError("timed out; serve logs:\n" + "\n---\n".join(serve_log(p) for p in procs))


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    err = serve_log(proc)
    assert proc.returncode == 0, err
    return Path(proc.log_path).read_text()  # type: ignore[attr-defined]


@contextmanager
def serving(url: str, env: dict[str, str], batch: int = 100, count: int = 1):
    """`recovery serve` processes for the block; SIGTERM at its end must stop them cleanly."""
    procs = [start_serve(url, env, batch) for _ in range(count)]
    try:
        yield procs
        for p in procs:
            p.logs = stop(p)  # type: ignore[attr-defined]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def complaint_events(url: str) -> set[str]:
    """The stable ids (`originator:version`) of every recorded complaint and case event."""
    platform = Platform(url)
    try:
        return {f"{n.originator_id}:{n.originator_version}"
                for n in platform.app.recorder.select_notifications(1, 1_000_000)
                if n.topic.split(":")[1].startswith(("Complaint.", "Case."))}
    finally:
        platform.close()


def children(pid: int) -> list[int]:
    return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]


def gone(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()  # exited, not yet reaped
    except FileNotFoundError:
        return True


def file_reference(tmp_path: Path, lines: list[str]) -> dict:
    url = f"sqlite:///{tmp_path / 'reference.db'}"
    platform = Platform(url)
    try:
        platform.ingest_lines(lines, batch_size=37)
    finally:
        platform.close()
    return report(url)


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=f"reader-{uuid.uuid4().hex[:6]}",
                             session_timeout_ms=6000, heartbeat_interval_ms=500)
    got: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < expected:
        for records in consumer.poll(500).values():
            got += records
    consumer.close()
    return got


@pytest.mark.parametrize("relay", ["process", "inline"])
def test_serve_gives_the_file_numbers_and_routes_poison_to_the_dead_letter_topic(postgres_url, topics, tmp_path, relay):
    env = {**topics(1), "RECOVERY_RELAY": relay}
    lines = november_history().lines
    with serving(postgres_url, env, batch=5) as (proc,):
        produce(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_TOPIC"], lines)
        wait_for(lambda: ingested(postgres_url) == len(lines), procs=(proc,))
        topic = {"topic": env["RECOVERY_KAFKA_TOPIC"], "partition": "0"}
        wait_for(lambda: value(scrape(proc), "recovery_consumer_lag_messages", **topic) == 0, 30, (proc,))
        wait_for(lambda: value(scrape(proc), "recovery_outbox_lag_events") == 0, 30, (proc,))  # all published
        metrics = scrape(proc)
        assert value(metrics, "recovery_inbound_events_total", type="complaint.received", result="accepted",
                     reason="") == 9
        assert value(metrics, "recovery_projection_lag_events") == 0
        with urllib.request.urlopen(f"{proc.metrics_url}/readyz", timeout=10) as r:
            assert r.status == 200
    assert '"event": "batch"' in proc.logs  # one structured line per batch
    live, reference = report(postgres_url), file_reference(tmp_path, lines)
    assert live["totals"] == reference["totals"] and live["penalties"] == reference["penalties"]
    assert live["ingest"] == reference["ingest"] and live["ingest"]["rejected"] == 4

    dead = read_topic(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_DLQ_TOPIC"], 4)
    assert len(dead) == 4
    headers = [dict(m.headers) for m in dead]
    assert sorted(h["reason"].decode() for h in headers) == sorted(
        ["invalid_event", "invalid_transition", "over_authority", "unknown_complaint"])
    assert all(h["source_topic"].decode() == env["RECOVERY_KAFKA_TOPIC"] for h in headers)
    offsets = {int(h["source_offset"]) for h in headers}
    assert all(dead[i].value.decode() == lines[int(headers[i]["source_offset"])] for i in range(4))
    assert len(offsets) == 4


def test_sigkill_during_batches_then_restart_equals_an_uninterrupted_run(postgres_url, topics, tmp_path):
    env = topics(1)
    lines = generate(seed=11, complaints=500)
    produce(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_TOPIC"], lines)
    for _ in range(2):  # kill it twice, at different moments
        proc = start_serve(postgres_url, env, batch=40)
        try:
            already = ingested(postgres_url) if _ else 0
            wait_for(lambda: ingested(postgres_url) > already + 200, procs=(proc,))  # noqa: B023 - called at once
            relays = children(proc.pid)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert len(relays) == 1  # the outbox relay, a process of its own: it follows serve out
        wait_for(lambda: all(gone(pid) for pid in relays), 30)  # noqa: B023 - called at once
    with serving(postgres_url, env, batch=40) as (proc,):
        wait_for(lambda: ingested(postgres_url) == len(lines), procs=(proc,))
        time.sleep(1.0)  # let the relay drain
    live, reference = report(postgres_url), file_reference(tmp_path, lines)
    assert live["totals"] == reference["totals"]
    assert live["groups"] == reference["groups"]
    assert live["penalties"] == reference["penalties"]
    assert live["ingest"] == reference["ingest"]

    # The outbox relay published every recorded complaint and case event at least once, and nothing else.
    recorded = complaint_events(postgres_url)
    published = read_topic(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_OUTBOUND_TOPIC"], len(recorded))
    assert {dict(m.headers)["event_id"].decode() for m in published} == recorded


def test_with_the_relay_off_serve_publishes_nothing_and_recovery_relay_alone_publishes_every_event(
        postgres_url, topics):
    env = {**topics(1), "RECOVERY_RELAY": "off"}
    lines = november_history().lines
    with serving(postgres_url, env, batch=10) as (proc,):
        produce(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_TOPIC"], lines)
        wait_for(lambda: ingested(postgres_url) == len(lines), procs=(proc,))
        assert children(proc.pid) == []
    bootstrap, outbound = env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_OUTBOUND_TOPIC"]
    assert read_topic(bootstrap, outbound, 1, timeout=3) == []
    relay = subprocess.Popen([RECOVERY, "relay"], env={**os.environ, **env, "RECOVERY_DATABASE_URL": postgres_url},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    recorded = complaint_events(postgres_url)
    try:
        published = read_topic(bootstrap, outbound, len(recorded), timeout=60)
    finally:
        relay.send_signal(signal.SIGTERM)
        _, err = relay.communicate(timeout=30)
    assert relay.returncode == 0, err
    assert '"event": "relay_stopped"' in err
    assert sorted(dict(m.headers)["event_id"].decode() for m in published) == sorted(recorded)


def test_two_consumers_in_one_group_split_partitions_and_give_the_same_totals(postgres_url, topics, tmp_path):
    env = topics(4)
    lines = generate(seed=5, complaints=300)
    with serving(postgres_url, env, batch=30, count=2) as procs:
        time.sleep(4)  # both join the group before traffic starts
        produce(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_TOPIC"], lines)
        wait_for(lambda: ingested(postgres_url) == len(lines), procs=tuple(procs))
    assert all('"event": "batch"' in p.logs for p in procs), "both processes consumed"
    live, reference = report(postgres_url), file_reference(tmp_path, lines)
    # Per-complaint results do not depend on how partitions interleave.
    for key in ("received", "resolved", "closed", "compensation_total", "satisfied"):
        assert live["totals"][key] == reference["totals"][key], key
    assert live["ingest"] == reference["ingest"]


def test_duplicate_messages_are_counted_once(postgres_url, topics):
    env = topics(2)
    lines = november_history().lines
    with serving(postgres_url, env, batch=10) as (proc,):
        produce(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_TOPIC"], lines + lines)
        wait_for(lambda: ingested(postgres_url) == 2 * len(lines), procs=(proc,))
    i = report(postgres_url)["ingest"]
    # every line sent again is a duplicate, a refused one included (SPEC §2)
    assert (i["accepted"], i["duplicates"], i["rejected"]) == (31, 1 + 36, 4)


def test_dlq_replay_resends_dead_letters_to_the_inbound_topic(postgres_url, topics):
    env = topics(1)
    lines = november_history().lines
    with serving(postgres_url, env, batch=50) as (proc,):
        produce(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_TOPIC"], lines)
        wait_for(lambda: ingested(postgres_url) == len(lines), procs=(proc,))
        wait_for(lambda: len(read_topic(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_DLQ_TOPIC"], 4, 10)) == 4)
        replay = subprocess.run([RECOVERY, "dlq", "replay"], env={**os.environ, **env}, capture_output=True,
                                text=True, timeout=120)
        assert replay.returncode == 0, replay.stderr
        assert "replayed 4 dead letters" in replay.stdout
        # evaluated again and refused again (nothing was fixed upstream): counted as duplicates, back
        # on the dead-letter topic for the next replay, and nothing else changes
        wait_for(lambda: ingested(postgres_url) == len(lines) + 4, procs=(proc,))
        wait_for(lambda: len(read_topic(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_DLQ_TOPIC"], 8, 10)) == 8)
    i = report(postgres_url)["ingest"]
    assert (i["accepted"], i["rejected"], i["duplicates"]) == (31, 4, 1 + 4)
    inbound = read_topic(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_TOPIC"], len(lines) + 4)
    assert sum(1 for m in inbound if any(k == "replayed_from" for k, _ in m.headers or [])) == 4


def poison_messages() -> list[tuple[str, bytes]]:
    """One message of every kind that used to stop `recovery serve` or poison its store."""
    ok = json.loads(november_history().lines[0])

    def env(**changes: object) -> bytes:
        return json.dumps({**ok, "event_id": f"poison-{uuid.uuid4().hex[:8]}", **changes}).encode()

    data = ok["data"]
    return [
        ("nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000),
        ("year 1", env(complaint_id="P1", occurred_at="0001-01-01T00:00:00+08:00")),
        ("year 9999", env(complaint_id="P2", occurred_at="9999-12-31T23:59:59-08:00")),
        ("lone surrogate", env(complaint_id="P3\ud800").replace(b"\\\\ud800", b"\\ud800")),
        ("NUL in an id", env(complaint_id="P4\u0000")),
        ("10,000-character id", env(complaint_id="P" * 10_000)),
        ("NUL in a region", env(complaint_id="P5", data={**data, "region": "huai\u0000an"})),
        ("5,000-character region", env(complaint_id="P6", data={**data, "region": "r" * 5_000})),
        ("5,000-character handler", env(complaint_id="P7", data={
            **data, "customer_tier": "vip", "responsible": {**data["responsible"], "handler": "h" * 5_000}})),
        ("not UTF-8", b'{"event_id": "\xff\xfe", "type": "complaint.received"}'),
        ("1.5 MB line", env(complaint_id="P8", data={**data, "summary": "x" * 1_500_000})),
        ("an empty message", b""),
    ]


def test_serve_survives_a_poison_message_of_every_kind_between_valid_ones(postgres_url, topics, tmp_path):
    env = topics(1)
    valid = november_history().lines
    poison = poison_messages()
    messages: list[bytes] = []
    for i, line in enumerate(valid):
        messages.append(line.encode())
        if i < len(poison):
            messages.append(poison[i][1])
    with serving(postgres_url, env, batch=7) as (proc,):
        producer = KafkaProducer(bootstrap_servers=env["RECOVERY_KAFKA_BOOTSTRAP"], acks="all",
                                 max_request_size=4_000_000)
        for m in messages:
            producer.send(env["RECOVERY_KAFKA_TOPIC"], value=m)
        producer.flush()
        producer.close()
        refused = len(poison) - 1  # the empty message is a blank line: counted nowhere as an envelope
        wait_for(lambda: ingested(postgres_url) == len(valid) + refused, procs=(proc,))
        wait_for(lambda: value(scrape(proc), "recovery_outbox_lag_events") == 0, 30, (proc,))
    live, reference = report(postgres_url), file_reference(tmp_path, valid)
    assert live["totals"] == reference["totals"] and live["penalties"] == reference["penalties"]
    assert live["ingest"]["rejected"] == reference["ingest"]["rejected"] + refused
    assert live["ingest"]["rejected_by_reason"]["invalid_event"] == reference["ingest"]["rejected_by_reason"][
        "invalid_event"] + refused
    dead = read_topic(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_DLQ_TOPIC"], 4 + refused)
    # the dead-letter topic carries each refused message's bytes as they came (the first 64 KiB of
    # one over the 1 MiB limit)
    sent = {m for _, m in poison}
    assert {m.value for m in dead if m.value in sent} >= {m for name, m in poison if name not in (
        "1.5 MB line", "an empty message")}


def _without_deadline_records(report_: dict) -> dict:
    """A report without what hangs on when the watcher recorded a miss, which SPEC §2.1 lets a
    delivery later than the allowed lateness change: deadline penalties, recorded misses, overdue."""
    def counters(row: dict) -> dict:
        return {k: v for k, v in row.items() if k not in ("deadline_missed", "overdue")}

    return {"totals": counters(report_["totals"]), "groups": [counters(g) for g in report_.get("groups", [])],
            "ingest": report_["ingest"]}


def _penalties_but_deadlines(url: str) -> list[tuple]:
    with Platform(url) as p, p.app.datastore.transaction(commit=False) as c:
        rows = p.app.dialect.rows(c, "SELECT complaint, reason, role, who, unit, at, amount_fen, points_centi"
                                     " FROM kpi_penalties WHERE reason <> 'deadline_missed'")
    return sorted(tuple(r.values()) for r in rows)


@pytest.mark.parametrize("watcher", ["event", "wall"])
def test_a_month_consumed_from_four_partitions_gives_the_file_ingests_figures(postgres_url, topics, tmp_path,
                                                                              watcher):
    """Serve starts only after the whole month is on the topic, so partitions are consumed in any
    order against each other (each complaint's own events in order, keyed by complaint_id)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    env = {**topics(4), "RECOVERY_WATCHER": watcher}
    lines = generate(seed=23, complaints=400, start=datetime(2026, 10, 1, tzinfo=ZoneInfo("Asia/Shanghai")), days=30)
    produce(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_TOPIC"], lines)
    with serving(postgres_url, env, batch=50) as (proc,):
        wait_for(lambda: ingested(postgres_url) == len(lines), procs=(proc,))
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    with Platform(reference_url) as p:
        p.ingest_lines(lines)
    if watcher == "wall":  # the file's clock stops at its last event; the live one is now
        with Platform(reference_url, watcher="wall") as p:
            p.service.tick()
            p.catch_up()
    for by in (None, "region", "unit", "tier", "category", "channel"):
        live, reference = (_report_by(url, by) for url in (postgres_url, reference_url))
        a, b = _without_deadline_records(live), _without_deadline_records(reference)
        assert a == b, (by, {k: (v, b["totals"][k]) for k, v in a["totals"].items() if b["totals"][k] != v})
    assert _penalties_but_deadlines(postgres_url) == _penalties_but_deadlines(reference_url)


def _report_by(url: str, by: str | None) -> dict:
    with Platform(url) as p:
        p.catch_up()
        return build_report(p.app.dialect, p.app.datastore, p.policy, None, None, by)


def test_a_file_ingest_beside_serve_both_finish_with_the_figures_of_one_after_the_other(postgres_url, topics,
                                                                                        tmp_path):
    """One writer at a time per store: `recovery ingest` runs while `serve` consumes, on one database."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    env = topics(2)
    lines = generate(seed=29, complaints=300, start=datetime(2026, 10, 1, tzinfo=ZoneInfo("Asia/Shanghai")), days=30)
    def to_kafka(line: str) -> bool:  # each complaint's events all one way; lines that are no JSON to Kafka
        try:
            return sum(map(ord, str(json.loads(line).get("complaint_id")))) % 2 == 0
        except (ValueError, AttributeError):
            return True

    by_kafka = [line for line in lines if to_kafka(line)]
    by_file = [line for line in lines if not to_kafka(line)]
    path = tmp_path / "file.jsonl"
    path.write_text("\n".join(by_file) + "\n")
    produce(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_TOPIC"], by_kafka)
    with serving(postgres_url, env, batch=20) as (proc,):
        ingest = subprocess.run([RECOVERY, "ingest", str(path), "--batch-size", "20"], capture_output=True, text=True,
                                env={**os.environ, "RECOVERY_DATABASE_URL": postgres_url}, timeout=300)
        assert ingest.returncode == 0, ingest.stderr
        wait_for(lambda: ingested(postgres_url) == len(lines), procs=(proc,))
    reference_url = f"sqlite:///{tmp_path / 'reference.db'}"
    with Platform(reference_url) as p:
        p.ingest_lines(by_kafka)
        p.ingest_lines(by_file)
    for by in (None, "region"):
        live, reference = (_report_by(url, by) for url in (postgres_url, reference_url))
        assert _without_deadline_records(live) == _without_deadline_records(reference), by
    assert _penalties_but_deadlines(postgres_url) == _penalties_but_deadlines(reference_url)


def test_case_events_keyed_by_case_id_give_rewards_and_a_bad_case_message_goes_to_the_dead_letter_topic(
        postgres_url, topics, tmp_path):
    """SPEC §7 on Kafka: case messages keyed by case_id on the inbound topic, over two partitions;
    the rewards of the file ingest, case events published with their SPEC types, the refusal on the DLQ."""
    from support.casefeed import case_env, selected, submitted

    env = topics(2)
    lines = [submitted(f"K{i}", f"2026-11-0{i}T10:00:00+08:00", author=f"h-{i}", unit="unit-A") for i in (1, 2, 3)]
    lines += [selected(f"K{i}", f"2026-11-2{i}T10:00:00+08:00") for i in (1, 2)]
    bad = case_env("bad-1", "selected", "K3", "2026-11-25T10:00:00+08:00", {"round": "2026-Q9"})
    lines.append(bad)
    producer = KafkaProducer(bootstrap_servers=env["RECOVERY_KAFKA_BOOTSTRAP"], acks="all")
    for line in lines:
        producer.send(env["RECOVERY_KAFKA_TOPIC"], key=json.loads(line)["case_id"].encode(), value=line.encode())
    producer.flush()
    producer.close()
    with serving(postgres_url, env, batch=5) as (proc,):
        wait_for(lambda: ingested(postgres_url) == len(lines), procs=(proc,))
        wait_for(lambda: value(scrape(proc), "recovery_outbox_lag_events") == 0, 30, (proc,))
    live, reference = report(postgres_url), file_reference(tmp_path, lines)
    assert live["rewards"] == reference["rewards"] and live["cases"] == reference["cases"]
    assert {(r["who"], r["amount"]) for r in live["rewards"]} == {("h-1", "100.00"), ("h-2", "100.00"),
                                                                  ("unit-A", "500.00")}
    assert live["ingest"]["rejected_by_reason"] == {"invalid_event": 1}

    (dead,) = read_topic(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_DLQ_TOPIC"], 1)
    assert dead.value.decode() == bad and dict(dead.headers)["reason"] == b"invalid_event"
    published = read_topic(env["RECOVERY_KAFKA_BOOTSTRAP"], env["RECOVERY_KAFKA_OUTBOUND_TOPIC"], 5)
    bodies = [json.loads(m.value) for m in published]
    assert sorted(b["type"] for b in bodies) == ["case.selected"] * 2 + ["case.submitted"] * 3
    assert all(m.key.decode() == b["case_id"] and "complaint_id" not in b for m, b in zip(published, bodies))
