"""`recovery audit verify` names every event altered, deleted, inserted or moved directly in the
database, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

import pytest
from support.histories import november_history

from app.cli import main
from app.platform import Platform


@pytest.fixture
def store(store):
    platform = Platform(store)
    platform.ingest_lines(november_history().lines, batch_size=5)  # several writes, several blocks
    yield platform
    platform.close()


def verify(capsys) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["audit", "verify", "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def position(platform: Platform, topic_part: str, nth: int = 0) -> tuple[int, str, int]:
    """(log position, aggregate id, version) of the nth event whose topic contains `topic_part`."""
    found = [n for n in platform.app.recorder.select_notifications(start=1, limit=1000) if topic_part in n.topic]
    n = found[nth]
    return n.id, n.originator_id.hex, n.originator_version


def sql(platform: Platform, statement: str, params: tuple = ()) -> None:
    # Straight into the tables, as someone with database access would.
    with platform.app.datastore.transaction(commit=True) as c:
        platform.app.dialect.execute(c, statement, params)


def pos(platform: Platform) -> str:
    return "notification_id" if platform.app.dialect.postgres else "rowid"


def events(platform: Platform) -> str:
    return platform.app.recorder.events_table_name


def test_an_untouched_store_verifies(store, capsys):
    code, out = verify(capsys)
    assert code == 0 and out["ok"] and out["problems"] == []
    assert out["events"] == 39 and out["blocks"] > 5 and len(out["head"]) == 64  # with the policy version
    capsys.readouterr()
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out.startswith("INTACT: 39 events")


def test_an_altered_event_is_named(store, capsys):
    at, aggregate, version = position(store, "Compensated")
    with store.app.datastore.transaction(commit=False) as c:
        state = bytes(store.app.dialect.rows(c, f"SELECT state FROM {events(store)} WHERE {pos(store)} = ?",
                                             (at,))[0]["state"])
    assert b"80.00" in state
    sql(store, f"UPDATE {events(store)} SET state = ? WHERE {pos(store)} = ?", (state.replace(b"80.00", b"8.00"), at))
    code, out = verify(capsys)
    assert code == 1
    assert out["problems"] == [{"problem": "altered", "notification_id": at, "aggregate": aggregate, "version": version,
                                "detail": "stored event does not match the hash recorded when it was written"}]


def test_a_deleted_event_is_named(store, capsys):
    at, aggregate, version = position(store, "Resolved", 1)
    sql(store, f"DELETE FROM {events(store)} WHERE {pos(store)} = ?", (at,))
    code, out = verify(capsys)
    assert code == 1
    assert [(p["problem"], p["aggregate"], p["version"]) for p in out["problems"]] == [("deleted", aggregate, version)]


def test_the_newest_event_deleted_with_its_hash_is_still_found(store, capsys):
    at, aggregate, version = position(store, "Escalated", 1)  # C9's, the last event of its complaint
    sql(store, f"DELETE FROM {events(store)} WHERE {pos(store)} = ?", (at,))
    sql(store, "DELETE FROM recovery_chain WHERE notification_id = ?", (at,))
    code, out = verify(capsys)
    assert code == 1 and [p["problem"] for p in out["problems"]] == ["deleted"]
    assert out["problems"][0]["notification_id"] <= at


def test_an_inserted_event_is_named(store, capsys):
    at, aggregate, version = position(store, "Closed", 2)
    with store.app.datastore.transaction(commit=False) as c:
        row = store.app.dialect.rows(c, f"SELECT * FROM {events(store)} WHERE {pos(store)} = ?", (at,))[0]
    columns = "originator_id, originator_version, topic, state"
    sql(store, f"INSERT INTO {events(store)} ({columns}) VALUES (?, ?, ?, ?)",
        (row["originator_id"], 99, row["topic"], row["state"]))
    code, out = verify(capsys)
    assert code == 1
    assert [(p["problem"], p["aggregate"], p["version"]) for p in out["problems"]] == [("inserted", aggregate, 99)]


def test_reordered_events_are_named(store, capsys):
    first, a, _ = position(store, "Received", 2)
    second, b, _ = position(store, "Received", 5)
    for old, new in ((first, -1), (second, first), (-1, second)):
        sql(store, f"UPDATE {events(store)} SET {pos(store)} = ? WHERE {pos(store)} = ?", (new, old))
    code, out = verify(capsys)
    assert code == 1
    assert {(p["problem"], p["notification_id"], p["aggregate"]) for p in out["problems"]} == {
        ("reordered", first, b), ("reordered", second, a)}


def test_a_head_kept_from_an_earlier_audit_must_still_be_in_the_chain(store, capsys):
    _, out = verify(capsys)
    head = out["head"]
    capsys.readouterr()
    assert main(["audit", "verify", "--expect-head", head]) == 0
    # The newest write removed whole, with its hashes and its block: only the kept head tells.
    with store.app.datastore.transaction(commit=False) as c:
        last = store.app.dialect.rows(c, "SELECT * FROM recovery_log_chain ORDER BY last_id DESC LIMIT 1")[0]
    sql(store, f"DELETE FROM {events(store)} WHERE {pos(store)} >= ?", (last["first_id"],))
    sql(store, "DELETE FROM recovery_chain WHERE notification_id >= ?", (last["first_id"],))
    sql(store, "DELETE FROM recovery_log_chain WHERE last_id = ?", (last["last_id"],))
    assert main(["audit", "verify"]) == 0  # consistent as far as the store alone can tell
    capsys.readouterr()
    assert main(["audit", "verify", "--expect-head", head, "--format", "json"]) == 1
    (problem,) = json.loads(capsys.readouterr().out)["problems"]
    assert problem["problem"] == "deleted" and head in problem["detail"]
