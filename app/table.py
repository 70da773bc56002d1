"""Plain-text rendering of the KPI report for a terminal."""

from __future__ import annotations

from typing import Any

COLUMNS = [
    ("received", "recv"), ("open", "open"), ("repeat_rate", "repeat%"), ("upgraded_rate", "upgr%"),
    ("timely_rate", "timely%"), ("fcr_rate", "fcr%"), ("satisfaction_rate", "satisf%"),
    ("recovery_rate", "recov%"), ("public_opinion_rate", "public%"), ("compensation_total", "comp CNY"),
    ("quiet_hours_violations", "quiet"),
]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value * 100:.1f}"
    return str(value)


def render_table(report: dict[str, Any]) -> str:
    rows = [("total", report["totals"])] + [(g["key"], g) for g in report.get("groups", [])]
    header = [report.get("by", "")] + [title for _, title in COLUMNS]
    body = [[name] + [_cell(r[key]) for key, _ in COLUMNS] for name, r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    as_of = f", as recorded at {report['as_of']}" if report.get("as_of") else ""
    out = [f"Service recovery report {report['from']} .. {report['to']} ({report['timezone']}){as_of}",
           f"timely-rate target {report['timely_rate_target'] * 100:.0f}%", "", line(header),
           line(["-" * w for w in widths])]
    out += [line(r) for r in body]
    t = report["totals"]
    out += ["", "recovery outcomes: " + ", ".join(
        f"{k} {t[k]}" for k in ("recovered", "partially_recovered", "not_recovered", "lost", "unknown"))]
    stages = ", ".join(f"{k} {n}" for k, n in t["public_opinion_by_stage"].items())
    out += [f"public opinion: {t['public_opinion']} complaints ({stages}); {t['public_opinion_active']} in outbreak"
            f" or surge now, {t['public_opinion_awaiting_contact']} not contacted since"]
    benchmark = report.get("retention_benchmark", {})
    out += ["retention by resolution (ours / survey): " + ", ".join(
        f"{k.replace('_', ' ')} {_cell(v)}% / {_cell(benchmark.get(k))}% of {t['retention_by_resolution_closed'][k]}"
        for k, v in t["retention_by_resolution"].items())]
    pens = report["penalties"]
    if pens:
        top = sorted(pens, key=lambda p: -float(p["amount"]))[:10]
        out += ["", f"penalties: {len(pens)} persons/units; highest:"]
        out += [f"  {p['who']:<24} {p['month']}  {p['amount']:>9} CNY  {p['points']} pts" for p in top]
    out += render_cases(report)
    i = report["ingest"]
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(i["rejected_by_reason"].items()))
    out += ["", f"ingest (all time): accepted {i['accepted']}, duplicates {i['duplicates']}, "
            f"rejected {i['rejected']}" + (f" ({reasons})" if reasons else "")]
    if i.get("unknown_fields"):
        out += ["unknown fields (tolerated): " + ", ".join(f"{k} {n}" for k, n in sorted(i["unknown_fields"].items()))]
    return "\n".join(out)


def render_cases(report: dict[str, Any]) -> list[str]:
    """Rewards (SPEC §7) beside the penalties, and each author's submissions against the quota."""
    out = []
    if report.get("rewards"):
        out += ["", f"rewards: {len(report['rewards'])} persons/units"]
        out += [f"  {r['who']:<24} {r['month']}  {r['amount']:>9} CNY  selected {r['reasons']['case_selected']}"
                + (f", organisation award {r['reasons']['organisation_award']}"
                   if r["reasons"]["organisation_award"] else "") for r in report["rewards"]]
    if report.get("cases"):
        short = [c for c in report["cases"] if c["submitted"] < c["quota"]]
        out += ["", f"typical cases: {len(report['cases'])} author-months, {len(short)} short of quota"]
        out += [f"  {c['author']:<24} {c['unit']:<20} {c['month']}  {c['submitted']}/{c['quota']}"
                + ("  SHORT" if c["submitted"] < c["quota"] else "") for c in report["cases"]]
    return out


def render_history(h: dict[str, Any]) -> str:
    if "case_id" in h:
        return _render_case(h)
    s = h["state"]
    as_of = f" as recorded at {h['as_of']}" if h["as_of"] else ""
    out = [f"Complaint {h['complaint_id']}{as_of} ({h['timezone']})",
           f"  status {s['status']}, received {s['received_at']}, deadline {s['deadline']}: {s['timeliness']}"
           + (" (overdue)" if s["overdue"] else ""),
           f"  compensation {s['compensation_total']} CNY, recovery outcome {s['recovery_outcome'] or '-'}"
           + (f", repeats {s['repeat_of']}" if s["repeat_of"] else "")
           + (f", public opinion {s['public_opinion']}" if s.get("public_opinion") else ""), "", "  events:"]
    for e in h["events"]:
        who = f"{e['actor']} ({e['role']}{', ' + e['unit'] if e['unit'] else ''})"
        flags = "".join(f" [{k}]" for k in ("quiet_hours_violation", "upgrades") if e.get(k))
        data = ", ".join(f"{k}={v}" for k, v in e["data"].items() if k != "responsible")
        out.append(f"    {e['occurred_at']}  {e['type']:<26} {who}{flags}  {data}")
    if h["penalties"]:
        out += ["", "  penalties:"]
        out += [f"    {p['at']}  {p['reason']:<22} {p['role']:<18} {p['who']:<16} {p['amount']:>7} CNY  "
                f"{p['points']} pts" for p in h["penalties"]]
    return "\n".join(out)


def _render_case(h: dict[str, Any]) -> str:
    s, a = h["state"], h["state"]["author"]
    as_of = f" as recorded at {h['as_of']}" if h["as_of"] else ""
    out = [f"Case {h['case_id']}{as_of} ({h['timezone']})",
           f"  by {a['id']} ({a['kind']}, {a['unit']}), submitted {s['submitted_at']}",
           f"  selected {s['selected_at']} in round {s['round']}, reward {s['reward']} CNY" if s["round"]
           else "  not selected", "", "  events:"]
    for e in h["events"]:
        data = ", ".join(f"{k}={v}" for k, v in e["data"].items())
        out.append(f"    {e['occurred_at']}  {e['type']:<26} {e['actor']} ({e['role']})  {data}")
    return "\n".join(out)
