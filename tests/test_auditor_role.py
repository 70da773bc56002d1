"""The auditors' PostgreSQL role (infra/postgres/auditor.sql) reads everything and writes nothing."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from test_scenarios import november_history

from app.platform import Platform

pytestmark = pytest.mark.postgres
SQL = Path(__file__).resolve().parents[1] / "infra/postgres/auditor.sql"


@pytest.fixture
def auditor(postgres_url):
    platform = Platform(postgres_url)
    platform.ingest_lines(november_history().lines)
    platform.close()
    # Roles are cluster-wide: a name of the test's own, dropped afterwards.
    group, login = f"recovery_auditor_{uuid.uuid4().hex[:8]}", f"auditor_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(SQL.read_text().replace("recovery_auditor", group))
        conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE {group}")
        conn.execute(f"ALTER ROLE {login} SET default_transaction_read_only = on")
    url = urlunparse(urlparse(postgres_url)._replace(netloc=f"{login}@{urlparse(postgres_url).hostname}:"
                                                             f"{urlparse(postgres_url).port or 5432}"))
    try:
        yield url
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            for role in (login, group):
                conn.execute(f"DROP OWNED BY {role}")
                conn.execute(f"DROP ROLE {role}")


def test_the_auditor_role_reads_the_log_and_the_read_models(auditor):
    with psycopg.connect(auditor) as conn:
        assert conn.execute("SELECT COUNT(*) FROM recovery_events").fetchone()[0] == 38
        assert conn.execute("SELECT COUNT(*) FROM recovery_chain").fetchone()[0] == 38
        assert conn.execute("SELECT SUM(received) FROM kpi_daily WHERE dim = 'all'").fetchone()[0] == 9
        assert conn.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"


@pytest.mark.parametrize("statement", [
    "DELETE FROM recovery_events",
    "UPDATE recovery_chain SET hash = 'x'",
    "INSERT INTO kpi_ingest VALUES ('t', 'accepted', '', 1)",
    "TRUNCATE kpi_daily",
    "DROP TABLE kpi_penalties",
    "CREATE TABLE auditor_notes (x int)",
])
def test_the_auditor_role_cannot_write(auditor, statement):
    with psycopg.connect(auditor) as conn:
        with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.ReadOnlySqlTransaction)):
            conn.execute(statement)
    with psycopg.connect(auditor, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")  # even without the read-only default
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


@pytest.mark.parametrize("table", ["recovery_keys", "recovery_secrets"])
def test_the_auditor_role_cannot_read_key_material(auditor, table):
    with psycopg.connect(auditor) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SELECT * FROM {table}")


def test_auditors_run_the_audit_commands_read_only(auditor, monkeypatch, capsys, tmp_path):
    import json

    from app.cli import main

    monkeypatch.setenv("RECOVERY_DATABASE_URL", auditor)
    monkeypatch.setenv("RECOVERY_READ_ONLY", "1")
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("INTACT: 38 events")
    assert main(["report", "--format", "json", "--as-of", "2030-01-01T00:00:00+08:00"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["received"] == 9
    assert main(["report", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["received"] == 9
    assert main(["history", "C1", "--format", "json"]) == 0
    c1 = json.loads(capsys.readouterr().out)
    assert c1["customer_id"] == "[sealed]" and c1["state"]["status"] == "closed"  # keys are not theirs
    assert main(["export", "--output", str(tmp_path / "all.jsonl")]) == 0
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 38
