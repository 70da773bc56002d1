"""The one clock. Nothing else reads the wall clock, so replays and tests are deterministic."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

_now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def now() -> datetime:
    return _now()


def use_clock(clock: Callable[[], datetime]) -> Callable[[], datetime]:
    """Inject a clock (a callable returning an aware datetime); returns the previous one."""
    global _now
    previous, _now = _now, clock
    return previous


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    """Integer microseconds since the epoch: how tables store instants, exact and comparable."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)
