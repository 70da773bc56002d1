"""A store written by the previous release (tests/fixtures/release-1.sqlite3: the November scenario,
ingested by commit 49c1c30) opens under this one with nothing lost and every figure unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from app.cli import main
from app.platform import Platform
from projections.history import complaint_history
from projections.report import build_report

FIXTURES = Path(__file__).parents[1] / "fixtures"
DROPPED = {"recovered_satisfaction_rate"}  # SPEC 2 §5: 1.0 by definition, so no longer reported


def _as_released(got: object, expected: object) -> object:
    """`got` with only the fields the previous release reported (SPEC 2 added others)."""
    if isinstance(got, dict) and isinstance(expected, dict):
        return {k: _as_released(got[k], expected[k]) for k in expected if k not in DROPPED and k in got}
    if isinstance(got, list) and isinstance(expected, list) and len(got) == len(expected):
        return [_as_released(g, e) for g, e in zip(got, expected)]
    return got


def _without_dropped(expected: object) -> object:
    if isinstance(expected, dict):
        return {k: _without_dropped(v) for k, v in expected.items() if k not in DROPPED}
    if isinstance(expected, list):
        return [_without_dropped(v) for v in expected]
    return expected


def test_a_store_of_the_previous_release_gives_the_same_figures(tmp_path, monkeypatch, capsys):
    store = tmp_path / "release-1.sqlite3"
    shutil.copy(FIXTURES / "release-1.sqlite3", store)
    expected = json.loads((FIXTURES / "release-1.reports.json").read_text(encoding="utf-8"))
    url = f"sqlite:///{store}"
    with Platform(url) as p:  # its read model is rebuilt from the log at start (a new schema version)
        p.catch_up()
        for by in (None, "region", "unit"):
            got = build_report(p.app.dialect, p.app.datastore, p.policy, None, None, by)
            assert got["ingest"].pop("unknown_fields") == {}  # counted from this release on
            assert (got.pop("rewards"), got.pop("cases")) == ([], [])  # no case events then (SPEC §7)
            assert _as_released(got, expected[str(by)]) == _without_dropped(expected[str(by)]), by
            # What SPEC 2 added, for a history that had none of it: no public opinion; retention
            # by resolution from the closings that said whether the customer stayed.
            assert got["totals"]["public_opinion"] == 0 and got["totals"]["public_opinion_rate"] == 0.0
            assert set(got["totals"]["retention_by_resolution"]) == {"unresolved", "resolved", "resolved_quickly"}
        assert complaint_history(p.app, p.policy, "C2")["state"]["repeat_of"] == "C1"
    monkeypatch.setenv("RECOVERY_DATABASE_URL", url)
    assert main(["audit", "verify"]) == 0
    assert main(["rebuild", "--check"]) == 0
    assert "MATCHES" in capsys.readouterr().out
