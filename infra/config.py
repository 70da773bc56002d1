"""Settings read from the environment, with an error that names the setting when a value is bad."""

from __future__ import annotations

import os

CACHED_COMPLAINTS = 20_000  # the default of RECOVERY_CACHED_COMPLAINTS


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    value = os.environ.get(name)
    try:
        number = int(value) if value else default
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {number}")
    return number


def cached_complaints() -> int:
    """RECOVERY_CACHED_COMPLAINTS: how many complaints' aggregates, and separately their read-model
    facts, a process keeps in memory between batches. More than the complaints in flight at once
    saves reloading them; memory grows with it (a few KB each)."""
    return env_int("RECOVERY_CACHED_COMPLAINTS", CACHED_COMPLAINTS, minimum=1)
