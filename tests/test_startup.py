"""Start-up's last step: the garbage collector settled for a long-running process."""

from __future__ import annotations

import gc

from bot.startup import FULL_GC_EVERY, settle_gc
from bot.topics import language


def test_settle_gc_freezes_start_up_objects_and_makes_full_collections_rare() -> None:
    before = gc.get_threshold()
    try:
        settle_gc()
        assert gc.get_freeze_count() > 0
        assert language._lexicon_index.cache_info().currsize == 1  # built before the freeze
        assert gc.get_threshold() == (before[0], before[1], FULL_GC_EVERY)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
