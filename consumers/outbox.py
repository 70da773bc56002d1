"""Kafka out: the transactional outbox. A relay follows the event store with its own tracking
position and publishes every recorded complaint and case event to the outbound topic, and every dead letter
that came from Kafka to the dead-letter topic. Nothing is published that was not recorded; the
position moves only after the broker acknowledged, so nothing recorded is skipped. After a crash
a few messages may be sent again with the same `event_id` header, which consumers deduplicate.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from typing import Any

from eventsourcing.application import Recording
from eventsourcing.persistence import Notification, Tracking
from kafka import KafkaProducer
from kafka.errors import KafkaError

from consumers.settings import KafkaSettings
from domain.events import DEAD_LETTER, is_case_event, is_complaint_event, spec_type
from infra.memory import Recent
from infra.privacy import ERASED, Keyring, key_ids, unseal, unseal_data
from infra.store import RecoveryApplication, following

RELAY = "outbox"
COMPLAINT_IDS_KEPT = 50_000  # the complaint ids of aggregates, for events that do not carry one
log = logging.getLogger("recovery.outbox")
_EXTRAS = ("deadline", "repeat_of", "upgraded", "upgrades", "quiet_hours_violation")


class OutboxRelay:
    def __init__(self, app: RecoveryApplication, producer: KafkaProducer, settings: KafkaSettings):
        self.app, self.producer, self.settings = app, producer, settings
        self._complaint_ids: Recent[Any, str] = Recent(COMPLAINT_IDS_KEPT)
        self.keyring = Keyring(app)

    def _complaint_id(self, originator_id: Any, event: Any, name: str = "complaint_id") -> str:
        """The complaint's id (or the case's: `name` case_id), kept by aggregate."""
        if hasattr(event, name):
            complaint_id = getattr(event, name)
        else:
            complaint_id = (self._complaint_ids.get(originator_id)
                            or getattr(self.app.repository.get(originator_id), name))
        self._complaint_ids[originator_id] = complaint_id
        return complaint_id

    def publish_pending(self, limit: int = 1000, recorded: Sequence[Recording] = ()) -> int:
        """Publish what was recorded since the relay's position; returns how many notifications.
        `recorded`: what this process has just saved, used as it is when it is next in the log."""
        last = self.app.recorder.max_tracking_id(RELAY) or 0
        run = following(recorded, last)[:limit]
        if run:
            # The events are @event-made classes: their attributes are unknown to the type checker.
            events: list[tuple[Notification, Any]] = [(r.notification, r.domain_event) for r in run]
        else:
            notifications = self.app.recorder.select_notifications(start=last + 1, limit=limit)
            events = [(n, self.app.mapper.to_domain_event(n)) for n in notifications]
        if not events:
            return 0
        # Downstream systems get the personal fields in clear (or "[erased]"), as they were sent.
        keys = self.keyring.by_id(key_ids([*(getattr(e, "data", {}) for _, e in events),
                                            *({"raw": getattr(e, "raw", None)} for _, e in events),
                                            *({"raw": getattr(e, "original", None)} for _, e in events)]))
        sent = []
        for n, event in events:
            if is_complaint_event(event) or is_case_event(event):
                sent.append(self._publish_complaint_event(n, event, keys))
            elif type(event) is DEAD_LETTER and event.source.count("/") == 2:
                sent.append(self._publish_dead_letter(event, _original_bytes(event, keys)))
        self.producer.flush()
        try:
            for future in sent:  # flush() does not raise for a failed send
                future.get(timeout=30)
        except KafkaError as error:
            # The position stays: everything after it is sent again next time (consumers
            # deduplicate by the event_id header).
            log.warning(json.dumps({"event": "relay_send_failed", "error": str(error)[:300]}))
            return 0
        self.app.recorder.insert_tracking(Tracking(RELAY, events[-1][0].id))
        return len(events)

    def _publish_complaint_event(self, n: Notification, event: Any, keys: dict[str, bytes]) -> Any:
        stream = "case_id" if is_case_event(event) else "complaint_id"  # SPEC §7: cases by case_id
        complaint_id = self._complaint_id(n.originator_id, event, stream)
        stable_id = f"{n.originator_id}:{n.originator_version}"
        body = {"event_id": stable_id, "source_event_id": event.event_id,
                "type": spec_type(event), stream: complaint_id,
                "occurred_at": event.occurred_at.isoformat(), "recorded_at": event.timestamp.isoformat(),
                "actor": event.actor, "data": unseal_data(event.data, keys)}
        for extra in _EXTRAS:
            if hasattr(event, extra):
                value = getattr(event, extra)
                body[extra] = value.isoformat() if hasattr(value, "isoformat") else value
        return self.producer.send(self.settings.outbound_topic, key=complaint_id.encode(),
                           value=json.dumps(body, ensure_ascii=False).encode(),
                           headers=[("event_id", stable_id.encode()), ("type", body["type"].encode())])

    def _publish_dead_letter(self, event: Any, raw: bytes) -> Any:
        topic, partition, offset = event.source.split("/")
        headers = [("reason", event.reason.encode()), ("message", event.message.encode()),
                   ("source_topic", topic.encode()), ("source_partition", partition.encode()),
                   ("source_offset", offset.encode())]
        return self.producer.send(self.settings.dlq_topic, value=raw,
                           key=(event.complaint_id or "").encode() or None, headers=headers)


def _original_bytes(event: Any, keys: dict[str, bytes]) -> bytes:
    """A dead letter's line as it came (its bytes kept in base64 when the stored text is not
    exactly them), or as stored: "[erased]" once its customer is erased."""
    text = unseal(event.raw, keys)
    original = getattr(event, "original", None)
    if original and text != ERASED:
        plain = unseal(original, keys)
        if plain != ERASED:
            return base64.b64decode(plain)
    return str(text).encode("utf-8")
