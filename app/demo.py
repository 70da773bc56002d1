"""A seeded synthetic quarter of complaint-centre traffic, for `recovery demo` and the benchmarks.

Realistic enough to exercise every rule: several regions, units and handlers, every tier and
event type, repeats, escalations beyond the branch, refunds before verification, compensation over
authority, quiet-hours contacts, missed deadlines, plus malformed and resent envelopes; and the
typical-case library (SPEC §7): submissions against the monthly quota, quarterly selections.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from domain import clock
from domain.envelope import OPINION_STAGES

TZ = ZoneInfo("Asia/Shanghai")
REGIONS = ("huaian", "xuzhou", "yancheng", "lianyungang", "suqian")
CHANNELS = (("hotline", 50), ("store", 18), ("online", 12), ("message", 5), ("letter", 2), ("social", 4),
            ("regulator", 3), ("consumer_association", 2), ("government_hotline", 2), ("petition_bureau", 1),
            ("media", 1))
CATEGORIES = (("billing", 30), ("network", 25), ("service", 12), ("product", 8), ("marketing", 8),
              ("value_added", 8), ("points", 4), ("privacy", 2), ("other", 3))
AUTHORITY = (("hotline_agent", 100), ("team_lead", 300), ("complaint_manager", 500),
             ("department_head", 1000))


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


class _Writer:
    events: list[tuple[datetime, int, dict[str, Any]]]

    def __init__(self, rng: random.Random):
        self.rng, self.events, self.n = rng, [], 0

    def add(self, kind: str, complaint_id: str, at: datetime, actor: dict[str, str], data: dict[str, Any],
            key: str = "complaint_id") -> None:
        self.n += 1
        self.events.append((at, self.n, {
            "event_id": f"src-{self.n:08d}", "type": kind, key: complaint_id,
            "occurred_at": at.astimezone(TZ).isoformat(), "actor": actor, "data": data}))


def _daytime(moment: datetime) -> datetime:
    """Contacts happen in working hours unless a case says otherwise."""
    local = moment.astimezone(TZ)
    if local.hour >= 22:
        local = (local + timedelta(days=1)).replace(hour=8, minute=local.minute)
    elif local.hour < 8:
        local = local.replace(hour=8, minute=local.minute)
    return local


def _go_public(out: _Writer, rng: random.Random, cid: str, later: Callable[[float], datetime],
               desk: dict[str, str], agent: dict[str, str]) -> None:
    """舆情: the complaint leaves the building and moves through its stages (SPEC §6); the centre
    answers fast (速答) once it breaks out. A few are still in outbreak or surge at the end."""
    stage = rng.choices([0, 1, 2], [55, 35, 10])[0]
    source = rng.choices(["social", "forum", "media", "news", "other"], [50, 20, 15, 10, 5])[0]
    while True:
        out.add("complaint.public_opinion", cid, later(1 + rng.random() * 12), desk,
                {"stage": OPINION_STAGES[stage], "source": source, "summary": "posted about the complaint"})
        if stage in (1, 2) and rng.random() < 0.8:
            out.add("complaint.responded", cid, later(rng.random() * 4), agent, {"channel": "call"})
        if stage == 3 or rng.random() < 0.08:
            return
        stage = min(3, stage + rng.choice([1, 1, 2]))


def generate(seed: int = 2026, complaints: int = 6000, start: datetime | None = None,
             days: int = 91) -> list[str]:
    """JSONL lines in arrival order (by event time), with ~1% malformed and ~1% resent lines."""
    rng = random.Random(seed)
    start = start or datetime(2026, 9, 1, tzinfo=TZ)
    end = start + timedelta(days=days)
    units = {r: [f"{r}-cs", f"{r}-store-1", f"{r}-store-2"] for r in REGIONS}
    staff = {u: [f"{u}-emp-{i:02d}" for i in range(1, 7)] for us in units.values() for u in us}
    out = _Writer(rng)
    history: list[tuple[str, str, str, datetime]] = []  # customer, issue, complaint, received

    for n in range(1, complaints + 1):
        cid = f"C-{start.year}-{n:06d}"
        region = rng.choice(REGIONS)
        unit = rng.choice(units[region])
        people = staff[unit]
        day = start + timedelta(days=rng.random() * days)
        received = day.replace(hour=rng.choices(range(24), [1] * 7 + [4] * 12 + [2] * 5)[0],
                               minute=rng.randrange(60), second=0, microsecond=0)
        if received >= end:
            continue
        channel = "store" if "store" in unit and rng.random() < 0.7 else _pick(rng, CHANNELS)
        category = _pick(rng, CATEGORIES)
        customer, issue = f"cust-{rng.randrange(1, complaints * 3):07d}", category
        recent = [h for h in history[-400:] if received - h[3] < timedelta(days=25)]
        repeat = rng.random() < 0.07 and recent
        if repeat:
            customer, issue = rng.choice(recent)[:2]
        history.append((customer, issue, cid, received))
        agent = {"id": people[0], "role": "counter_agent" if "store" in unit else "hotline_agent", "unit": unit}
        lead = {"id": people[1], "role": "team_lead", "unit": unit}
        head = {"id": f"{region}-head", "role": "department_head", "unit": unit}
        data: dict[str, Any] = {
            "customer_id": customer, "customer_tier": rng.choices(["vip", "premium", "standard"], [10, 30, 60])[0],
            "channel": channel, "category": category, "region": region,
            "responsible": {"handler": people[rng.randrange(2, 6)], "team_lead": people[1],
                            "department_head": head["id"]},
            "urgency": rng.choices(["critical", "urgent", "normal"], [10, 25, 65])[0],
            "coordination": rng.choices(["none", "cross_province", "third_party"], [94, 3, 3])[0],
            "issue_key": issue, "summary": f"{category} complaint", "sensitive": rng.random() < 0.03,
        }
        if channel in ("store", "online"):
            data["responsible"]["channel_supervisor"] = f"{region}-channel-supervisor"
        if rng.random() < 0.02:
            data["unrecorded_by_unit"] = rng.choice(units[region])
        out.add("complaint.received", cid, received, agent, data)
        t = received

        def later(hours: float) -> datetime:
            nonlocal t
            t = _daytime(t + timedelta(hours=hours))
            return t

        if rng.random() < 0.7:
            out.add("complaint.apologised", cid, later(rng.random()), agent,
                    {"mode": rng.choice(["verbal", "written", "in_person", "public"])})
        late_night = rng.random() < 0.04
        contact = later(rng.random() * 3)
        if late_night:
            contact = contact.astimezone(TZ).replace(hour=23, minute=10)
            t = max(t, contact)
        out.add("complaint.responded", cid, contact, agent,
                {"channel": rng.choice(["call", "sms", "visit"]), "customer_requested_time": rng.random() < 0.3})
        liability = None
        if rng.random() < 0.6:
            liability = rng.choices(["company", "customer", "third_party", "shared", "none"], [45, 20, 10, 15, 10])[0]
            out.add("complaint.verified", cid, later(rng.random() * 4), lead, {
                "liability": liability, "service_fault": rng.random() < 0.1,
                "handling_fault": rng.random() < (0.3 if repeat else 0.03)})
        if rng.random() < 0.12:
            out.add("complaint.assigned", cid, later(rng.random() * 2), lead,
                    {"to": {"handler": rng.choice(people[2:])}, "reason": "specialist"})
        if rng.random() < 0.22:
            approver_role, limit = rng.choice(AUTHORITY)
            kind = rng.choices(["refund", "credit", "gift", "points", "voucher", "cash"], [40, 25, 10, 10, 10, 5])[0]
            amount = rng.choice([10, 20, 30, 50, 80, limit, limit + 50])
            approver = {"id": f"{unit}-{approver_role}", "role": approver_role}
            out.add("complaint.compensated", cid, later(rng.random() * 2), agent,
                    {"amount": f"{amount}.00", "kind": kind, "reason": "goodwill", "approved_by": approver})
        if rng.random() < 0.07:
            out.add("complaint.escalated", cid, later(rng.random() * 5), agent,
                    {"to": rng.choice(["team_lead", "department", "branch", "province", "regulator", "media"]),
                     "reason": "customer insisted"})
        desk = {"id": f"{region}-opinion-desk", "role": "opinion_monitor", "unit": unit}
        if rng.random() < (0.2 if channel in ("social", "media") else 0.006):
            _go_public(out, rng, cid, later, desk, agent)
        if rng.random() < 0.96:
            limit_h = {"vip": 8, "premium": 24, "standard": 48}[data["customer_tier"]]
            took = rng.lognormvariate(0, 0.6) * limit_h * 0.4
            resolved_at = _daytime(received + timedelta(hours=took))
            if resolved_at < t:
                resolved_at = t + timedelta(minutes=10)
            if resolved_at >= end:
                continue
            t = resolved_at
            outcome = rng.choices(["resolved", "partially_resolved", "unresolved", "rejected"], [75, 12, 8, 5])[0]
            out.add("complaint.resolved", cid, t, agent, {"outcome": outcome, "summary": "result given"})
            if rng.random() < 0.88:
                satisfaction = rng.choices(["satisfied", "neutral", "dissatisfied", "unreachable"], [62, 18, 12, 8])[0]
                closing: dict[str, Any] = {"satisfaction": satisfaction}
                if rng.random() < 0.6:  # the return visit asked whether the customer stays
                    quick = resolved_at - received <= timedelta(hours=24)
                    stays = 0.3 if outcome in ("unresolved", "rejected") else 0.92 if quick else 0.7
                    closing["retained"] = rng.random() < stays
                out.add("complaint.closed", cid, later(4 + rng.random() * 40), lead, closing)
                if satisfaction == "dissatisfied" and rng.random() < 0.12:
                    _go_public(out, rng, cid, later, desk, agent)  # 内做客诉, 外作舆情
                if rng.random() < 0.03:
                    out.add("complaint.reopened", cid, later(24 + rng.random() * 48), lead,
                            {"reason": "customer called back"})
                    out.add("complaint.resolved", cid, later(rng.random() * 12 + 1), agent, {"outcome": "resolved"})
                    out.add("complaint.closed", cid, later(rng.random() * 24 + 1), lead,
                            {"satisfaction": rng.choice(["satisfied", "neutral"]), "retained": True})
                if rng.random() < 0.03:
                    out.add("complaint.repeated", cid, later(rng.random() * 200), agent, {"channel": "hotline"})
                if rng.random() < 0.01:
                    out.add("complaint.escalated", cid, later(rng.random() * 100), agent,
                            {"to": "government_hotline", "reason": "not satisfied with result"})

    _cases(random.Random(f"cases-{seed}"), out, start, end)
    events = sorted((e for e in out.events if e[0] < end), key=lambda e: (e[0], e[1]))
    lines = [json.dumps(e[2], ensure_ascii=False) for e in events]
    return _add_noise(rng, lines)


def _quarter(moment: datetime) -> str:
    local = moment.astimezone(TZ)
    return f"{local.year}-Q{(local.month - 1) // 3 + 1}"


def _cases(rng: random.Random, out: _Writer, start: datetime, end: datetime) -> None:
    """Per region two dedicated handlers (about 1-2 cases a month each, so some fall short of their
    quota of 2) and the department head (1 a month); per quarter five selections, two of them from
    one unit (the outstanding-organisation award), near the quarter's end or the history's."""
    authors = [({"id": f"{r}-cs-emp-{i:02d}", "unit": f"{r}-cs", "kind": "dedicated_handler"}) for r in REGIONS
               for i in (3, 4)] + [{"id": f"{r}-head", "unit": f"{r}-cs", "kind": "department"} for r in REGIONS]
    submitted: list[tuple[datetime, str, str]] = []  # when, case, unit
    month = start.astimezone(TZ).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while month < end:
        following = (month + timedelta(days=32)).replace(day=1)
        for author in authors:
            wanted = rng.choice([1, 2, 2, 2]) if author["kind"] == "dedicated_handler" else 1
            for _ in range(wanted):
                at = month + timedelta(days=rng.randrange(28), hours=9 + rng.randrange(8), minutes=rng.randrange(60))
                if not start <= at < end:
                    continue
                case_id = f"K-{at.year}-{len(submitted) + 1:04d}"
                submitted.append((at, case_id, author["unit"]))
                actor = {"id": author["id"], "role": "case_author", "unit": author["unit"]}
                data = {"author": author, "title": f"How {author['unit']} won back a customer",
                        "summary": "what went wrong, what we did, what the customer said"}
                out.add("case.submitted", case_id, at, actor, data, key="case_id")
        month = following
    for round_ in sorted({_quarter(at) for at, _, _ in submitted}):
        year, q = int(round_[:4]), int(round_[-1])
        quarter_end = datetime(year + q // 4, q % 4 * 3 + 1, 1, tzinfo=TZ)
        day = min(quarter_end, end) - timedelta(days=2)
        candidates = [(c, u) for at, c, u in submitted if _quarter(at) == round_ and at < day]
        units = sorted({u for _, u in candidates if sum(1 for _, v in candidates if v == u) >= 2})
        if len(candidates) < 5 or not units:
            continue
        unit = rng.choice(units)
        chosen = rng.sample([c for c, u in candidates if u == unit], 2)
        chosen += rng.sample([c for c, u in candidates if c not in chosen], 3)
        for i, case_id in enumerate(chosen):
            out.add("case.selected", case_id, day.replace(hour=10, minute=10 * i),
                    {"id": "case-committee", "role": "complaint_manager", "unit": "branch"},
                    {"round": round_}, key="case_id")


def _add_noise(rng: random.Random, lines: list[str]) -> list[str]:
    """Resend ~1% of envelopes and mix in ~1% that break the contract."""
    broken = [
        lambda e: {**e, "occurred_at": e["occurred_at"][:19]},  # no UTC offset
        lambda e: {**e, "type": "complaint.sent_flowers"},
        lambda e: {k: v for k, v in e.items() if k != "actor"},
        lambda e: {**e, "type": "complaint.compensated", "data": {"amount": 12.5, "kind": "credit"}},
        lambda e: {**e, "type": "complaint.compensated", "data": {"amount": "12.345", "kind": "credit"}},
        lambda e: {**e, "complaint_id": "C-UNKNOWN-" + e["event_id"], "type": "complaint.responded",
                   "data": {"channel": "call"}},
    ]
    out = []
    for line in lines:
        out.append(line)
        r = rng.random()
        if r < 0.01:
            out.append(line)
        elif r < 0.02:
            e = json.loads(line)
            bad = rng.choice(broken)(e)
            bad["event_id"] = "bad-" + e["event_id"]
            out.append(json.dumps(bad))
        elif r < 0.0205:
            out.append("{this is not json")
    return out


QUARTER_DAYS = 91


def quarter_start() -> datetime:
    """The demo's quarter ends at midnight today: every event lies in the past, as the future-time
    guard (SPEC §2) requires on the day the demo runs."""
    today = clock.now().astimezone(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=QUARTER_DAYS)


def run_demo(directory: Path, seed: int, complaints: int) -> int:
    from app.platform import Platform
    from app.table import render_table
    from projections.report import build_report

    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    started = time.perf_counter()
    lines = generate(seed=seed, complaints=complaints, start=quarter_start(), days=QUARTER_DAYS)
    feed = directory / "events.jsonl"
    feed.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"generated {len(lines)} envelopes for {complaints} complaints (seed {seed}) -> {feed}", file=sys.stderr)
    url = f"sqlite:///{directory / 'recovery.db'}"
    platform = Platform(url)
    try:
        outcomes = platform.ingest_lines(lines)
        report = build_report(platform.app.dialect, platform.app.datastore, platform.policy, None, None, "region")
    finally:
        platform.close()
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.result] = counts.get(o.result, 0) + 1
    print(f"ingested in {time.perf_counter() - started:.1f}s: accepted {counts.get('accepted', 0)}, "
          f"duplicates {counts.get('duplicate', 0)}, rejected {counts.get('rejected', 0)}; store {url}",
          file=sys.stderr)
    print(render_table(report))
    return 0
