"""The KPI report (SPEC §4–5) read from the pre-aggregated tables: never from the event log.

`rates()` is the one place a rate is computed; the CLI report and the metrics exporter both use it.
"""

from __future__ import annotations

import functools
from datetime import date
from decimal import Decimal
from typing import Any

from domain import clock
from domain.clock import from_us
from domain.envelope import OPINION_STAGES
from domain.policy import Policy
from infra.sql import Cursor, Dialect
from projections.facts import COMPENSATION_KINDS, COUNTERS, DIMENSIONS, HOUR_BUCKETS, OUTCOMES, RESOLUTIONS

PENALTY_REASONS = ("deadline_missed", "service_fault", "repeat_handling_fault", "unrecorded")
REWARD_REASONS = ("case_selected", "organisation_award")
COUNT_FIELDS = ("received", "resolved", "closed", "open", "repeat", "upgraded", "on_time", "late",
                "first_contact_resolved", "satisfied", "satisfaction_answered", *OUTCOMES,
                "quiet_hours_violations", "important", "deadline_missed", "major_batch", "public_opinion",
                "public_opinion_active", "public_opinion_awaiting_contact")
# Of dissatisfied customers, the share who stay (source 002, the OCA / White House survey).
RETENTION_BENCHMARK = {"unresolved": 0.19, "resolved": 0.54, "resolved_quickly": 0.82}


def _ratio(numerator: int, denominator: int, places: int | None = 4) -> float | None:
    if denominator == 0:
        return None
    exact = numerator / denominator
    return exact if places is None else round(exact, places)


def money(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


def rates(c: dict[str, int], places: int | None = 4) -> dict[str, Any]:
    """Counts, rates (4 places, or unrounded for `places=None`; null on a zero denominator) and
    money for one set of counters."""
    out: dict[str, Any] = {k: int(c.get(k, 0)) for k in COUNT_FIELDS}
    ratio = functools.partial(_ratio, places=places)
    out["repeat_rate"] = ratio(out["repeat"], out["received"])
    out["upgraded_rate"] = ratio(out["upgraded"], out["received"])
    out["timely_rate"] = ratio(out["on_time"], out["on_time"] + out["late"])
    out["fcr_rate"] = ratio(out["first_contact_resolved"], out["resolved"])
    out["satisfaction_rate"] = ratio(out["satisfied"], out["satisfaction_answered"])
    judged = sum(out[k] for k in OUTCOMES if k != "unknown")
    out["recovery_rate"] = ratio(out["recovered"], judged)
    out["service_fault_satisfaction_rate"] = ratio(c.get("service_fault_satisfied", 0), c.get("service_fault", 0))
    out["compensation_total"] = money(c.get("compensation_fen", 0))
    out["compensation_by_kind"] = {k: money(c.get(f"compensation_{k}_fen", 0)) for k in COMPENSATION_KINDS}
    out["public_opinion_rate"] = ratio(out["public_opinion"], out["received"])
    out["public_opinion_by_stage"] = {s: int(c.get(f"public_opinion_{s}", 0)) for s in OPINION_STAGES}
    out["retention_by_resolution"] = {
        r: ratio(c.get(f"retention_{r}_retained", 0), c.get(f"retention_{r}", 0)) for r in RESOLUTIONS}
    out["retention_by_resolution_closed"] = {r: int(c.get(f"retention_{r}", 0)) for r in RESOLUTIONS}
    labels = [f"le_{h}h" for h in HOUR_BUCKETS] + [f"gt_{HOUR_BUCKETS[-1]}h"]
    for prefix, name in (("response", "response"), ("resolution", "resolution"),
                         ("opinion_response", "public_opinion_response")):
        out[f"time_to_{name}_hours"] = {lbl: int(c.get(f"{prefix}_{lbl}", 0)) for lbl in labels}
    return out


def sum_counters(dialect: Dialect, cursor: Cursor, dim: str, start: str, end: str) -> list[dict[str, Any]]:
    sums = ", ".join(f"SUM({k}) AS {k}" for k in COUNTERS)
    rows = dialect.rows(
        cursor,
        f"SELECT key, {sums} FROM kpi_daily WHERE dim = ? AND day >= ? AND day <= ? GROUP BY key ORDER BY key",
        (dim, start, end),
    )
    # SUM of BIGINT is NUMERIC on PostgreSQL; counters are whole numbers everywhere.
    return [{"key": r["key"], **{k: int(r[k] or 0) for k in COUNTERS}} for r in rows]


def build_report(dialect: Dialect, datastore: Any, policy: Policy, start: date | None, end: date | None,
                 by: str | None = None) -> dict[str, Any]:
    if by is not None and by not in DIMENSIONS:
        raise ValueError(f"--by must be one of {', '.join(DIMENSIONS)}")
    with datastore.transaction(commit=False) as c:
        if start is None or end is None:
            span = dialect.rows(c, "SELECT MIN(lo) AS lo, MAX(hi) AS hi FROM ("
                                " SELECT MIN(day) AS lo, MAX(day) AS hi FROM kpi_daily WHERE dim = 'all'"
                                " UNION ALL SELECT MIN(day), MAX(day) FROM kpi_penalty_daily"
                                " UNION ALL SELECT MIN(day), MAX(day) FROM kpi_rewards"
                                " UNION ALL SELECT MIN(day), MAX(day) FROM kpi_cases) AS spans")[0]
            start = start or (date.fromisoformat(span["lo"]) if span["lo"]
                              else clock.now().astimezone(policy.timezone).date().replace(day=1))
            end = end or (date.fromisoformat(span["hi"]) if span["hi"] else start)
        lo, hi = start.isoformat(), end.isoformat()
        totals = sum_counters(dialect, c, "all", lo, hi)
        report: dict[str, Any] = {
            "from": lo, "to": hi, "timezone": policy.timezone.key,
            "totals": rates(totals[0] if totals else {}),
        }
        report["timely_rate_target"] = float(policy.timely_rate_target)
        report["retention_benchmark"] = RETENTION_BENCHMARK
        if by:
            report["by"] = by
            report["groups"] = [
                {"key": row["key"], **rates(row)}
                for row in sum_counters(dialect, c, by, lo, hi)
            ]
        report["penalties"] = _penalties(dialect, c, lo, hi)
        report["rewards"] = rewards(dialect, c, lo, hi)  # SPEC §7, beside penalties
        report["cases"] = quota(dialect, c, policy, lo, hi)
        report["ingest"] = _ingest(dialect, c)
    return report


def _penalties(dialect: Dialect, cursor: Cursor, lo: str, hi: str) -> list[dict[str, Any]]:
    rows = dialect.rows(
        cursor,
        "SELECT who, month, reason, SUM(n) AS n, SUM(amount_fen) AS amount, SUM(points_centi) AS points"
        " FROM kpi_penalty_daily WHERE day >= ? AND day <= ? GROUP BY who, month, reason"
        " HAVING SUM(n) <> 0 ORDER BY who, month",  # a penalty assessed and withdrawn leaves rows of zeros
        (lo, hi),
    )
    return _per_person(rows, PENALTY_REASONS, ("amount", "points"))


def rewards(dialect: Dialect, cursor: Cursor, lo: str, hi: str) -> list[dict[str, Any]]:
    """Rewards (SPEC §7) whose day is in [lo, hi], in the shape of penalties."""
    rows = dialect.rows(cursor, "SELECT who, month, reason, COUNT(*) AS n, SUM(amount_fen) AS amount FROM kpi_rewards"
                                " WHERE day >= ? AND day <= ? GROUP BY who, month, reason ORDER BY who, month, reason",
                        (lo, hi))
    return _per_person(rows, REWARD_REASONS, ("amount",))


def _per_person(rows: list[dict[str, Any]], reasons: tuple[str, ...], sums: tuple[str, ...]) -> list[dict[str, Any]]:
    """Rows of (who, month, reason, n, sums in fen) as one entry per person (or unit) and month: how
    many of each reason, and each sum as money."""
    people: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        entry = people.setdefault((r["who"], r["month"]), {
            "who": r["who"], "month": r["month"], **dict.fromkeys(sums, 0), "reasons": dict.fromkeys(reasons, 0)})
        for k in sums:
            entry[k] += int(r[k])
        entry["reasons"][r["reason"]] += int(r["n"])
    return [{**entry, **{k: money(entry[k]) for k in sums}} for entry in people.values()]


def quota(dialect: Dialect, cursor: Cursor, policy: Policy, lo: str, hi: str) -> list[dict[str, Any]]:
    """Per author and month (of `submitted`) with at least one submission in [lo, hi]: the month's
    submissions against the quota of the version in force at the month's first instant (SPEC §7).
    Unit and kind are those of the author's latest submission that month."""
    rows = dialect.rows(cursor, "SELECT author, unit, kind, day, month, submitted_at, case_id FROM kpi_cases"
                                " WHERE month >= ? AND month <= ? ORDER BY author, month, submitted_at, case_id",
                        (lo[:7], hi[:7]))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["author"], r["month"]), []).append(r)
    out = []
    for (author, month), found in groups.items():
        if not any(lo <= r["day"] <= hi for r in found):
            continue
        latest = found[-1]
        first = policy.local(from_us(int(latest["submitted_at"]))).replace(day=1, hour=0, minute=0, second=0,
                                                                          microsecond=0)
        out.append({"author": author, "unit": latest["unit"], "month": month, "submitted": len(found),
                    "quota": policy.at(first).monthly_quota.get(latest["kind"], 0), "kind": latest["kind"]})
    return out


UNKNOWN_FIELD = "unknown_field"  # kpi_ingest rows counting a key the contract does not define, by "<type>.<path>"


def _ingest(dialect: Dialect, cursor: Cursor) -> dict[str, Any]:
    rows = dialect.rows(cursor, "SELECT type, result, reason, n FROM kpi_ingest")
    counts: dict[str, Any] = {"accepted": 0, "duplicates": 0, "rejected": 0, "rejected_by_reason": {},
                              "unknown_fields": {}}
    for r in rows:
        n = int(r["n"])
        if r["result"] == UNKNOWN_FIELD:
            counts["unknown_fields"][r["type"]] = n
        elif r["result"] == "accepted":
            counts["accepted"] += n
        elif r["result"] == "duplicate":
            counts["duplicates"] += n
        else:
            counts["rejected"] += n
            counts["rejected_by_reason"][r["reason"]] = counts["rejected_by_reason"].get(r["reason"], 0) + n
    return counts
