"""The garbage collector, set for processes that keep large caches.

CPython examines every object of its oldest generation whenever a quarter more objects have
survived into it since the last full collection (and ten middle-generation collections have run).
A process keeping tens of thousands of complaints cached (aggregates, read-model facts) while
batches churn through short-lived objects (envelopes, events, rows) ran such a full collection
about once a second: 16% of a 1,000,000-event file ingest. Young collections every 10,000
allocations instead of 700 let a batch's short-lived objects die young instead of being promoted,
and a full collection waits for 100 middle-generation ones; the housekeeping (Platform) runs one a
minute, which bounds how long cyclic garbage can wait in the old generation.
"""

from __future__ import annotations

import gc

YOUNG_COLLECTION_ALLOCATIONS = 10_000


def collect_rarely() -> None:
    gc.set_threshold(YOUNG_COLLECTION_ALLOCATIONS, 20, 100)  # defaults: 700, 10, 10


def collect_all() -> None:
    gc.collect()
