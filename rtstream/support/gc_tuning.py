"""The garbage collector tuned for a stream processor's heap.

Every record the hot path decodes is a fresh dict, so CPython's default young-generation threshold
(700 container allocations) runs a collection every few hundred records, and each one also walks
the objects that survived: on W1 that was a quarter of the daemon's CPU (5.4 -> 4.1 us per record
with a threshold of 10,000; bench/RESULTS.md). The records are freed by reference counting anyway;
the collector is only needed for cycles, which the hot path does not make. What start-up built
(modules, config, clients) lives as long as the process, so it is frozen out of every collection.
"""

from __future__ import annotations

import gc

from rtstream.support.malloc_tuning import keep_freed_memory

YOUNG_THRESHOLD = 10_000


def tune_for_streaming() -> None:
    keep_freed_memory()  # the heap's side of the same churn (support/malloc_tuning.py)
    gc.collect()  # start-up's own garbage is not frozen with it
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
