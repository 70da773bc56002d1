"""Bounded memory: the garbage collector set for processes that keep large caches, and the
least-recently-used map those caches are made of.

CPython examines every object of its oldest generation whenever a quarter more objects have
survived into it since the last full collection (and ten middle-generation collections have run).
A process keeping tens of thousands of complaints cached (aggregates, read-model facts) while
batches churn through short-lived objects (envelopes, events, rows) ran such a full collection
about once a second: 16% of a 1,000,000-event file ingest. Young collections every 10,000
allocations instead of 700 let a batch's short-lived objects die young instead of being promoted,
and a full collection waits for 100 middle-generation ones; the housekeeping (app/housekeeping.py) runs one a
minute, which bounds how long cyclic garbage can wait in the old generation.
"""

from __future__ import annotations

import gc
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")
YOUNG_COLLECTION_ALLOCATIONS = 10_000


def collect_rarely() -> None:
    gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, 20, 100)  # defaults: 700, 10, 10


def collect_all() -> None:
    gc.collect()


class Recent(Generic[K, V]):
    """A map of at most `size` entries: setting or getting one makes it the most recent, and the
    least recent is dropped when a new one would exceed the size."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def __setitem__(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
