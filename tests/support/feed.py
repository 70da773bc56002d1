"""A small builder for SPEC §2 envelopes, so tests read like complaint histories."""

from __future__ import annotations

import itertools
import json
from typing import Any

AGENT = {"id": "emp-1001", "role": "hotline_agent", "unit": "huaian-cs"}
LEAD = {"id": "emp-2001", "role": "team_lead", "unit": "huaian-cs"}


class Feed:
    def __init__(self, id_prefix: str = "src-") -> None:
        self.lines: list[str] = []
        self._ids = itertools.count(1)
        self.id_prefix = id_prefix

    def envelope(self, kind: str, complaint: str, at: str, data: dict[str, Any] | None = None,
                 actor: dict[str, Any] | None = None, event_id: str | None = None) -> dict[str, Any]:
        env = {"event_id": event_id or f"{self.id_prefix}{next(self._ids):06d}", "type": f"complaint.{kind}",
               "complaint_id": complaint, "occurred_at": at, "actor": actor or AGENT, "data": data or {}}
        self.lines.append(json.dumps(env))
        return env

    def received(self, complaint: str, at: str, *, tier: str = "standard", channel: str = "hotline",
                 category: str = "billing", region: str = "huaian", customer: str | None = None,
                 actor: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        data = {"customer_id": customer or f"cust-{complaint}", "customer_tier": tier, "channel": channel,
                "category": category, "region": region,
                "responsible": {"handler": "h-1", "team_lead": "tl-1", "department_head": "dh-1"}}
        data.update(extra)
        return self.envelope("received", complaint, at, data, actor)

    def resolved(self, complaint: str, at: str, outcome: str = "resolved", **extra: Any) -> dict[str, Any]:
        return self.envelope("resolved", complaint, at, {"outcome": outcome, **extra})

    def closed(self, complaint: str, at: str, satisfaction: str = "satisfied", **extra: Any) -> dict[str, Any]:
        return self.envelope("closed", complaint, at, {"satisfaction": satisfaction, **extra}, LEAD)

    def public_opinion(self, complaint: str, at: str, stage: str, source: str = "social") -> dict[str, Any]:
        return self.envelope("public_opinion", complaint, at, {"stage": stage, "source": source})

    def resend(self, env: dict[str, Any]) -> None:
        self.lines.append(json.dumps(env))

    def raw(self, line: str) -> None:
        self.lines.append(line)

    def write(self, path: Any) -> Any:
        path.write_text("\n".join(self.lines) + "\n", encoding="utf-8")
        return path
