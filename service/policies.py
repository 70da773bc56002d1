"""Adopting policy versions and reading them back (SPEC §3.5). The store's versions are the rules;
`RECOVERY_POLICY_FILE` (or the shipped defaults) only seeds the first one of a store that has none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

from eventsourcing.persistence import IntegrityError

from domain.clock import from_us, to_us
from domain.policy import Policy, parse_policy, policy_text, with_versions
from domain.policybook import PolicyVersion, content_hash, version_uuid
from infra.store import IndexChanges, RecoveryApplication

BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)  # no event may occur earlier (SPEC §2): the first version's start


class AdoptionRefused(ValueError):
    """A version that may not be adopted; the message says why."""


@dataclass(frozen=True)
class Version:
    number: int
    effective_from: datetime
    content: str
    sha256: str
    adopted_by: str
    adopted_at: datetime
    policy: Policy


class PolicyBook:
    """The versions adopted in one store, read once and again whenever another was adopted."""

    def __init__(self, app: RecoveryApplication):
        self.app = app
        self._known: list[tuple[int, int]] = []
        self._versions: list[Version] = []
        self.generation = 0  # how many times the versions were (re)read: a change to take up

    def versions(self) -> list[Version]:
        index = self.app.index.policy_versions()
        if index != self._known:
            found = []
            for number, _ in index:
                v = cast(PolicyVersion, self.app.repository.get(version_uuid(number)))
                found.append(Version(v.number, v.effective_from, v.content, v.sha256, v.adopted_by,
                                     v.created_on, parse_policy(v.content, f"policy version {v.number}")))
            self._known, self._versions = index, found
            self.generation += 1
        return self._versions

    def policy(self) -> Policy | None:
        """The latest version, carrying every version (Policy.at); None while none is adopted."""
        versions = self.versions()
        return with_versions([(v.effective_from, v.policy) for v in versions]) if versions else None

    def seed(self, first: Policy, by: str = "recovery (first write)") -> None:
        """Adopt `first` from the beginning in a store that has no version yet (whatever it holds:
        a store from before versions gets the rules it was built under)."""
        with self.app.writer.held():
            if not self.app.index.policy_versions():
                self._record(1, BEGINNING, policy_text(first), by)

    def adopt(self, content: str, effective_from: datetime, adopted_by: str) -> Version:
        """Record a new version. Refused when it would take effect before the latest `occurred_at`
        already recorded (it would rewrite decisions taken), or at the same moment as another."""
        parse_policy(content, "the adopted policy")  # every error names the bad key
        if effective_from.tzinfo is None:
            raise AdoptionRefused("--effective-from needs a UTC offset (e.g. 2027-01-01T00:00+08:00)")
        with self.app.writer.held():
            latest = self._latest_occurred()
            if latest is not None and to_us(effective_from) < latest:
                raise AdoptionRefused(
                    f"a version effective from {effective_from.isoformat()} would take effect before the latest "
                    f"event already recorded, which occurred at {from_us(latest).isoformat()}: adopt it from that "
                    "moment or later")
            known = self.app.index.policy_versions()
            if any(since == to_us(effective_from) for _, since in known):
                raise AdoptionRefused(f"a version effective from {effective_from.isoformat()} is already adopted; "
                                      "each version needs a moment of its own")
            number = (known[-1][0] if known else 0) + 1
            self._record(number, effective_from, content, adopted_by)
        return next(v for v in self.versions() if v.number == number)

    def _record(self, number: int, effective_from: datetime, content: str, adopted_by: str) -> None:
        version = PolicyVersion(number, effective_from.astimezone(UTC), content, content_hash(content), adopted_by)
        try:
            self.app.save(version, index=IndexChanges(policy_versions=[(number, to_us(effective_from))]))
        except IntegrityError as error:  # a concurrent adoption took the number or the moment
            raise AdoptionRefused(f"another version was adopted meanwhile: {error}") from None

    def _latest_occurred(self) -> int | None:
        state = self.app.index.watcher_state()
        if "latest_occurred" in state:
            return state["latest_occurred"]
        if not self.app.recorder.max_notification_id():
            return None
        return _scan_latest_occurred(self.app)  # a store from before this release: read once from the log


def _scan_latest_occurred(app: RecoveryApplication) -> int | None:
    latest, start = None, 1
    while notifications := app.recorder.select_notifications(start=start, limit=5000):
        for n in notifications:
            if n.topic.startswith("domain.complaint:"):
                moment = to_us(app.mapper.to_domain_event(n).occurred_at)  # type: ignore[attr-defined]
                latest = moment if latest is None else max(latest, moment)
        start = notifications[-1].id + 1
    return latest
