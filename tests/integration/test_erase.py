"""Crypto-shredding (PIPL): the customer id and free text are stored sealed with a key per customer;
`recovery erase` destroys the key and nothing else changes. On SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from support.histories import november_history

from app.cli import main
from app.platform import Platform

SECRET = "Mr Wang, 138-0000-1234, says the bill is wrong"


@pytest.fixture
def store(store):
    feed = november_history()
    feed.envelope("responded", "C1", "2026-11-21T10:00:00+08:00", {"channel": "call", "summary": SECRET})
    feed.received("C1", "2026-11-21T11:00:00+08:00", customer="cust-A", summary=SECRET)  # refused: complaint_exists
    platform = Platform(store)
    platform.ingest_lines(feed.lines, batch_size=7)
    platform.close()
    return store


def run(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out


def raw_tables(url: str) -> str:
    """Every stored event and index row, as bytes in the database would show them."""
    platform = Platform(url)
    try:
        d = platform.app.dialect
        with platform.app.datastore.transaction(commit=False) as c:
            events = d.rows(c, f"SELECT state FROM {platform.app.recorder.events_table_name}")
            issues = d.rows(c, "SELECT * FROM recovery_customer_issues")
        return "\n".join(bytes(r["state"]).decode() for r in events) + json.dumps(issues)
    finally:
        platform.close()


def keys(url: str) -> list[str]:
    platform = Platform(url)
    try:
        with platform.app.datastore.transaction(commit=False) as c:
            return [r["key"] for r in platform.app.dialect.rows(c, "SELECT key FROM recovery_keys")]
    finally:
        platform.close()


def test_personal_fields_are_stored_sealed_and_read_in_clear(store, capsys):
    stored = raw_tables(store)
    assert "cust-A" not in stored and "Mr Wang" not in stored and "enc:v1:" in stored
    c1 = json.loads(run(capsys, "history", "C1", "--format", "json"))
    assert c1["customer_id"] == "cust-A"
    assert c1["events"][0]["data"]["customer_id"] == "cust-A"
    assert c1["events"][-1]["data"]["summary"] == SECRET
    # The detected repeat still works on sealed data: C2 is the same customer and issue.
    assert json.loads(run(capsys, "history", "C2", "--format", "json"))["state"]["repeat_of"] == "C1"


def test_erase_destroys_the_key_and_nothing_else_changes(store, capsys, tmp_path):
    report = run(capsys, "report", "--by", "region", "--format", "json")
    verified = run(capsys, "audit", "verify")
    key_material = keys(store)
    assert key_material

    out = run(capsys, "erase", "cust-A")
    assert "1 key(s) destroyed" in out and "2 complaint(s)" in out and "cust-A" not in out
    assert "nothing to erase" in run(capsys, "erase", "cust-A")  # idempotent

    assert run(capsys, "report", "--by", "region", "--format", "json") == report
    assert run(capsys, "audit", "verify") == verified  # the events were not touched
    assert main(["rebuild"]) == 0 and run(capsys, "report", "--by", "region", "--format", "json") == report

    c1 = json.loads(run(capsys, "history", "C1", "--format", "json"))
    assert c1["customer_id"] == "[erased]"
    assert c1["events"][0]["data"]["customer_id"] == "[erased]" and c1["events"][-1]["data"]["summary"] == "[erased]"
    assert c1["events"][0]["data"]["region"] == "huaian" and c1["state"]["recovery_outcome"] == "partially_recovered"
    c2 = json.loads(run(capsys, "history", "C2", "--format", "json"))
    assert c2["customer_id"] == "[erased]" and c2["state"]["repeat_of"] == "C1"
    assert json.loads(run(capsys, "history", "C3", "--format", "json"))["customer_id"] == "cust-C3"

    # Key material is nowhere in an export; what remains in the store cannot be read back.
    run(capsys, "export", "--output", str(tmp_path / "all.jsonl"))
    exported = (tmp_path / "all.jsonl").read_text()
    assert not any(k in exported for k in key_material) and "cust-A" not in exported

    # Text sent later about an erased customer's complaint is not kept.
    late = tmp_path / "late.jsonl"
    late.write_text(json.dumps({"event_id": "late-1", "type": "complaint.responded", "complaint_id": "C2",
                                "occurred_at": "2026-11-25T10:00:00+08:00", "actor": {"id": "emp-1", "role":
                                "hotline_agent", "unit": "huaian-cs"}, "data": {"channel": "call",
                                "summary": "Mr Wang again"}}) + "\n")
    assert "accepted 1" in run(capsys, "ingest", str(late))
    assert "Mr Wang again" not in raw_tables(store)
    assert json.loads(run(capsys, "history", "C2", "--format", "json"))["events"][-1]["data"]["summary"] == "[erased]"


def test_text_sent_in_the_same_batch_as_its_complaint_is_kept(store, capsys, tmp_path):
    from support.feed import Feed

    feed = Feed()
    feed.received("N1", "2026-11-22T09:00:00+08:00", customer="cust-N", summary="first words")
    feed.envelope("responded", "N1", "2026-11-22T09:30:00+08:00", {"channel": "call", "summary": "second words"},
                  event_id="n1-2")
    feed.received("N2", "2026-11-22T10:00:00+08:00", customer="cust-N")  # the same customer, the same key
    feed.lines = [line.replace('"src-', '"new-') for line in feed.lines]  # ids of its own, not resends
    run(capsys, "ingest", str(feed.write(tmp_path / "same-batch.jsonl")))
    n1 = json.loads(run(capsys, "history", "N1", "--format", "json"))
    assert [e["data"].get("summary") for e in n1["events"]] == ["first words", "second words"]
    assert json.loads(run(capsys, "history", "N2", "--format", "json"))["customer_id"] == "cust-N"


def test_a_follow_up_is_sealed_with_its_customers_key_after_the_key_left_the_cache(store_url, monkeypatch, capsys):
    """The service keeps the most recently used customer keys; an older one is read back from the
    store, never replaced or skipped."""
    from support.feed import Feed

    from service import ingest

    monkeypatch.setattr(ingest, "SEALING_KEYS_KEPT", 1)
    monkeypatch.setenv("RECOVERY_DATABASE_URL", store_url)
    f = Feed()
    f.received("C1", "2026-11-02T09:00:00+08:00", customer="cust-A")
    f.received("C2", "2026-11-02T09:10:00+08:00", customer="cust-B")  # cust-A's key leaves the cache
    f.envelope("responded", "C1", "2026-11-02T10:00:00+08:00", {"channel": "call", "summary": SECRET})
    with Platform(store_url) as platform:
        platform.ingest_lines(f.lines[:2])
        platform.ingest_lines(f.lines[2:])
    assert SECRET not in raw_tables(store_url) and len(keys(store_url)) == 2
    assert json.loads(run(capsys, "history", "C1", "--format", "json"))["events"][-1]["data"]["summary"] == SECRET


def test_the_keys_a_batch_of_follow_ups_seals_with_are_read_in_one_query(store_url, monkeypatch):
    from support.feed import Feed

    from infra.privacy import Keyring
    from service import ingest

    monkeypatch.setattr(ingest, "SEALING_KEYS_KEPT", 1)
    reads: list[list[str]] = []
    by_id = Keyring.by_id
    monkeypatch.setattr(Keyring, "by_id", lambda self, ids: reads.append(sorted(ids)) or by_id(self, ids))
    f = Feed()
    for c in ("C1", "C2", "C3"):
        f.received(c, "2026-11-02T09:00:00+08:00", customer=f"cust-{c}")
    for c in ("C1", "C2", "C3"):
        f.envelope("responded", c, "2026-11-02T10:00:00+08:00", {"channel": "call", "summary": SECRET})
    with Platform(store_url) as platform:
        platform.ingest_lines(f.lines[:3])
        reads.clear()
        platform.ingest_lines(f.lines[3:])
    assert [len(r) for r in reads] == [2]  # the two keys that left the cache, together
    assert SECRET not in raw_tables(store_url)


def test_refused_lines_about_an_erased_customer_keep_nothing_in_the_store_or_the_dead_letter_file(
        store, capsys, tmp_path):
    """Refused lines that name a customer are sealed with the customer's key, in the store; the
    dead-letter file beside it keeps them for the operator until `recovery erase` redacts them.
    After the erasure a refused line about the customer keeps nothing of it, in the store or the file."""
    def line(event_id: str, kind: str, data: dict, complaint: str = "C2") -> str:
        return json.dumps({"event_id": event_id, "type": f"complaint.{kind}", "complaint_id": complaint,
                           "occurred_at": "2026-11-25T10:00:00+08:00",
                           "actor": {"id": "emp-1", "role": "hotline_agent", "unit": "huaian-cs"}, "data": data})

    before = tmp_path / "before.jsonl"
    before.write_text("\n".join([
        line("r-1", "responded", {"channel": "pigeon", "summary": "Mr Wang, 138 0000 0000"}),  # invalid_event
        line("r-2", "received", {"customer_id": "cust-A", "customer_tier": "gold", "summary": "Mr Wang"},
             complaint="C99"),  # invalid_event, names the customer itself
    ]) + "\n")
    assert "rejected 2" in run(capsys, "ingest", str(before))
    assert "Mr Wang" not in raw_tables(store)  # sealed in the store
    dead = tmp_path / "dead.jsonl"
    assert "Mr Wang" in dead.read_text()  # kept for the operator, outside the store

    out = run(capsys, "erase", "cust-A")
    assert "redacted 2 refused line(s)" in out
    assert "Mr Wang" not in dead.read_text() and "138 0000" not in dead.read_text()
    assert dead.stat().st_mode & 0o777 == 0o600

    after = tmp_path / "after.jsonl"
    after.write_text(line("r-3", "responded", {"channel": "pigeon", "summary": "Mr Wang once more"}) + "\n")
    assert "rejected 1" in run(capsys, "ingest", str(after))
    assert "Mr Wang" not in raw_tables(store) and "Mr Wang" not in dead.read_text()
