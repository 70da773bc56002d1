"""The auditors' PostgreSQL role (infra/postgres/auditor.sql) reads everything and writes nothing."""

from __future__ import annotations

import contextlib
import io
import uuid
from pathlib import Path
from unittest import mock
from urllib.parse import urlparse, urlunparse

import psycopg
import pytest
from support.histories import november_history

from app.platform import Platform

pytestmark = pytest.mark.postgres
SQL = Path(__file__).resolve().parents[2] / "infra/postgres/auditor.sql"


def login_url(url: str, login: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(netloc=f"{login}@{parts.hostname}:{parts.port or 5432}"))


def run_script(url: str, group: str) -> None:
    """auditor.sql as a superuser, for a group role of the test's own (roles are cluster-wide)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SQL.read_text().replace("recovery_auditor", group))


def readme_login(url: str, login: str, group: str) -> None:
    """An auditor's login made as README and auditor.sql's header say."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {login} LOGIN IN ROLE {group}")
        conn.execute(f"ALTER ROLE {login} SET default_transaction_read_only = on")
        conn.execute(f"ALTER ROLE {login} SET statement_timeout = '5min'")
        conn.execute(f"ALTER ROLE {login} SET idle_in_transaction_session_timeout = '1min'")


@pytest.fixture
def roles(postgres_url):
    """Names for the roles a test makes (the first is the auditors' group), dropped afterwards."""
    made: list[str] = [f"recovery_auditor_{uuid.uuid4().hex[:8]}"]
    yield made
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for role in reversed(made):
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")  # the service's database
                conn.execute(f"DROP OWNED BY {role}")
                conn.execute(f"DROP ROLE {role}")


@pytest.fixture
def auditor(postgres_url, roles):
    platform = Platform(postgres_url)
    platform.ingest_lines(november_history().lines)
    platform.close()
    group, login = roles[0], f"auditor_{uuid.uuid4().hex[:8]}"
    roles.append(login)
    run_script(postgres_url, group)
    readme_login(postgres_url, login, group)
    return login_url(postgres_url, login)


def test_the_auditor_role_reads_the_log_and_the_read_models(auditor):
    with psycopg.connect(auditor) as conn:
        # 38 complaint events and refusals, and the first policy version
        assert conn.execute("SELECT COUNT(*) FROM recovery_events").fetchone()[0] == 39
        assert conn.execute("SELECT COUNT(*) FROM recovery_chain").fetchone()[0] == 39
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
    assert capsys.readouterr().out.startswith("INTACT: 39 events")
    assert main(["report", "--format", "json", "--as-of", "2030-01-01T00:00:00+08:00"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["received"] == 9
    assert main(["report", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["received"] == 9
    assert main(["history", "C1", "--format", "json"]) == 0
    c1 = json.loads(capsys.readouterr().out)
    assert c1["customer_id"] == "[sealed]" and c1["state"]["status"] == "closed"  # keys are not theirs
    assert main(["export", "--output", str(tmp_path / "all.jsonl")]) == 0
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 39


@pytest.mark.parametrize("call", ["pg_advisory_lock(7270128)", "pg_advisory_xact_lock(7270128)",
                                  "pg_try_advisory_lock(7270128)", "pg_advisory_lock_shared(1, 2)",
                                  "pg_try_advisory_xact_lock_shared(1, 2)"])
def test_the_auditor_role_cannot_take_advisory_locks(auditor, call):
    """The read model's writer lock (7270128) and the relay's are the service's alone."""
    with psycopg.connect(auditor) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for function"):
            conn.execute(f"SELECT {call}")


def test_the_auditor_role_cannot_create_temporary_tables(auditor):
    with psycopg.connect(auditor, autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")  # even without the read-only default
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="temporary tables"):
            conn.execute("CREATE TEMP TABLE auditor_scratch (x int)")


def test_auditor_logins_have_time_limits(auditor):
    with psycopg.connect(auditor) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "5min"
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] == "1min"


def test_running_the_script_again_sets_time_limits_on_logins_without_them(auditor, postgres_url, roles):
    group, bare, chosen = roles[0], f"auditor_{uuid.uuid4().hex[:8]}", f"auditor_{uuid.uuid4().hex[:8]}"
    roles.extend([bare, chosen])
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {bare} LOGIN IN ROLE {group}")
        conn.execute(f"CREATE ROLE {chosen} LOGIN IN ROLE {group}")
        conn.execute(f"ALTER ROLE {chosen} SET statement_timeout = '30s'")
    run_script(postgres_url, group)
    for login, statement in ((bare, "5min"), (chosen, "30s")):  # a limit set on the login is kept
        with psycopg.connect(login_url(postgres_url, login)) as conn:
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == statement
            assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] == "1min"


def test_the_service_still_ingests_and_reports_after_the_script(postgres_url, roles):
    """As the database's owner without superuser rights, who needs the advisory locks (the read
    model's writer lock) and temporary tables (COPY staging of 200 rows or more)."""
    import json

    from support.feed import Feed

    from app.cli import main

    owner = f"recovery_service_{uuid.uuid4().hex[:8]}"
    roles.append(owner)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {owner} LOGIN")
        conn.execute(f"ALTER DATABASE {urlparse(postgres_url).path.lstrip('/')} OWNER TO {owner}")
    service = login_url(postgres_url, owner)
    Platform(service).close()  # creates the tables, as the service
    run_script(postgres_url, roles[0])
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT has_function_privilege('public', 'pg_advisory_xact_lock(bigint)', 'EXECUTE'),"
                            " has_database_privilege('public', current_database(), 'TEMPORARY')").fetchone() \
            == (False, False)
    feed = Feed()
    for n in range(250):
        feed.received(f"C{n}", "2026-11-02T09:00:00+08:00", customer=f"cust-{n}")
    with Platform(service) as platform:
        platform.ingest_lines(feed.lines)
    with psycopg.connect(service) as conn:  # the service's own session may stage in a temporary table
        conn.execute("CREATE TEMP TABLE service_scratch (x int)")
        assert conn.execute("SELECT pg_try_advisory_xact_lock(7270128)").fetchone()[0] is True
    with mock.patch.dict("os.environ", {"RECOVERY_DATABASE_URL": service}):
        with contextlib.redirect_stdout(io.StringIO()) as out:
            assert main(["report", "--format", "json"]) == 0
    assert json.loads(out.getvalue())["totals"]["received"] == 250
