"""The RECOVERY_* settings: read once (app/settings.py), defaults kept, and a bad value named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import EXIT_UNUSABLE, main
from app.settings import Settings


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("RECOVERY_") and not n.startswith("RECOVERY_TEST_")]:
        monkeypatch.delenv(name)


def test_the_defaults_are_those_the_readme_lists() -> None:
    s = Settings.from_env()
    assert (s.database_url, s.policy_file, s.dead_letter_file, s.read_only) == ("sqlite:///./recovery.db", None,
                                                                                None, False)
    assert (s.lock_timeout_seconds, s.cached_complaints, s.metrics_port, s.metrics_host) == (10.0, 20_000, 9477,
                                                                                             "0.0.0.0")
    assert (s.ready_max_lag_seconds, s.ready_timeout_seconds, s.scrape_timeout_seconds, s.relay) == (60, 2, 10, None)
    kafka = s.kafka()
    assert (kafka.bootstrap, kafka.topic, kafka.dlq_topic, kafka.outbound_topic, kafka.group) == (
        "localhost:9092", "complaint-events", "complaint-events.dlq", "service-recovery.events", "service-recovery")
    assert (kafka.batch_size, kafka.linger_ms, kafka.watcher, kafka.client_options) == (500, 200, "wall", {})


def test_values_from_the_environment_and_empty_ones_mean_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"DATABASE_URL": "postgresql://db/x", "DEAD_LETTER_FILE": "/tmp/dead.jsonl",
                        "READ_ONLY": "yes", "METRICS_PORT": "off", "BATCH_SIZE": "40", "KAFKA_TOPIC": "t",
                        "KAFKA_OPT_SECURITY_PROTOCOL": "SASL_SSL", "RELAY": "off", "POLICY_FILE": ""}.items():
        monkeypatch.setenv(f"RECOVERY_{name}", value)
    s = Settings.from_env()
    assert (s.database_url, s.dead_letter_file, s.read_only, s.metrics_port, s.relay, s.policy_file) == (
        "postgresql://db/x", Path("/tmp/dead.jsonl"), True, None, "off", None)
    kafka = s.kafka()
    assert (kafka.batch_size, kafka.topic, kafka.client_options) == (40, "t", {"security_protocol": "SASL_SSL"})
    monkeypatch.setenv("RECOVERY_READ_ONLY", "0")  # anything but 1/yes/true is off, never an error
    assert Settings.from_env().read_only is False


@pytest.mark.parametrize(("name", "value", "message"), [
    ("RECOVERY_BATCH_SIZE", "x", "RECOVERY_BATCH_SIZE must be a whole number, got 'x'"),
    ("RECOVERY_BATCH_LINGER_MS", "1.5", "RECOVERY_BATCH_LINGER_MS must be a whole number, got '1.5'"),
    ("RECOVERY_CACHED_COMPLAINTS", "many", "RECOVERY_CACHED_COMPLAINTS must be a whole number, got 'many'"),
    ("RECOVERY_CACHED_COMPLAINTS", "0", "RECOVERY_CACHED_COMPLAINTS must be at least 1, got 0"),
    ("RECOVERY_LOCK_TIMEOUT_SECONDS", "0", "RECOVERY_LOCK_TIMEOUT_SECONDS must be a number of seconds above 0, "
                                           "got '0'"),
    ("RECOVERY_LOCK_TIMEOUT_SECONDS", "soon", "RECOVERY_LOCK_TIMEOUT_SECONDS must be a number of seconds above 0, "
                                              "got 'soon'"),
    ("RECOVERY_METRICS_PORT", "http", "RECOVERY_METRICS_PORT must be a port number or 'off', got 'http'"),
    ("RECOVERY_READY_MAX_LAG_SECONDS", "a", "RECOVERY_READY_MAX_LAG_SECONDS must be a number, got 'a'"),
    ("RECOVERY_READY_TIMEOUT_SECONDS", "b", "RECOVERY_READY_TIMEOUT_SECONDS must be a number, got 'b'"),
    ("RECOVERY_SCRAPE_TIMEOUT_SECONDS", "c", "RECOVERY_SCRAPE_TIMEOUT_SECONDS must be a number, got 'c'"),
    ("RECOVERY_RELAY", "sideways", "RECOVERY_RELAY must be one of process, inline, off, got 'sideways'"),
])
def test_a_bad_value_is_one_line_naming_the_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                                    message: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as raised:
        Settings.from_env()
    assert str(raised.value) == message


def test_a_bad_setting_ends_any_command_with_that_line_and_exit_2(monkeypatch, capsys, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECOVERY_BATCH_SIZE", "x")
    assert main(["report"]) == EXIT_UNUSABLE
    assert capsys.readouterr().err == "recovery: RECOVERY_BATCH_SIZE must be a whole number, got 'x'\n"
    assert not (tmp_path / "recovery.db").exists()
