"""What a long-running process does once its start-up is done: settle the garbage collector.

`paperbot run` calls `settle_gc` after the store, the adapters and the scheduler are built and
before the first command is answered (so does the stalls benchmark, to measure the same
process).
"""

from __future__ import annotations

import gc

from bot import topics

# Full collections after this many younger ones (CPython's default is 10): what the store and
# look-ups keep (analysed papers above all) makes each full pass cost 50-130 ms, which stops
# every thread, so every look-up running or queued then waits for it.
FULL_GC_EVERY = 100


def settle_gc() -> None:
    """Once start-up is done: exempt what it built from collection, and collect fully less often."""
    # Modules, adapters and the lexicon live as long as the process: scanning them again in
    # every full collection is a third of its cost. Young cycles are still collected as before.
    # The lexicon's index is built lazily: built now, the first look-up does not wait for it,
    # and it is frozen with the rest.
    topics.prepare()
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_GC_EVERY)
