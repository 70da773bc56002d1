"""Prometheus metrics read from the pre-aggregated KPI tables at each scrape.

A scrape reads tables whose size depends on the organisation (tiers, regions, units, days of two
months), never on how many complaints or events are stored, so it costs the same with a thousand
complaints or a million. Every rate comes from `report.rates()`, the one place rates are computed.

Months are labelled `current` and `previous` (policy time zone, cohort = month received; penalties
by the month of their trigger), so dashboards and alerts need no date arithmetic;
`recovery_month_info` tells which calendar months they are. Everything here is derived from the
store, so every replica exposes the same values: dashboards aggregate with `max`, never `sum`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, cast

from eventsourcing.domain import DomainEvent
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from domain import clock
from domain.policy import AUTHOR_KINDS, Policy
from infra.sql import Cursor, Dialect
from infra.store import RecoveryApplication
from projections.facts import COUNTERS, HOUR_BUCKETS
from projections.kpi import KpiViewMixin
from projections.report import RETENTION_BENCHMARK, REWARD_REASONS, UNKNOWN_FIELD, quota, rates, sum_counters

RATES = (  # metric name, report field
    ("recovery_repeat_ratio", "repeat_rate", "Repeat complaints / complaints received"),
    ("recovery_upgraded_ratio", "upgraded_rate", "Upgraded complaints / complaints received"),
    ("recovery_timely_ratio", "timely_rate", "Resolved on time / (on time + late)"),
    ("recovery_first_contact_resolution_ratio", "fcr_rate", "First-contact resolved / resolved"),
    ("recovery_satisfaction_ratio", "satisfaction_rate", "Satisfied / closed with an answer"),
    ("recovery_recovered_ratio", "recovery_rate", "Recovered / closed with a known outcome"),
    ("recovery_public_opinion_ratio", "public_opinion_rate", "Complaints turned public opinion / complaints received"),
)
TIMES = (("recovery_time_to_first_response_seconds", "response", "Received to first customer contact"),
         ("recovery_time_to_resolution_seconds", "resolution", "Received to first resolved"))


def month_start(day: date, months_back: int = 0) -> date:
    first = day.replace(day=1)
    for _ in range(months_back):
        first = (first - timedelta(days=1)).replace(day=1)
    return first


def month_end(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def yuan(fen: int) -> float:
    return float(Decimal(fen) / 100)


@dataclass(frozen=True)
class LogLag:
    events: int
    seconds: float


def projection_lag(app: RecoveryApplication, view: KpiViewMixin) -> LogLag:
    """How far the KPI view is behind the event store."""
    return lag_behind(app, view.max_tracking_id(app.name))


def lag_behind(app: RecoveryApplication, position: int | None) -> LogLag:
    """How far a follower of the log (the KPI view, the outbox relay) at `position` is behind it:
    events not taken yet, and for how long the oldest of them has been waiting (0 when caught up)."""
    position = position or 0
    newest = app.recorder.max_notification_id() or 0
    if newest <= position:
        return LogLag(0, 0.0)
    waiting = app.recorder.select_notifications(start=position + 1, limit=1)
    if not waiting:
        return LogLag(0, 0.0)
    recorded = cast(DomainEvent, app.mapper.to_domain_event(waiting[0])).timestamp
    return LogLag(newest - position, max(0.0, (clock.now() - recorded).total_seconds()))


def lag_gauges(name: str, not_taken: str, lag: LogLag) -> Iterator[Metric]:
    """`<name>_events` and `<name>_seconds`: how many recorded events a follower of the log has not
    taken yet, and the age of the oldest."""
    events = GaugeMetricFamily(f"{name}_events", f"Recorded events {not_taken} yet")
    events.add_metric([], lag.events)
    seconds = GaugeMetricFamily(f"{name}_seconds", f"Age of the oldest recorded event {not_taken}")
    seconds.add_metric([], lag.seconds)
    yield events
    yield seconds


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
        amount.add_metric([label, reason], yuan(fen))
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


class KpiCollector(Collector):
    def __init__(self, app: RecoveryApplication, view: KpiViewMixin, policy: Policy):
        self.app, self.view, self.policy = app, view, policy

    def describe(self) -> list[Metric]:
        return []  # collected per scrape from the store; nothing to run at registration

    def collect(self) -> Iterator[Metric]:
        dialect = self.app.dialect
        # The version in force now (SPEC §3.5), from the versions the read model last took up.
        self.in_force = getattr(self.view, "policy", self.policy).at(clock.now())
        today = clock.now().astimezone(self.in_force.timezone).date()
        months = {"current": month_start(today), "previous": month_start(today, 1)}
        with self.app.datastore.transaction(commit=False) as c:
            if dialect.postgres:  # one snapshot for the whole scrape, as SQLite gives anyway
                dialect.execute(c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            ingest = dialect.rows(c, "SELECT type, result, reason, n FROM kpi_ingest")
            faults = dialect.rows(c, "SELECT COUNT(*) AS n FROM kpi_faults")[0]["n"]
            totals = dialect.rows(c, f"SELECT tier, region, {', '.join(COUNTERS)} FROM kpi_totals")
            cohorts = {(label, dim): sum_counters(dialect, c, dim, first.isoformat(), month_end(first).isoformat())
                       for label, first in months.items() for dim in ("all", "region", "unit")}
            penalties = dialect.rows(
                c, "SELECT month, unit, reason, n, amount_fen, points_centi FROM kpi_penalty_totals"
                " WHERE month IN (?, ?)", [m.strftime("%Y-%m") for m in months.values()])
            typical_cases = list(case_metrics(dialect, c, getattr(self.view, "policy", self.policy), months))
        lag = projection_lag(self.app, self.view)

        yield from self._ingest(ingest)
        yield from self._backlog(totals)
        yield from self._rates(months, cohorts)
        yield from self._money(months, cohorts, penalties)
        yield from self._times(totals)
        yield from typical_cases
        yield from lag_gauges("recovery_projection_lag", "the KPI read model has not applied", lag)
        passed = GaugeMetricFamily("recovery_read_model_faults", "Recorded events the KPI read model could not "
                                   "apply and passed over (a bug: see the log's read_model_fault lines)")
        passed.add_metric([], int(faults))
        yield passed

    def _ingest(self, rows: list[dict[str, Any]]) -> Iterator[Metric]:
        family = CounterMetricFamily("recovery_inbound_events", "Inbound events by SPEC type and result "
                                     "(accepted, duplicate, rejected with its reason code)",
                                     labels=["type", "result", "reason"])
        for r in sorted(rows, key=lambda r: (r["type"], r["result"], r["reason"])):
            if r["result"] == UNKNOWN_FIELD:
                continue  # keys are the senders' choice: in the report, never as labels
            family.add_metric([r["type"], r["result"], r["reason"]], int(r["n"]))
        yield family

    def _backlog(self, rows: list[dict[str, Any]]) -> Iterator[Metric]:
        open_ = GaugeMetricFamily("recovery_open_complaints", "Complaints received and not closed",
                                  labels=["tier", "region"])
        overdue = GaugeMetricFamily("recovery_overdue_complaints", "Open complaints whose resolution "
                                    "deadline passed unresolved (recorded deadline_missed)", labels=["tier", "region"])
        opinion = GaugeMetricFamily("recovery_public_opinion_active_complaints", "Complaints whose public opinion "
                                    "is now in outbreak or surge (SPEC §6), whatever their month",
                                    labels=["tier", "region"])
        for r in sorted(rows, key=lambda r: (r["tier"], r["region"])):
            open_.add_metric([r["tier"], r["region"]], int(r["open"]))
            overdue.add_metric([r["tier"], r["region"]], int(r["overdue"]))
            opinion.add_metric([r["tier"], r["region"]], int(r["public_opinion_active"]))
        yield open_
        yield overdue
        yield opinion

    def _rates(self, months: dict[str, date], cohorts: dict[tuple[str, str], list[dict[str, Any]]]) -> Iterator[Metric]:
        info = InfoMetricFamily("recovery_month", "Which calendar month each month label means "
                                f"(time zone {self.in_force.timezone.key})", labels=["month"])
        for label, first in months.items():
            info.add_metric([label], {"calendar_month": first.strftime("%Y-%m")})
        yield info
        received = GaugeMetricFamily("recovery_received_complaints", "Complaints received in the month",
                                     labels=["region", "month"])
        families = [GaugeMetricFamily(name, f"{doc}, complaints received in the month (absent while "
                                      "the denominator is 0)", labels=["region", "month"])
                    for name, _, doc in RATES]
        for label in months:
            groups = [("all", row) for row in cohorts[(label, "all")]]
            groups += [(row["key"], row) for row in cohorts[(label, "region")]]
            for region, row in groups:
                computed = rates(row, places=None)  # unrounded: 0.949975 is under a 0.95 target
                received.add_metric([region, label], computed["received"])
                for family, (_, field, _) in zip(families, RATES):
                    if computed[field] is not None:
                        family.add_metric([region, label], computed[field])
        retention = GaugeMetricFamily("recovery_retention_ratio", "Of closed complaints saying whether the "
                                      "customer stayed, the share retained, by how the complaint was resolved",
                                      labels=["resolution", "month"])
        for label in months:
            for row in cohorts[(label, "all")]:
                for resolution, share in rates(row, places=None)["retention_by_resolution"].items():
                    if share is not None:
                        retention.add_metric([resolution, label], share)
        benchmark = GaugeMetricFamily("recovery_retention_benchmark_ratio", "The OCA / White House survey's "
                                      "share of dissatisfied customers who stay, by resolution (source 002)",
                                      labels=["resolution"])
        for resolution, share in RETENTION_BENCHMARK.items():
            benchmark.add_metric([resolution], share)
        yield received
        yield from families
        yield retention
        yield benchmark
        target = GaugeMetricFamily("recovery_timely_ratio_target", "Policy target for the timely rate")
        target.add_metric([], float(self.in_force.timely_rate_target))
        yield target

    def _money(self, months: dict[str, date], cohorts: dict[tuple[str, str], list[dict[str, Any]]],
               penalties: list[dict[str, Any]]) -> Iterator[Metric]:
        paid = GaugeMetricFamily("recovery_compensation_cny", "Compensation paid on complaints received "
                                 "in the month, by first-responsible unit (CNY)", labels=["unit", "month"])
        for label in months:
            for row in cohorts[(label, "unit")]:
                paid.add_metric([row["key"], label], yuan(row["compensation_fen"]))
        yield paid
        label_of = {first.strftime("%Y-%m"): label for label, first in months.items()}
        count = GaugeMetricFamily("recovery_penalties_assessed", "Penalties assessed in the month (unrecorded "
                                  "ones past the unit's monthly points cap count here with 0 points)",
                                  labels=["unit", "month", "reason"])
        amount = GaugeMetricFamily("recovery_penalty_amount_cny", "Penalty money assessed in the month (CNY)",
                                   labels=["unit", "month", "reason"])
        points = GaugeMetricFamily("recovery_penalty_points", "Penalty points assessed in the month",
                                   labels=["unit", "month", "reason"])
        for r in sorted(penalties, key=lambda r: (r["month"], r["unit"], r["reason"])):
            labels = [r["unit"], label_of[r["month"]], r["reason"]]
            count.add_metric(labels, int(r["n"]))
            amount.add_metric(labels, yuan(int(r["amount_fen"])))
            points.add_metric(labels, yuan(int(r["points_centi"])))
        yield count
        yield amount
        yield points

    def _times(self, rows: list[dict[str, Any]]) -> Iterator[Metric]:
        for name, prefix, doc in TIMES:
            family = HistogramMetricFamily(name, f"{doc}, all complaints", labels=["tier"])
            by_tier: dict[str, dict[str, int]] = {}
            for r in rows:
                tier: Any = by_tier.setdefault(r["tier"], {})  # a name reused below for the tier label
                for k in COUNTERS:
                    if k.startswith(prefix):
                        tier[k] = tier.get(k, 0) + int(r[k])
            for tier, sums in sorted(by_tier.items()):
                cumulative, buckets = 0, []
                for hours in HOUR_BUCKETS:
                    cumulative += sums[f"{prefix}_le_{hours}h"]
                    buckets.append((f"{hours * 3600:.1f}", cumulative))
                cumulative += sums[f"{prefix}_gt_{HOUR_BUCKETS[-1]}h"]
                buckets.append(("+Inf", cumulative))
                family.add_metric([tier], buckets, sum_value=sums[f"{prefix}_seconds"])
            yield family
