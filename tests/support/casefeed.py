"""SPEC §7 case envelopes, so tests read like a typical-case library's year."""

from __future__ import annotations

import json
from typing import Any

COMMITTEE = {"id": "committee-1", "role": "complaint_manager", "unit": "branch"}


def case_env(event_id: str, kind: str, case_id: str, at: str, data: dict[str, Any],
             key: str = "case_id") -> str:
    return json.dumps({"event_id": event_id, "type": f"case.{kind}", key: case_id, "occurred_at": at,
                       "actor": COMMITTEE, "data": data})


def submitted(case_id: str, at: str, author: str = "h-1", unit: str = "huaian-cs",
              kind: str = "dedicated_handler", **extra: Any) -> str:
    data = {"author": {"id": author, "unit": unit, "kind": kind}, "title": f"case {case_id}", **extra}
    return case_env(f"sub-{case_id}", "submitted", case_id, at, data)


def selected(case_id: str, at: str, round_: str = "2026-Q4", event_id: str | None = None) -> str:
    return case_env(event_id or f"sel-{case_id}", "selected", case_id, at, {"round": round_})
