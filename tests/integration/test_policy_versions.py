"""Policy versions in the log (SPEC §3.5): last year's figures stay last year's, whatever policy is
loaded when the read model is rebuilt. On SQLite and PostgreSQL, through the command line."""

from __future__ import annotations

import json
from pathlib import Path

from support.feed import Feed

from app.cli import main
from app.platform import Platform

V2_CHANGES = [  # other limits, penalties, quiet hours and holidays
    ("vip = 8,", "vip = 6,"),
    ('deadline_missed_handler = "100.00"', 'deadline_missed_handler = "200.00"'),
    ('unrecorded_points = "0.02"', 'unrecorded_points = "0.05"'),
    ('quiet_hours = { start = "22:00", end = "08:00" }', 'quiet_hours = { start = "21:00", end = "08:00" }'),
    ("holidays = []", 'holidays = ["2026-12-25"]'),
]


def v2(tmp_path: Path, replay_policy_file: Path) -> Path:
    text = replay_policy_file.read_text(encoding="utf-8")
    for old, new in V2_CHANGES:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "policy-v2.toml"
    path.write_text(text, encoding="utf-8")
    return path


def month(tag: str, day0: str) -> Feed:
    """A vip complaint that misses its deadline, one that is contacted at 21:30, an unrecorded one."""
    f = Feed(id_prefix=f"{tag}-")
    f.received(f"{tag}1", f"{day0}T09:00:00+08:00", tier="vip")
    f.received(f"{tag}2", f"{day0}T10:00:00+08:00")
    f.envelope("responded", f"{tag}2", f"{day0}T21:30:00+08:00", {"channel": "call"})
    f.received(f"{tag}3", f"{day0}T11:00:00+08:00", unrecorded_by_unit="huaian-store-1")
    f.received(f"{tag}4", f"{day0[:8]}28T09:00:00+08:00")  # moves the watcher's clock past the deadlines
    return f


def run(capsys, *args: str) -> str:
    capsys.readouterr()
    assert main(list(args)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def report(capsys, *args: str) -> dict:
    return json.loads(run(capsys, "report", "--format", "json", *args))


def test_figures_keep_the_version_in_force_when_they_happened_and_a_rebuild_keeps_them(
        store, capsys, tmp_path, replay_policy_file, monkeypatch):
    run(capsys, "ingest", str(month("N", "2026-11-02").write(tmp_path / "november.jsonl")))
    november = report(capsys, "--from", "2026-11-01", "--to", "2026-11-30")
    h1 = {p["who"]: p for p in november["penalties"]}["h-1"]
    assert (h1["amount"], h1["reasons"]["deadline_missed"]) == ("300.00", 3)  # 100 each under v1
    assert november["totals"]["quiet_hours_violations"] == 0

    out = run(capsys, "policy", "adopt", str(v2(tmp_path, replay_policy_file)),
              "--effective-from", "2026-12-01T00:00:00+08:00", "--by", "wang.li")
    assert out.startswith("adopted policy version 2, effective from 2026-11-30T16:00:00+00:00")
    run(capsys, "ingest", str(month("D", "2026-12-02").write(tmp_path / "december.jsonl")))
    december = report(capsys, "--from", "2026-12-01", "--to", "2026-12-31")
    pens = {p["who"]: p for p in december["penalties"]}
    assert pens["h-1"]["amount"] == "600.00" and pens["huaian-store-1"]["points"] == "0.05"  # 200 each
    assert december["totals"]["quiet_hours_violations"] == 1  # 21:30 is quiet under v2
    all_before = report(capsys, "--by", "region")
    # November kept v1's rules (a complaint of 28 November missed its deadline since, at 100)
    h1 = {p["who"]: p for p in report(capsys, "--from", "2026-11-01", "--to", "2026-11-30")["penalties"]}["h-1"]
    assert (h1["amount"], h1["reasons"]["deadline_missed"]) == ("400.00", 4)

    # A rebuild under any policy file, even one that says otherwise, reproduces every figure.
    monkeypatch.setenv("RECOVERY_POLICY_FILE", str(v2(tmp_path, replay_policy_file)))
    capsys.readouterr()
    assert main(["rebuild"]) == 0
    assert "RECOVERY_POLICY_FILE" in capsys.readouterr().err  # the mismatch is said, every time
    assert report(capsys, "--by", "region") == all_before
    assert main(["rebuild", "--check"]) == 0

    listed = json.loads(run(capsys, "policy", "list", "--format", "json"))
    assert [(v["version"], v["adopted_by"]) for v in listed] == [(1, "recovery (first write)"), (2, "wang.li")]
    shown = run(capsys, "policy", "show", "--at", "2026-11-15T00:00")
    assert shown.startswith("# policy version 1") and "vip = 8" in shown
    assert "vip = 6" in run(capsys, "policy", "show", "--at", "2026-12-05T00:00")
    assert run(capsys, "policy", "show").startswith("# policy version 1")  # today, before v2 takes effect


def test_a_retroactive_adoption_is_refused_naming_both_times(store, capsys, tmp_path, replay_policy_file):
    run(capsys, "ingest", str(month("N", "2026-11-02").write(tmp_path / "november.jsonl")))
    capsys.readouterr()
    assert main(["policy", "adopt", str(v2(tmp_path, replay_policy_file)),
                 "--effective-from", "2026-11-15T00:00:00+08:00"]) == 2
    err = capsys.readouterr().err
    assert "effective from 2026-11-15T00:00:00+08:00" in err and "occurred at 2026-11-28T01:00:00+00:00" in err
    assert main(["policy", "adopt", str(v2(tmp_path, replay_policy_file)),
                 "--effective-from", "2026-12-01T00:00:00+08:00"]) == 0
    # Two versions may not share a moment: the second is refused, and says so.
    capsys.readouterr()
    assert main(["policy", "adopt", str(v2(tmp_path, replay_policy_file)),
                 "--effective-from", "2026-12-01T00:00:00+08:00"]) == 2
    assert "already adopted" in capsys.readouterr().err


def test_policy_check_names_the_bad_key(tmp_path, capsys, replay_policy_file):
    bad = tmp_path / "bad.toml"
    bad.write_text(replay_policy_file.read_text().replace("window_days = 30", "window_days = -3"))
    assert main(["policy", "check", str(bad)]) == 2
    assert "repeat.window_days" in capsys.readouterr().err
    assert main(["policy", "check", str(replay_policy_file)]) == 0


def test_a_running_process_takes_up_a_version_adopted_meanwhile(store_url, policy, tmp_path, replay_policy_file):
    """As `serve` does: the next batch after an adoption by another process applies the new version."""
    with Platform(store_url, policy) as running:
        running.ingest_lines(month("N", "2026-11-02").lines)
        with Platform(store_url) as other:
            other.book.adopt(v2(tmp_path, replay_policy_file).read_text(), _at("2026-12-01T00:00:00+08:00"), "ops")
        running.ingest_lines(month("D", "2026-12-02").lines)
        running.catch_up()
        from projections.report import build_report
        pens = build_report(running.app.dialect, running.app.datastore, running.policy, None, None)["penalties"]
    amounts = {(p["who"], p["month"]): p["amount"] for p in pens}
    assert (amounts[("h-1", "2026-11")], amounts[("h-1", "2026-12")]) == ("400.00", "600.00")  # 100 and 200 each


def _at(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text)
