"""The typical-case library's read model (SPEC §7): its cases and rewards, as SQL rows (report.py
reads them, with the monthly quota; metrics.py and history.py show them).

Rewards follow from the set of selections, never from their arrival: each batch recomputes the
outstanding-organisation award of every (round, unit) it touched from all that round's selections
of the unit, ordered by `occurred_at` (then case id), so the award lands in the month of the
selection that is the unit's second by time, wherever it arrived.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from domain.clock import from_us, to_us
from domain.events import CASE_SELECTED, CASE_SUBMITTED
from domain.policy import Policy
from infra.sql import Cursor, Dialect
from projections.facts import fen

_CASE_COLUMNS = ("uuid", "case_id", "author", "unit", "kind", "submitted_at", "day", "month", "round", "selected_at")
_REWARD_COLUMNS = ("reason", "ref", "who", "at", "day", "month", "amount_fen")


def _reward(policy: Policy, reason: str, ref: str, who: str, at: int, amount: Decimal) -> tuple[Any, ...]:
    local = policy.local(from_us(at))
    return reason, ref, who, at, local.date().isoformat(), local.strftime("%Y-%m"), fen(amount)


def apply_cases(dialect: Dialect, c: Cursor, policy: Policy, events: list[Any]) -> None:
    """Apply a batch's case events (in log order, so a case's submission precedes its selection)."""
    submitted = []
    for e in events:
        if type(e) is CASE_SUBMITTED:
            local, author = policy.local(e.occurred_at), e.data["author"]
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
