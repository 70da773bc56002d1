"""The facts one read-model batch works on: loaded once per batch (from the cache between batches,
else in one query), indexed for the rules that look across complaints (repeats, major batches)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from collections.abc import Iterable

from infra.config import CACHED_COMPLAINTS
from infra.memory import Recent
from infra.sql import Cursor, Dialect
from projections.facts import FACT_FIELDS, Facts, fact_values


class FactsCache:
    """Facts of recently touched complaints, and their counts (kpi.counts), kept between batches so the
    next batch need not read or recount them: at most `size` (least recently used dropped first),
    so memory stays flat. Valid only while nobody else wrote the read model: it records the
    position it matches, and a batch read from another position empties it, as does a batch that
    failed (its changes were rolled back)."""

    def __init__(self, size: int = CACHED_COMPLAINTS):
        self.position = -1
        self.entries: Recent[str, tuple[Facts, dict[str, int] | None]] = Recent(size)

    def valid_at(self, position: int | None) -> bool:
        if position is None or position != self.position:
            self.forget()
            return False
        return True

    def get(self, uuid: str) -> tuple[Facts, dict[str, int] | None] | None:
        return self.entries.get(uuid)

    def keep(self, batch: BatchFacts, position: int) -> None:
        for uuid, f in batch.facts.items():
            if f is not None:
                self.entries[uuid] = (f, batch.counts.get(uuid))
        self.position = position

    def forget(self) -> None:
        self.entries.clear()
        self.position = -1


def _received_at(f: Facts) -> int:
    return f.received_at


class BatchFacts:
    """Facts loaded for one batch, as they were before it began."""

    def __init__(self, dialect: Dialect, cursor: Cursor, cache: FactsCache | None = None):
        self.dialect, self.cursor, self.cache = dialect, cursor, cache
        self.facts: dict[str, Facts | None] = {}
        self.loaded: dict[str, tuple] = {}  # fact_values() as read: to write back only what changed
        self.counts: dict[str, dict[str, int]] = {}  # counter contributions, where known (cached, or written)
        self.covered: list[tuple[int, int]] = []  # received_at ranges loaded whole
        self.by_cause: dict[tuple[str, str], list[Facts]] = defaultdict(list)  # (category, region), by received_at
        self.by_repeat_of: dict[str, list[Facts]] = defaultdict(list)

    def preload(self, uuids: Iterable[str]) -> None:
        missing = []
        for u in uuids:
            if u in self.facts:
                continue
            cached = self.cache.get(u) if self.cache else None
            if cached is None:
                missing.append(u)
            else:
                self._remember(cached[0])
                if cached[1] is not None:
                    self.counts[u] = cached[1]
        for row in self.dialect.rows_in(self.cursor, "SELECT * FROM kpi_complaints", "uuid", missing):
            self._remember(Facts(**{k: row[k] for k in FACT_FIELDS}))
        for u in missing:
            self.facts.setdefault(u, None)

    def _remember(self, f: Facts) -> None:
        self.loaded[f.uuid] = fact_values(f)
        self.add(f)

    def get(self, uuid: str) -> Facts | None:
        if uuid not in self.facts:
            self.preload((uuid,))
        return self.facts[uuid]

    def add(self, facts: Facts) -> None:
        self.facts[facts.uuid] = facts
        insort(self.by_cause[(facts.category, facts.region)], facts, key=_received_at)
        if facts.repeat_of:
            self.by_repeat_of[facts.repeat_of].append(facts)

    def relink(self, facts: Facts, repeat_of: str | None) -> None:
        if facts.repeat_of and facts in self.by_repeat_of[facts.repeat_of]:
            self.by_repeat_of[facts.repeat_of].remove(facts)
        if repeat_of:
            self.by_repeat_of[repeat_of].append(facts)

    def repeats_of(self, uuid: str) -> list[Facts]:
        rows = self.dialect.rows(self.cursor, "SELECT uuid FROM kpi_complaints WHERE repeat_of = ?", (uuid,))
        self.preload(r["uuid"] for r in rows)
        return list(self.by_repeat_of[uuid])

    def preload_received(self, lo: int, hi: int) -> None:
        """Load every complaint received in [lo, hi] (a batch's span plus the window)."""
        rows = self.dialect.rows(self.cursor,
                                 "SELECT uuid FROM kpi_complaints WHERE received_at >= ? AND received_at <= ?",
                                 (lo, hi))
        self.preload(r["uuid"] for r in rows)
        self.covered.append((lo, hi))

    def received_between(self, category: str, region: str, since: int, until: int) -> list[Facts]:
        if not any(lo <= since and until <= hi for lo, hi in self.covered):
            self._query_received(category, region, since, until)
        members = self.by_cause[(category, region)]
        return members[bisect_left(members, since, key=_received_at):bisect_right(members, until, key=_received_at)]

    def _query_received(self, category: str, region: str, since: int, until: int) -> None:
        rows = self.dialect.rows(
            self.cursor, "SELECT uuid FROM kpi_complaints WHERE category = ? AND region = ?"
            " AND received_at >= ? AND received_at <= ?", (category, region, since, until))
        self.preload(r["uuid"] for r in rows)
