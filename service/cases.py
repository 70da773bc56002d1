"""Case events in an ingest batch (SPEC §7): which cases exist, and how many each round holds.

The round limit is judged on the write side's index of selections (recovery_case_rounds), written
in the batch's transaction under the writer lock, plus the selections this batch accepted before
the event: so two selections of one batch, or of two processes, can never both take the last place.
"""

from __future__ import annotations

from eventsourcing.application import AggregateNotFoundError

from domain.case import Case, case_uuid
from domain.envelope import Envelope
from domain.errors import UnknownComplaint
from domain.policy import Policy
from infra.store import IndexChanges, RecoveryApplication


class CaseBatch:
    def __init__(self, app: RecoveryApplication):
        self.app = app
        self.cases: dict[str, Case | None] = {}
        self.rounds: dict[str, int] = {}  # round -> cases selected, this batch's included

    def prefetch(self, envelopes: list[Envelope]) -> None:
        rounds = sorted({e.data["round"] for e in envelopes if e.type == "case.selected"})
        if rounds:
            self.rounds = self.app.index.cases_selected(rounds)

    def case(self, case_id: str) -> Case | None:
        if case_id not in self.cases:
            try:
                self.cases[case_id] = self.app.repository.get(case_uuid(case_id), deepcopy_from_cache=False)
            except AggregateNotFoundError:
                self.cases[case_id] = None
        return self.cases[case_id]

    def decide(self, env: Envelope, policy: Policy) -> Case | None:
        """Raise the refusal due, in SPEC order; return the case (None for a new one)."""
        assert env.case_id is not None
        case = self.case(env.case_id)
        if case is None:
            if env.type == "case.submitted":
                return None
            raise UnknownComplaint(f"case {env.case_id} was never submitted")
        case.check(env, policy, self.rounds.get(env.data.get("round", ""), 0))
        return case

    def apply(self, env: Envelope, case: Case | None, index: IndexChanges) -> None:
        assert env.case_id is not None
        index.inbound.append((env.event_id, env.case_id))  # the event id, for idempotency
        if case is None:
            self.cases[env.case_id] = Case.submit(env)
            return
        case.select(env)
        self.rounds[env.data["round"]] = self.rounds.get(env.data["round"], 0) + 1
        index.case_rounds.append((env.data["round"], env.case_id))

    def pending(self) -> list[Case]:
        return [c for c in self.cases.values() if c is not None and c.pending_events]
