"""The typical-case library's read model (SPEC §7): cases, rewards and the monthly quota.

Rewards follow from the set of selections, never from their arrival: each batch recomputes the
outstanding-organisation award of every (round, unit) it touched from all that round's selections
of the unit, ordered by `occurred_at` (then case id), so the award lands in the month of the
selection that is the unit's second by time, wherever it arrived.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from domain.clock import from_us, to_us
from domain.events import CASE_SELECTED, CASE_SUBMITTED
from domain.policy import AUTHOR_KINDS, Policy
from infra.privacy import Keyring, key_ids
from infra.sql import Cursor, Dialect
from infra.store import RecoveryApplication

REWARD_REASONS = ("case_selected", "organisation_award")
_CASE_COLUMNS = ("uuid", "case_id", "author", "unit", "kind", "submitted_at", "day", "month", "round", "selected_at")
_REWARD_COLUMNS = ("reason", "ref", "who", "at", "day", "month", "amount_fen")


def _local(policy: Policy, at: datetime) -> datetime:
    return at.astimezone(policy.at(at).timezone)


def _fen(amount: Decimal) -> int:
    return int(amount * 100)


def _money(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


def _reward(policy: Policy, reason: str, ref: str, who: str, at: int, amount: Decimal) -> tuple[Any, ...]:
    local = _local(policy, from_us(at))
    return reason, ref, who, at, local.date().isoformat(), local.strftime("%Y-%m"), _fen(amount)


def apply_cases(dialect: Dialect, c: Cursor, policy: Policy, events: list[Any]) -> None:
    """Apply a batch's case events (in log order, so a case's submission precedes its selection)."""
    submitted = []
    for e in events:
        if type(e) is CASE_SUBMITTED:
            local, author = _local(policy, e.occurred_at), e.data["author"]
            submitted.append((e.originator_id.hex, e.case_id, author["id"], author["unit"], author["kind"],
                              to_us(e.occurred_at), local.date().isoformat(), local.strftime("%Y-%m"), None, None))
    dialect.insert(c, "kpi_cases", _CASE_COLUMNS, ("text",) * 5 + ("bigint", "text", "text", "text", "bigint"),
                   submitted)
    selected = [e for e in events if type(e) is CASE_SELECTED]
    for e in selected:
        dialect.execute(c, "UPDATE kpi_cases SET round = ?, selected_at = ? WHERE uuid = ?",
                        (e.data["round"], to_us(e.occurred_at), e.originator_id.hex))
    if not selected:
        return
    cases = {r["uuid"]: r for r in dialect.rows_in(c, "SELECT * FROM kpi_cases", "uuid",
                                                   sorted({e.originator_id.hex for e in selected}))}
    rewards = []
    for e in selected:
        case = cases[e.originator_id.hex]
        rewards.append(_reward(policy, "case_selected", case["case_id"], case["author"], case["selected_at"],
                               policy.at(e.occurred_at).case_selected_reward))
    for round_, unit in sorted({(r["round"], r["unit"]) for r in cases.values()}):
        chosen = dialect.rows(c, "SELECT case_id, selected_at FROM kpi_cases WHERE round = ? AND unit = ?"
                                 " ORDER BY selected_at, case_id", (round_, unit))
        if len(chosen) >= 2:  # the award falls at the unit's second selection by time
            at = int(chosen[1]["selected_at"])
            rewards.append(_reward(policy, "organisation_award", f"{round_}/{unit}", unit, at,
                                   policy.at(from_us(at)).organisation_award))
    dialect.insert(c, "kpi_rewards", _REWARD_COLUMNS, ("text",) * 3 + ("bigint", "text", "text", "bigint"),
                   rewards, "ON CONFLICT (reason, ref) DO UPDATE SET who = excluded.who, at = excluded.at,"
                   " day = excluded.day, month = excluded.month, amount_fen = excluded.amount_fen")


def rewards(dialect: Dialect, c: Cursor, lo: str, hi: str) -> list[dict[str, Any]]:
    """Rewards whose day is in [lo, hi], per person (or unit) and month, like penalties."""
    rows = dialect.rows(c, "SELECT who, month, reason, COUNT(*) AS n, SUM(amount_fen) AS amount FROM kpi_rewards"
                           " WHERE day >= ? AND day <= ? GROUP BY who, month, reason ORDER BY who, month, reason",
                        (lo, hi))
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        entry = out.setdefault((r["who"], r["month"]), {"who": r["who"], "month": r["month"], "amount": 0,
                                                        "reasons": dict.fromkeys(REWARD_REASONS, 0)})
        entry["amount"] += int(r["amount"])
        entry["reasons"][r["reason"]] += int(r["n"])
    return [{**e, "amount": _money(e["amount"])} for e in out.values()]


def quota(dialect: Dialect, c: Cursor, policy: Policy, lo: str, hi: str) -> list[dict[str, Any]]:
    """Per author and month (of `submitted`) with at least one submission in [lo, hi]: the month's
    submissions against the quota of the version in force at the month's first instant. Unit and
    kind are those of the author's latest submission that month."""
    rows = dialect.rows(c, "SELECT author, unit, kind, day, month, submitted_at, case_id FROM kpi_cases"
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
        first = datetime.combine(date.fromisoformat(f"{month}-01"), datetime.min.time(),
                                 policy.at(from_us(int(latest["submitted_at"]))).timezone)
        out.append({"author": author, "unit": latest["unit"], "month": month, "submitted": len(found),
                    "quota": policy.at(first).monthly_quota.get(latest["kind"], 0), "kind": latest["kind"]})
    return out


def case_metrics(dialect: Dialect, c: Cursor, policy: Policy, months: dict[str, date]) -> Iterator[Metric]:
    """Rewards and the quota by month label (current, previous) and reason or author kind: no
    per-person labels."""
    label_of = {first.strftime("%Y-%m"): label for label, first in months.items()}
    paid = {(label, reason): 0 for label in months for reason in REWARD_REASONS}
    for r in dialect.rows(c, "SELECT month, reason, SUM(amount_fen) AS fen FROM kpi_rewards WHERE month IN (?, ?)"
                             " GROUP BY month, reason", sorted(label_of)):
        paid[(label_of[r["month"]], r["reason"])] = int(r["fen"])
    amount = GaugeMetricFamily("recovery_rewards_cny", "Rewards granted in the month (CNY): case_selected to "
                               "authors, organisation_award to units (typical-case library)",
                               labels=["month", "reason"])
    for (label, reason), fen in paid.items():
        amount.add_metric([label, reason], float(Decimal(fen) / 100))
    yield amount
    sums = {(label, kind): [0, 0, 0] for label in months for kind in AUTHOR_KINDS}
    lo, hi = min(months.values()).isoformat(), max(months.values()).strftime("%Y-%m-31")
    for row in quota(dialect, c, policy, lo, hi):
        key = (label_of.get(row["month"], ""), row["kind"])
        if key in sums:
            sums[key][0] += row["submitted"]
            sums[key][1] += row["quota"]
            sums[key][2] += max(0, row["quota"] - row["submitted"])
    for i, (name, doc) in enumerate((
            ("recovery_cases_submitted", "Typical cases submitted in the month"),
            ("recovery_cases_quota", "Monthly case quota of the authors who submitted in the month"),
            ("recovery_cases_shortfall", "Cases missing to the quota, summed over authors who submitted "
                                         "in the month (an author above quota does not make up for another)"))):
        family = GaugeMetricFamily(name, doc, labels=["month", "kind"])
        for (label, kind), values in sums.items():
            family.add_metric([label, kind], values[i])
        yield family


def case_history(app: RecoveryApplication, policy: Policy, case_id: str,
                 as_of: datetime | None = None) -> dict[str, Any] | None:
    """One case's recorded events and state as of a moment, as `history` shows a complaint's; None
    when no such case was recorded."""
    from domain.case import Case, case_uuid
    from projections.history import _entry, _recorded

    events = _recorded(app, case_uuid(case_id), as_of)
    if not events:
        return None
    case: Case | None = None
    for event in events:
        case = event.mutate(case)
    assert case is not None
    tz = policy.timezone
    keys, missing = Keyring(app).readable(key_ids(e.data for e in events))  # a summary sealed with a customer's key
    selected = next((e for e in events if type(e) is CASE_SELECTED), None)
    return {
        "case_id": case.case_id, "as_of": as_of.isoformat() if as_of else None, "timezone": tz.key,
        "state": {
            "author": case.author, "submitted_at": case.submitted_at.astimezone(tz).isoformat(),
            "round": case.round,
            "selected_at": selected.occurred_at.astimezone(tz).isoformat() if selected else None,
            "reward": f"{policy.at(selected.occurred_at).case_selected_reward:.2f}" if selected else None,
        },
        "events": [_entry(e, tz, keys, missing) for e in events],
    }
