"""Every RECOVERY_* setting, read from the environment once, at the entrypoint, and passed down.
A bad value fails with one line that names the setting (exit 2)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumers.settings import KafkaSettings
from infra.config import CACHED_COMPLAINTS
from infra.store import DEFAULT_DATABASE_URL

PREFIX = "RECOVERY_"
KAFKA_OPTION_PREFIX = "RECOVERY_KAFKA_OPT_"  # passed through to kafka-python, lower-cased
RELAY_MODES = ("process", "inline", "off")


class Settings(BaseSettings):
    # An empty variable means the default, as `os.environ.get(...) or default` did.
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, frozen=True, extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    policy_file: str | None = None
    dead_letter_file: Path | None = None
    read_only: bool = False
    lock_timeout_seconds: float = 10.0
    cached_complaints: int = CACHED_COMPLAINTS
    metrics_port: int | None = 9477  # None: `off`
    metrics_host: str = "0.0.0.0"
    ready_max_lag_seconds: float = 60.0
    ready_timeout_seconds: float = 2.0
    scrape_timeout_seconds: float = 10.0
    relay: str | None = None  # None: by the database (app/relay.py)
    kafka_bootstrap: str = KafkaSettings.bootstrap
    kafka_topic: str = KafkaSettings.topic
    kafka_dlq_topic: str = KafkaSettings.dlq_topic
    kafka_outbound_topic: str = KafkaSettings.outbound_topic
    kafka_group: str = KafkaSettings.group
    batch_size: int = KafkaSettings.batch_size
    batch_linger_ms: int = KafkaSettings.linger_ms
    watcher: str = KafkaSettings.watcher
    kafka_client_options: dict[str, str] = {}  # from RECOVERY_KAFKA_OPT_<option> (from_env)
    # `recovery up` (make up): the live stack on this machine. Ports: 0 for any free one.
    run_dir: Path = Path(".run")
    live_database: str = "recovery_live"
    live_kafka_port: int = 9092
    live_prometheus_port: int = 9090
    live_postgres_port: int = 5433
    live_scrape_interval: str = "5s"
    live_rate: float = 20.0
    live_speed: float = 60.0

    @classmethod
    def from_env(cls) -> Settings:
        """The one place that reads the environment; ValueError names the first bad setting."""
        options = {key.removeprefix(KAFKA_OPTION_PREFIX).lower(): value for key, value in os.environ.items()
                   if key.startswith(KAFKA_OPTION_PREFIX)}
        try:
            return cls(kafka_client_options=options)
        except ValidationError as error:
            raise ValueError(one_line(error)) from None

    def kafka(self) -> KafkaSettings:
        return KafkaSettings(
            bootstrap=self.kafka_bootstrap, topic=self.kafka_topic, dlq_topic=self.kafka_dlq_topic,
            outbound_topic=self.kafka_outbound_topic, group=self.kafka_group, batch_size=self.batch_size,
            linger_ms=self.batch_linger_ms, watcher=self.watcher, client_options=dict(self.kafka_client_options))

    @field_validator("read_only", mode="before")
    @classmethod
    def _yes(cls, value: Any) -> Any:
        # Anything but 1/yes/true is off, as it always was: no error for RECOVERY_READ_ONLY=0 or no.
        return value.lower() in ("1", "yes", "true") if isinstance(value, str) else value

    @field_validator("cached_complaints", "batch_size", "batch_linger_ms", "live_kafka_port", "live_prometheus_port",
                     "live_postgres_port", mode="before")
    @classmethod
    def _whole(cls, value: Any, info: ValidationInfo) -> Any:
        name = env_name(info)
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"{name} must be a whole number, got {value!r}") from None
        least = 1 if info.field_name == "cached_complaints" else 0 if "port" in (info.field_name or "") else None
        if least is not None and number < least:
            raise ValueError(f"{name} must be at least {least}, got {number}")
        return number

    @field_validator("ready_max_lag_seconds", "ready_timeout_seconds", "scrape_timeout_seconds", "live_rate",
                     "live_speed", mode="before")
    @classmethod
    def _number(cls, value: Any, info: ValidationInfo) -> Any:
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{env_name(info)} must be a number, got {value!r}") from None

    @field_validator("lock_timeout_seconds", mode="before")
    @classmethod
    def _seconds(cls, value: Any, info: ValidationInfo) -> Any:
        try:
            seconds = float(value)
        except ValueError:
            seconds = 0.0
        if not seconds > 0:
            raise ValueError(f"{env_name(info)} must be a number of seconds above 0, got {value!r}")
        return seconds

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _port(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            if value.lower() == "off":
                return None
            if not value.isdigit():
                raise ValueError(f"{env_name(info)} must be a port number or 'off', got {value!r}")
            return int(value)
        return value

    @field_validator("relay", mode="before")
    @classmethod
    def _relay(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None and value not in RELAY_MODES:
            raise ValueError(f"{env_name(info)} must be one of {', '.join(RELAY_MODES)}, got {value!r}")
        return value


def env_name(info: ValidationInfo) -> str:
    return f"{PREFIX}{(info.field_name or '').upper()}"


def one_line(error: ValidationError) -> str:
    """Our validators' own message; else pydantic's, prefixed with the variable's name."""
    first = error.errors()[0]
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, ValueError):
        return str(cause)
    name = PREFIX + "_".join(str(part) for part in first["loc"]).upper()
    return f"{name}: {first['msg']}, got {first.get('input')!r}"
