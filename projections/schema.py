"""The read model's schema: its tables' DDL, built from the facts' fields and counters
(projections/facts.py), the list of its tables, and the version that says which release built it.
The store's own tables, and every advisory-lock key, are in infra/schema.py."""

from __future__ import annotations

from projections.facts import COUNTERS, FACT_FIELDS

# The typical-case library (SPEC §7, projections/cases.py).
CASE_TABLES = [
    "CREATE TABLE IF NOT EXISTS kpi_cases (uuid TEXT PRIMARY KEY, case_id TEXT NOT NULL, author TEXT NOT NULL,"
    " unit TEXT NOT NULL, kind TEXT NOT NULL, submitted_at BIGINT NOT NULL, day TEXT NOT NULL,"
    " month TEXT NOT NULL, round TEXT, selected_at BIGINT)",
    "CREATE INDEX IF NOT EXISTS kpi_cases_month ON kpi_cases (month)",
    "CREATE INDEX IF NOT EXISTS kpi_cases_round ON kpi_cases (round, unit)",
    # One row per reward: `ref` is the case (case_selected) or "<round>/<unit>" (organisation_award).
    "CREATE TABLE IF NOT EXISTS kpi_rewards (reason TEXT NOT NULL, ref TEXT NOT NULL, who TEXT NOT NULL,"
    " at BIGINT NOT NULL, day TEXT NOT NULL, month TEXT NOT NULL, amount_fen BIGINT NOT NULL,"
    " PRIMARY KEY (reason, ref))",
    "CREATE INDEX IF NOT EXISTS kpi_rewards_day ON kpi_rewards (day)",
]
CASE_VIEW_TABLES = ("kpi_cases", "kpi_rewards")
CASE_BIGINT_COLUMNS = ("submitted_at", "selected_at", "at", "amount_fen")

_INT_FACTS = {"received_at", "deadline", "repeat_at", "upgraded", "sensitive", "transferred",
              "first_resolved_at", "first_response_at", "closed_at", "retained", "repeat_after_close",
              "upgrade_after_close", "missed", "service_fault", "handling_fault_at",
              "quiet_violations", "major_batch", "service_fault_at", "latest_repeat_at", "quick_until",
              "opinion_at", "opinion_after_close", "opinion_response_at"} | {
                  f for f in FACT_FIELDS if f.startswith("comp_")}

FACT_TYPES = tuple("bigint" if f in _INT_FACTS else "text" for f in FACT_FIELDS)
TABLES = [
    "CREATE TABLE IF NOT EXISTS kpi_complaints ("
    + ", ".join(f"{f} {'BIGINT' if f in _INT_FACTS else 'TEXT'}" for f in FACT_FIELDS)
    + ", PRIMARY KEY (uuid))",
    "CREATE INDEX IF NOT EXISTS kpi_complaints_repeat_of ON kpi_complaints (repeat_of)",
    "CREATE INDEX IF NOT EXISTS kpi_complaints_cause ON kpi_complaints (category, region, received_at)",
    "CREATE INDEX IF NOT EXISTS kpi_complaints_received ON kpi_complaints (received_at)",
    "CREATE TABLE IF NOT EXISTS kpi_daily (day TEXT NOT NULL, dim TEXT NOT NULL, key TEXT NOT NULL, "
    + ", ".join(f"{c} BIGINT NOT NULL DEFAULT 0" for c in COUNTERS)
    + ", PRIMARY KEY (dim, key, day))",
    # Month sums read one month's rows, however long the history (reports and every scrape).
    "CREATE INDEX IF NOT EXISTS kpi_daily_by_day ON kpi_daily (dim, day)",
    # All-time counters per tier and region: the backlog and the time distributions, whose size
    # does not grow with the number of complaints (what /metrics reads).
    "CREATE TABLE IF NOT EXISTS kpi_totals (tier TEXT NOT NULL, region TEXT NOT NULL, "
    + ", ".join(f"{c} BIGINT NOT NULL DEFAULT 0" for c in COUNTERS)
    + ", PRIMARY KEY (tier, region))",
    "CREATE TABLE IF NOT EXISTS kpi_penalties (complaint TEXT NOT NULL, reason TEXT NOT NULL,"
    " role TEXT NOT NULL, who TEXT NOT NULL, unit TEXT NOT NULL, at BIGINT NOT NULL, day TEXT NOT NULL,"
    " month TEXT NOT NULL, amount_fen BIGINT NOT NULL, points_centi BIGINT NOT NULL,"
    " PRIMARY KEY (complaint, reason, role))",
    "CREATE INDEX IF NOT EXISTS kpi_penalties_day ON kpi_penalties (day)",
    # Per person or unit and day: what the report lists, and the monthly points cap, read without
    # scanning every penalty ever assessed.
    "CREATE TABLE IF NOT EXISTS kpi_penalty_daily (day TEXT NOT NULL, who TEXT NOT NULL, reason TEXT NOT NULL,"
    " month TEXT NOT NULL, n BIGINT NOT NULL, amount_fen BIGINT NOT NULL, points_centi BIGINT NOT NULL,"
    " PRIMARY KEY (day, who, reason))",
    "CREATE INDEX IF NOT EXISTS kpi_penalty_daily_who ON kpi_penalty_daily (who, month)",
    "CREATE TABLE IF NOT EXISTS kpi_penalty_totals (month TEXT NOT NULL, unit TEXT NOT NULL,"
    " reason TEXT NOT NULL, n BIGINT NOT NULL, amount_fen BIGINT NOT NULL, points_centi BIGINT NOT NULL,"
    " PRIMARY KEY (month, unit, reason))",
    "CREATE TABLE IF NOT EXISTS kpi_ingest (type TEXT NOT NULL, result TEXT NOT NULL,"
    " reason TEXT NOT NULL, n BIGINT NOT NULL, PRIMARY KEY (type, result, reason))",
    # Events the read model could not apply (a bug): passed over so that it never wedges, and
    # shown on /metrics (recovery_read_model_faults) until a fixed release rebuilds it.
    "CREATE TABLE IF NOT EXISTS kpi_faults (position BIGINT PRIMARY KEY, error TEXT NOT NULL)",
    *CASE_TABLES,
]
SCHEMA_VERSION = 5  # bump when tables or COUNTERS change: an older read model is rebuilt from the log
VIEW_TABLES = ("kpi_complaints", "kpi_daily", "kpi_totals", "kpi_penalties", "kpi_penalty_daily", "kpi_penalty_totals",
               "kpi_ingest", "kpi_faults", *CASE_VIEW_TABLES)
# The read model's own record of which schema version built it (projections/runner.py).
SCHEMA_TABLE = "CREATE TABLE IF NOT EXISTS kpi_schema (version INTEGER NOT NULL)"

# The counter tables are small and every batch updates their rows: without frequent vacuuming their
# dead row versions would grow with the number of complaints, and so would every report and scrape.
# Room left in each page lets an update stay on its page without touching the indexes (HOT).
POSTGRES_VACUUM = [
    *(f"ALTER TABLE {table} SET (fillfactor = 70, autovacuum_vacuum_threshold = 200,"
      " autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05)"
      for table in ("kpi_daily", "kpi_totals", "kpi_penalty_daily", "kpi_penalty_totals", "kpi_ingest")),
    "ALTER TABLE kpi_complaints SET (fillfactor = 70)",
]
