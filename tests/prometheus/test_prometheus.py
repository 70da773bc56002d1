"""The dashboard and the alert rules against a real Prometheus scraping two exporters over one store
with hand-worked data (see test_metrics), one of them also reporting a real consumer's lag."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from eventsourcing.persistence import Tracking
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from support.histories import metrics_history
from support.kafka_broker import broker, create_topics
from support.prometheus_server import ensure_installed, prometheus

from app.http import MetricsServer
from app.platform import Platform
from consumers.lag import ConsumerLagCollector, OutboxLagCollector
from consumers.outbox import RELAY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "infra/grafana/dashboards/service-recovery.json"
RULES = ROOT / "infra/prometheus/rules.yml"
GRAFANA_VARIABLES = {"$month": "current", "$region": ".*", "$__rate_interval": "1m"}

# What the data fixes, by panel title and query (refId): labels of each series -> value.
EXPECTED = {
    ("Timely rate against its target", "A"): {("all",): 0.7778, ("huaian",): 0.6, ("xuzhou",): 1.0},
    ("Timely rate against its target", "B"): {(): 0.95},
    ("Rates of the month", "A"): {("all",): 0.2222},
    ("Rates of the month", "B"): {("all",): 0.3333},
    ("Rates of the month", "C"): {("all",): 0.375},
    ("Rates of the month", "D"): {("all",): 0.6667},
    ("Rates of the month", "E"): {("all",): 0.1667},
    ("Complaints received in the month", "A"): {("all",): 9, ("huaian",): 5, ("xuzhou",): 4},
    ("Open complaints by tier", "A"): {("premium",): 0, ("standard",): 2, ("vip",): 1},
    ("Overdue complaints by tier", "A"): {("premium",): 0, ("standard",): 1, ("vip",): 0},
    ("Penalties by unit (CNY)", "A"): {("huaian-cs",): 650, ("huaian-store-1",): 100, ("xuzhou-cs",): 0},
    ("Penalty points by unit", "A"): {("huaian-cs",): 0, ("huaian-store-1",): 0, ("xuzhou-cs",): 0.02},
    ("Compensation by unit (CNY)", "A"): {("huaian-cs",): 0, ("huaian-store-1",): 80},
    ("Time to resolution: median and 90th percentile by tier, all time", "A"):
        {("premium",): 1800, ("standard",): 21600, ("vip",): 14400},
    ("Inbound events per second by result", "A"): {("accepted",): 0, ("duplicate",): 0, ("rejected",): 0},
    ("Rejected inbound events by reason", "A"): {("invalid_event",): 1, ("invalid_transition",): 1,
                                                 ("over_authority",): 1, ("unknown_complaint",): 1},
    ("Lags", "A"): {(): 0},
    ("Lags", "B"): {("0", "lag-topic"): 3, ("1", "lag-topic"): 0},  # (partition, topic)
    ("Lags", "C"): {(): 0},
    ("Public opinion in outbreak or surge now", "A"): {(): 1},  # O2, still in outbreak
    ("Public-opinion conversion rate", "A"): {("all",): 0, ("huaian",): 0, ("xuzhou",): 0},
    ("Retention by resolution: ours against the survey", "B"):
        {("resolved",): 0.54, ("resolved_quickly",): 0.82, ("unresolved",): 0.19},
    ("Rewards of the month (CNY)", "A"): {("case_selected",): 200, ("organisation_award",): 500},
    ("Typical cases submitted against quota", "A"): {("dedicated_handler",): 2, ("department",): 1},
    ("Typical cases submitted against quota", "B"): {("dedicated_handler",): 4, ("department",): 1},
    ("Typical cases submitted against quota", "C"): {("dedicated_handler",): 2, ("department",): 0},
}
# Alerts the data fires (timely rate under 95%: overall and huaian, not xuzhou) and the ones it does not.
ALERTS = {
    "RecoveryTimelyRateUnderTarget": {("all",): 0.7778, ("huaian",): 0.6},
    "RecoveryOverdueBacklogRising": {},
    "RecoveryPublicOpinionActive": {("huaian",): 1},
    "RecoveryProjectionLagHigh": {},
    "RecoveryReadModelFault": {},
    "RecoveryOutboxLagHigh": {},
    "RecoveryConsumerLagHigh": {},
    "RecoveryConsumerStalled": {},
    "RecoveryTargetDown": {},
}


def substitute(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def series(result: list[dict]) -> dict[tuple[str, ...], float]:
    return {tuple(v for k, v in sorted(r["metric"].items())): round(float(r["value"][1]), 4) for r in result}


def real_consumer_lag() -> ConsumerLagCollector:
    """A consumer that applied 2 of the 5 messages in partition 0 of a real broker, and has seen
    partition 1 empty: lag 3 and 0."""
    lag = ConsumerLagCollector()
    with broker() as bootstrap:
        create_topics(bootstrap, {"lag-topic": 2})
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        for i in range(5):
            producer.send("lag-topic", value=f"m{i}".encode(), partition=0)
        producer.flush()
        producer.close()
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                 auto_offset_reset="earliest", group_id=None)
        partitions = [TopicPartition("lag-topic", 0), TopicPartition("lag-topic", 1)]
        consumer.assign(partitions)
        got = 0
        deadline = time.monotonic() + 30
        while got < 2 and time.monotonic() < deadline:
            got += sum(len(r) for r in consumer.poll(timeout_ms=500, max_records=2 - got).values())
        consumer.pause(partitions[0])
        while time.monotonic() < deadline:
            lag.update(consumer)
            if len(lag.snapshot) == 2:
                break
            consumer.poll(timeout_ms=200)
        consumer.close()
    assert got == 2
    return lag


@pytest.fixture(scope="module")
def exporters(tmp_path_factory):
    from support.histories import SEEN_AT

    from domain import clock

    lag = real_consumer_lag()  # measured now, on the wall clock: not stalled
    previous = clock.use_clock(lambda: SEEN_AT)
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'recovery.db'}"
    platform = Platform(url)
    platform.ingest_lines(metrics_history(), batch_size=7)
    # Two replicas over one store (the same store-derived values twice); one owns the partitions.
    first = MetricsServer(platform, port=0).start()
    second = MetricsServer(platform, port=0)
    second.registry.register(lag)
    # As serve's: the relay has published everything recorded.
    platform.app.recorder.insert_tracking(Tracking(RELAY, platform.app.recorder.max_notification_id()))
    second.registry.register(OutboxLagCollector(platform.app))
    second.start()
    try:
        yield [f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
    finally:
        first.stop()
        second.stop()
        platform.close()
        clock.use_clock(previous)


@pytest.fixture(scope="module")
def prom(exporters):
    with prometheus(exporters, rule_files=[RULES]) as server:
        server.wait_for('count(up{job="service-recovery"} == 1) == 2')
        # rate() needs two samples per series; alert rules one evaluation.
        server.wait_for("min(count_over_time(recovery_timely_ratio_target[1m])) >= 3")
        server.wait_for('ALERTS{alertname="RecoveryTimelyRateUnderTarget"}')
        yield server


def dashboard_targets() -> list[tuple[str, str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["refId"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]


def test_every_dashboard_query_returns_the_expected_series(prom):
    targets = dashboard_targets()
    assert set(EXPECTED) <= {(title, ref) for title, ref, _ in targets}
    for title, ref, expr in targets:
        got = series(prom.query(substitute(expr)))
        assert got, f"{title} {ref}: no series for {substitute(expr)}"
        for labels, expected in EXPECTED.get((title, ref), {}).items():
            assert got.get(labels) == pytest.approx(expected, abs=1e-4), (title, ref, labels, got)
        if (title, ref) in EXPECTED:
            assert set(got) == set(EXPECTED[(title, ref)]) or title.startswith(("Rates", "Timely")), (title, got)


def test_the_region_variable_lists_the_regions(prom):
    dashboard = json.loads(DASHBOARD.read_text())
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "region"]
    assert variable["definition"] == 'label_values(recovery_received_complaints{region!="all"}, region)'
    values = prom.api("label/region/values", **{"match[]": 'recovery_received_complaints{region!="all"}'})
    assert values == ["huaian", "xuzhou"]


def test_every_alert_rule_evaluates_and_fires_where_the_data_says(prom):
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {r["alert"]: r["expr"] for group in groups for r in group["rules"]}
    assert set(alerts) == set(ALERTS)
    for name, expr in alerts.items():
        assert series(prom.query(expr)) == pytest.approx(ALERTS[name]), name
    loaded = prom.api("rules")["groups"]
    assert all(r["health"] == "ok" for g in loaded for r in g["rules"]), loaded
    active = {(a["labels"]["alertname"], a["labels"].get("region")): a["state"] for a in prom.api("alerts")["alerts"]}
    assert active == {("RecoveryPublicOpinionActive", "huaian"): "firing",
                      ("RecoveryTimelyRateUnderTarget", "all"): "pending",
                      ("RecoveryTimelyRateUnderTarget", "huaian"): "pending"}


def test_promtool_accepts_the_rules_config_and_rule_unit_tests():
    _, promtool = ensure_installed()
    folder = ROOT / "infra/prometheus"
    for args in (["check", "rules", "rules.yml"], ["check", "config", "prometheus.yml"],
                 ["test", "rules", "rules.test.yml"]):
        done = subprocess.run([promtool, *args], cwd=folder, capture_output=True, text=True)
        assert done.returncode == 0, (args, done.stdout, done.stderr)


def test_grafana_provisioning_loads_the_dashboard_with_the_provisioned_datasource():
    grafana = ROOT / "infra/grafana"
    (source,) = yaml.safe_load((grafana / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    (provider,) = yaml.safe_load((grafana / "provisioning/dashboards/service-recovery.yml").read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]
    dashboard = json.loads(DASHBOARD.read_text())
    # Every panel, query and variable reads the `datasource` variable, which defaults to the
    # provisioned uid; a UI import asks for a Prometheus through the DS_PROMETHEUS input instead.
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    chooser = variables["datasource"]
    assert chooser["type"] == "datasource" and chooser["query"] == "prometheus" == source["type"]
    assert chooser["current"]["value"] == source["uid"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]  # a row only groups the panels below it
    refs = [p["datasource"] for p in panels] + [t["datasource"] for p in panels for t in p["targets"]] + [
        v["datasource"] for v in variables.values() if "datasource" in v]
    assert {(r["type"], r["uid"]) for r in refs} == {("prometheus", "${datasource}")}
    (input_,) = dashboard["__inputs"]
    assert (input_["name"], input_["type"], input_["pluginId"]) == ("DS_PROMETHEUS", "datasource", "prometheus")
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
