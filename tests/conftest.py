"""Shared fixtures. PostgreSQL tests run against a real server: RECOVERY_TEST_POSTGRES_URL when set,
else 127.0.0.1:5432 when a server answers there, else a throwaway server started from the
PostgreSQL binaries on this machine. When none can be had the tests fail; they are never skipped."""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest

from app.localdb import answers
from domain.policy import load_policy

# Test histories are dated where the story needs them, some after today: they are replays, so the
# future-time guard (SPEC §2, max_future_minutes) is lifted for them. Its own tests use the defaults.
REPLAY_FUTURE_MINUTES = 100_000_000

# Tests are grouped by what they need, one folder per layer; the folder gives the marker (`pytest -m
# kafka` or `pytest tests/kafka` runs one layer):
#   unit/         nothing but an embedded SQLite file at most: no server, broker or Prometheus (`make test-unit`)
#   integration/  the store and its projections, on SQLite and PostgreSQL (store_url), promtool at most
#   kafka/        a real Kafka-protocol broker (tansu), with PostgreSQL
#   prometheus/   a real Prometheus scraping real exporters, with the broker
#   end_to_end/   the command line and `make up` as subprocesses, a store of the previous release
# A test marked with a layer itself keeps it: a file with both kinds lives where its heaviest need is
# and marks its server-free tests `unit` (integration/test_eventsourcing_contract.py).
# `postgres` is orthogonal: every test that asks for a PostgreSQL fixture (or the PostgreSQL half of
# store_url) carries it, whatever its folder.
LAYERS = {"unit": "unit", "integration": "integration", "kafka": "kafka", "prometheus": "prometheus",
          "end_to_end": "e2e"}

SERVER_FIXTURES = {"postgres_server", "postgres_url", "store_url"}


def _layer(item: pytest.Item) -> str:
    folder = item.path.relative_to(Path(__file__).parent).parts[0]
    if folder not in LAYERS:
        raise pytest.UsageError(f"{item.nodeid}: tests live in one of the layer folders {sorted(LAYERS)}")
    return LAYERS[folder]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        layers = {mark.name for mark in item.iter_markers()} & set(LAYERS.values())
        if not layers:
            layer = _layer(item)
            item.add_marker(layer)
            layers = {layer}
        fixtures = set(getattr(item, "fixturenames", ()))
        if "unit" in layers and SERVER_FIXTURES & fixtures:
            raise pytest.UsageError(f"{item.nodeid} needs PostgreSQL: a `unit` test may not ask for "
                                    f"{', '.join(sorted(SERVER_FIXTURES & fixtures))}")
        if {"postgres_server", "postgres_url"} & fixtures:
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def replay_policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shipped = (Path(__file__).parent.parent / "domain" / "policy.toml").read_text(encoding="utf-8")
    lifted, n = re.subn(r"(?m)^max_future_minutes = \d+$", f"max_future_minutes = {REPLAY_FUTURE_MINUTES}", shipped)
    assert n == 1, "domain/policy.toml has no max_future_minutes line to lift"
    path = tmp_path_factory.mktemp("policy") / "replay-policy.toml"
    path.write_text(lifted, encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _replay_policy(replay_policy_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVERY_POLICY_FILE", str(replay_policy_file))


@pytest.fixture(scope="session")
def policy(replay_policy_file: Path):
    return load_policy(replay_policy_file)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _throwaway_server() -> tuple[str, callable]:
    from app.binaries import CannotStart
    from app.localdb import LocalServer

    folder = Path(tempfile.mkdtemp(prefix="recovery-pg-"))
    try:
        server = LocalServer(folder, _free_port())
        server.start()
    except CannotStart as e:
        pytest.fail(f"no PostgreSQL: set RECOVERY_TEST_POSTGRES_URL, run a server on 127.0.0.1:5432, or {e}")

    def stop() -> None:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)

    return server.url, stop


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    url = os.environ.get("RECOVERY_TEST_POSTGRES_URL")
    if url:
        if not answers(url):
            pytest.fail(f"RECOVERY_TEST_POSTGRES_URL does not answer: {url}")
        yield url
        return
    local = "postgresql://postgres@127.0.0.1:5432/postgres"
    if answers(local):
        yield local
        return
    url, stop = _throwaway_server()
    try:
        yield url
    finally:
        stop()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh database for one test, dropped afterwards."""
    name = f"recovery_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlparse(postgres_server)
    url = urlunparse(parts._replace(path=f"/{name}"))
    try:
        yield url
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'recovery.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on the embedded SQLite file and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh store of each backend for the command line: RECOVERY_DATABASE_URL names it, and refused
    lines go to tmp_path/dead.jsonl. Returns its URL. A module that needs it filled overrides it
    (`def store(store): ...`)."""
    monkeypatch.setenv("RECOVERY_DATABASE_URL", store_url)
    monkeypatch.setenv("RECOVERY_DEAD_LETTER_FILE", str(tmp_path / "dead.jsonl"))
    return store_url


@pytest.fixture
def platform(store_url, policy):
    """The composition root over a fresh store of each backend, with the tests' policy."""
    from app.platform import Platform

    with Platform(store_url, policy) as p:
        yield p
