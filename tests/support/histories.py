"""Histories that several tests replay: the hand-worked November of the scenario tests, and the
metrics tests' store (that November, two October complaints and November's typical cases), seen on
2026-11-25 (so November is `current`)."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from support.casefeed import selected, submitted
from support.feed import Feed

D = "2026-11-{:02d}T{}:00+08:00"


def at(day: int, hhmm: str) -> str:
    return D.format(day, hhmm)


def november_history() -> Feed:
    f = Feed()
    # C1: VIP, resolved and closed satisfied the same morning. Later repeated by C8 after closing.
    f.received("C1", at(2, "09:00"), tier="vip", customer="cust-A")
    # C2: same customer and issue an hour later -> detected repeat of C1; resolved late (due 18:00).
    f.received("C2", at(2, "10:00"), tier="vip", customer="cust-A")
    f.resolved("C1", at(2, "12:00"))
    c1_closed = f.closed("C1", at(2, "13:00"), retained=True)
    f.resend(c1_closed)  # a resent event: a duplicate, not a rejection
    f.resolved("C2", at(2, "20:00"))
    # C3: came in through the regulator (upgraded at intake); network + urgent -> 24 h.
    f.received("C3", at(3, "09:00"), channel="regulator", category="network", urgency="urgent")
    f.resolved("C3", at(3, "15:00"), outcome="partially_resolved")
    f.closed("C3", at(3, "16:00"), satisfaction="neutral")
    # C4: store complaint; staff error verified; refund 80 ok; a gift of 30 would exceed 100 in total.
    store = {"id": "emp-3001", "role": "counter_agent", "unit": "huaian-store-1"}
    f.received("C4", at(4, "10:00"), channel="store", actor=store,
               responsible={"handler": "h-1", "team_lead": "tl-1", "department_head": "dh-1",
                            "channel_supervisor": "cs-1"})
    f.envelope("verified", "C4", at(4, "11:00"), {"liability": "company", "service_fault": True,
                                                  "handling_fault": False})
    f.envelope("compensated", "C4", at(4, "12:00"), {"amount": "80.00", "kind": "refund"}, store)
    f.envelope("compensated", "C4", at(4, "12:30"), {"amount": "30.00", "kind": "gift"}, store)  # over_authority
    f.envelope("assigned", "C4", at(4, "13:00"), {"to": {"handler": "h-2"}})
    # C5: online, never resolved: due 11-07 09:00, missed when the clock passes it (at C6).
    f.received("C5", at(5, "09:00"), channel="online",
               responsible={"handler": "h-1", "team_lead": "tl-1", "department_head": "dh-1",
                            "channel_supervisor": "cs-1"})
    f.resolved("C4", at(5, "09:00"))
    f.closed("C4", at(5, "10:00"), satisfaction="dissatisfied", retained=True)
    f.closed("C5", at(6, "10:00"))  # invalid_transition: not resolved
    f.envelope("responded", "C99", at(6, "11:00"), {"channel": "call"})  # unknown_complaint
    f.raw('{"event_id": "broken"')  # invalid_event
    # C6: premium, a unit failed to record an earlier contact; closed at 23:00 (quiet hours); not retained.
    f.received("C6", at(10, "09:00"), tier="premium", region="xuzhou", unrecorded_by_unit="xuzhou-cs")
    f.resolved("C6", at(10, "10:00"))
    f.closed("C6", at(10, "23:00"), retained=False)
    # C7: called at 22:30 at the customer's request; resolution unresolved; customer unreachable.
    f.received("C7", at(12, "09:00"), region="xuzhou")
    f.envelope("responded", "C7", at(12, "22:30"), {"channel": "call", "customer_requested_time": True})
    f.resolved("C7", at(13, "09:00"), outcome="unresolved")
    f.closed("C7", at(13, "10:00"), satisfaction="unreachable")
    # C8: explicitly repeats C1; went to the media; handling fault found -> 300 to C1's department head.
    f.received("C8", at(14, "09:00"), region="xuzhou", repeat_of="C1")
    f.envelope("escalated", "C8", at(14, "10:00"), {"to": "media"})
    f.envelope("verified", "C8", at(14, "11:00"), {"liability": "company", "service_fault": False,
                                                   "handling_fault": True})
    f.resolved("C8", at(14, "12:00"))
    f.closed("C8", at(14, "13:00"), retained=True)
    # C9: closed satisfied, then the customer called the government hotline: upgraded after closing.
    f.received("C9", at(20, "09:00"), region="xuzhou")
    f.resolved("C9", at(20, "10:00"))
    f.closed("C9", at(20, "11:00"))
    f.envelope("escalated", "C9", at(21, "09:00"), {"to": "government_hotline"})
    return f


SEEN_AT = datetime(2026, 11, 25, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def metrics_history() -> list[str]:
    october = Feed()
    # O1: resolved within the hour, closed satisfied and retained: on time, recovered.
    october.received("O1", "2026-10-15T09:00:00+08:00", region="xuzhou", customer="cust-O1")
    october.resolved("O1", "2026-10-15T10:00:00+08:00")
    october.closed("O1", "2026-10-15T11:00:00+08:00", retained=True)
    # O2: due 10-22 09:00, resolved 10-25: late; the miss costs h-1 100 and tl-1 50 in October.
    october.received("O2", "2026-10-20T09:00:00+08:00", customer="cust-O2")
    # ... and went public on 10-24 (outbreak, still): its next contact, the resolve, 24 h later.
    october.public_opinion("O2", "2026-10-24T09:00:00+08:00", "outbreak")
    october.resolved("O2", "2026-10-25T09:00:00+08:00")
    renamed = [json.dumps({**json.loads(line), "event_id": f"oct-{i}"}) for i, line in enumerate(october.lines)]
    # November's typical cases: two handlers of huaian-cs submit one each (quota 2: short by one
    # each), a department head one; both handlers' cases are selected: 2 x 100, and huaian-cs's award.
    cases = [submitted("K1", "2026-11-03T09:00:00+08:00", author="h-1"),
             submitted("K2", "2026-11-04T09:00:00+08:00", author="h-2"),
             submitted("K3", "2026-11-05T09:00:00+08:00", author="dh-1", kind="department"),
             selected("K1", "2026-11-20T09:00:00+08:00"), selected("K2", "2026-11-20T10:00:00+08:00")]
    return renamed + november_history().lines + cases
