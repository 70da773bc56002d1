"""The store's schema beside eventsourcing's own tables: the write side's tables (indexes, hash
chains, keys) and every advisory-lock key of the platform. The read model's tables are in
projections/schema.py.

The statements are those every release has run: they only ever create what is missing, so a
store made by an earlier release opens as it is.
"""

from __future__ import annotations

# Hash chains (infra/chain.py): each event's hash, and one block per write transaction.
CHAIN_TABLES = [
    "CREATE TABLE IF NOT EXISTS recovery_chain (originator_id TEXT NOT NULL, originator_version BIGINT NOT NULL,"
    " notification_id BIGINT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (originator_id, originator_version))",
    "CREATE TABLE IF NOT EXISTS recovery_log_chain (last_id BIGINT PRIMARY KEY, first_id BIGINT NOT NULL,"
    " events BIGINT NOT NULL, hash TEXT NOT NULL)",
]
# Per-customer keys and the store's secret (infra/privacy.py).
KEY_TABLES = [
    "CREATE TABLE IF NOT EXISTS recovery_keys (key_id TEXT PRIMARY KEY, lookup TEXT NOT NULL, key TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS recovery_keys_lookup ON recovery_keys (lookup)",
    "CREATE TABLE IF NOT EXISTS recovery_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
]
# The write side's indexes (infra/store.py), written in the same transaction as the events.
INDEX_TABLES = [
    "CREATE TABLE IF NOT EXISTS recovery_inbound ("
    " event_id TEXT PRIMARY KEY, complaint_id TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS recovery_inbound_complaint ON recovery_inbound (complaint_id)",
    "CREATE TABLE IF NOT EXISTS recovery_open_deadlines ("
    " complaint_id TEXT PRIMARY KEY, due BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS recovery_open_deadlines_due ON recovery_open_deadlines (due)",
    "CREATE TABLE IF NOT EXISTS recovery_customer_issues ("
    " customer_id TEXT NOT NULL, issue_key TEXT NOT NULL, received BIGINT NOT NULL,"
    " complaint_id TEXT NOT NULL, PRIMARY KEY (customer_id, issue_key, complaint_id))",
    "CREATE TABLE IF NOT EXISTS recovery_watcher (name TEXT PRIMARY KEY, clock BIGINT NOT NULL)",
    # Adopted policy versions (SPEC §3.5), by number: their events hold the content.
    "CREATE TABLE IF NOT EXISTS recovery_policy_versions (number BIGINT PRIMARY KEY,"
    " effective_from BIGINT NOT NULL UNIQUE)",
    # Refused lines by the SHA-256 of their bytes: the same line sent again is a duplicate (SPEC §2).
    "CREATE TABLE IF NOT EXISTS recovery_refused (line_sha256 TEXT PRIMARY KEY, reason TEXT NOT NULL)",
    # Cases selected, by round (SPEC §7): how many a round holds, for its limit.
    "CREATE TABLE IF NOT EXISTS recovery_case_rounds (round TEXT NOT NULL, case_id TEXT NOT NULL,"
    " PRIMARY KEY (round, case_id))",
    *CHAIN_TABLES,
    *KEY_TABLES,
]

# Advisory-lock keys of this platform (PostgreSQL). Auditors' logins may take none of them.
RELAY_LOCK = 7_270_127  # one outbox relay publishes at a time (app/relay.py)
VIEW_WRITER_LOCK = 7_270_128  # the read model's writers, one transaction at a time (projections/)
INGEST_WRITER_LOCK = 7_270_129  # one ingest writer per store (infra/writers.py)
