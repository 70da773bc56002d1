"""`recovery demo --live`: the demo generator's envelopes played to the inbound topic as if they
happened now. The generated timeline starts now and runs at `speed` × real time, at most `rate`
events a second; each envelope is stamped with the moment it is sent (never ahead of the clock, which
the platform refuses), keyed by its complaint_id (a case's by its case_id). Malformed and resent
lines go as generated: the platform refuses them to the dead-letter topic. When the timeline is
played out, the next one (the next seed) follows, its ids tagged anew.

One complaint in 10 is a late upload (SPEC 2.1: a store system that uploads at night): it was
received two days before it arrives, so it is already past its time limit, and the deadline watcher
records the miss on the wall clock within a minute; its handling goes on live from there."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as time_of_day
from typing import Any

from app.demo import QUARTER_DAYS, TZ, generate, quarter_start
from consumers.settings import KafkaSettings
from domain import clock

log = logging.getLogger("recovery.feeder")
UPLOADED_LATE_BY = timedelta(hours=50)  # beyond the standard tier's 48 hours


def uploaded_late(complaint_id: str) -> bool:
    return zlib.crc32(complaint_id.encode()) % 10 == 0


@dataclass
class Arrival:
    """One generated line: when it is due (seconds into the timeline) and its envelope, if it is one."""

    due: float
    line: str
    envelope: dict[str, Any] | None


def _instant(envelope: dict[str, Any] | None) -> datetime | None:
    value = envelope.get("occurred_at") if envelope else None
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=TZ)


def timeline(lines: list[str], opens: time_of_day = time_of_day(8)) -> Iterator[Arrival]:
    """The generator's lines with their offsets from the first day's opening hour (the quiet night
    before it is passed over, with every complaint received then); a line without a time of its own
    (not JSON, no occurred_at) comes with the one before it."""
    opening: datetime | None = None
    origin: datetime | None = None  # the first event played
    before: set[str] = set()  # complaints (and cases) begun before the opening: their later events too
    due = 0.0
    for line in lines:
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        envelope = parsed if isinstance(parsed, dict) else None
        moment = _instant(envelope)
        if moment is not None and opening is None:
            opening = datetime.combine(moment.astimezone(TZ).date(), opens, TZ)
        stream = (envelope or {}).get("complaint_id") or (envelope or {}).get("case_id")
        stream = stream if isinstance(stream, str) else None  # a broken line follows the one before it
        if opening is None or (moment is not None and moment < opening) or (stream is not None and stream in before):
            if stream is not None:
                before.add(stream)
            continue
        if moment is not None:
            origin = origin or moment
            due = max(due, (moment - origin).total_seconds())
        yield Arrival(due, line, envelope)


def stamped(arrival: Arrival, tag: str, now: datetime, cycle: int = 0) -> tuple[bytes | None, bytes]:
    """The key and the line as sent: ids tagged with the run (a new timeline never repeats an earlier
    one's ids, nor the complaint a case is about), a case's round `cycle` years on (a round selects
    five only once), occurred_at now (kept without an offset where the generator broke it so)."""
    envelope = arrival.envelope
    if envelope is None:
        return None, arrival.line.encode()
    out = dict(envelope)
    for field in ("event_id", "complaint_id", "case_id"):
        if isinstance(out.get(field), str):
            out[field] = f"{tag}-{out[field]}"
    data = out.get("data")
    if isinstance(data, dict) and "case_id" in out:
        data = out["data"] = dict(data)
        if isinstance(data.get("complaint_id"), str):
            data["complaint_id"] = f"{tag}-{data['complaint_id']}"
        year, quarter = str(data.get("round", "")).partition("-")[::2]
        if year.isdigit() and cycle:
            data["round"] = f"{int(year) + cycle}-{quarter}"
    occurred = out.get("occurred_at")
    if isinstance(occurred, str) and _instant(envelope) is not None:
        complaint = envelope.get("complaint_id")
        if out.get("type") == "complaint.received" and isinstance(complaint, str) and uploaded_late(complaint):
            now -= UPLOADED_LATE_BY
        local = now.astimezone(TZ).isoformat(timespec="milliseconds")
        out["occurred_at"] = local if datetime.fromisoformat(occurred).tzinfo else local[:19]
    key = out.get("complaint_id") or out.get("case_id")  # each stream's own key (SPEC §2, §7)
    return (key.encode() if isinstance(key, str) else None), json.dumps(out, ensure_ascii=False).encode()


class Pace:
    """When each arrival goes: its place in the timeline at `speed`, and no sooner than 1/rate after
    the one before."""

    def __init__(self, speed: float, rate: float):
        self.speed, self.gap = speed, 1.0 / rate
        self.start = self.last = time.monotonic()

    def restart(self) -> None:
        self.start = time.monotonic()

    def next_at(self, due: float) -> float:
        return max(self.start + due / self.speed, self.last + self.gap)

    def sent(self) -> None:
        self.last = time.monotonic()


def feed(settings: KafkaSettings, speed: float, rate: float, seed: int, complaints: int) -> int:
    from kafka import KafkaProducer

    if speed <= 0 or rate <= 0:
        raise ValueError("--speed and --rate must be above 0")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    logging.getLogger("kafka").setLevel(logging.WARNING)  # one line per connection otherwise
    producer = KafkaProducer(**settings.producer_config())
    pace, sent, cycle = Pace(speed, rate), 0, 0
    log.info(json.dumps({"event": "feeding", "topic": settings.topic, "speed": speed, "rate": rate}))
    try:
        while not stopping.is_set():
            lines = generate(seed=seed + cycle, complaints=complaints, start=quarter_start(), days=QUARTER_DAYS)
            tag = f"L{int(time.time()):x}"
            pace.restart()
            previous: tuple[str, tuple[bytes | None, bytes]] | None = None
            for arrival in timeline(lines):
                wait = pace.next_at(arrival.due) - time.monotonic()
                if wait > 0:
                    producer.flush()
                    if stopping.wait(wait):
                        break
                # A resent line goes again as it went the first time: a duplicate delivery.
                message = previous[1] if previous and previous[0] == arrival.line else stamped(
                    arrival, tag, clock.now(), cycle)
                producer.send(settings.topic, key=message[0], value=message[1])
                previous = (arrival.line, message)
                pace.sent()
                sent += 1
            cycle += 1
    finally:
        producer.flush()
        producer.close()
        log.info(json.dumps({"event": "stopped", "sent": sent}))
    return 0
