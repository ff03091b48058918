"""StoreRunner: one worker thread owns the store; the event loop stays free meanwhile."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from pathlib import Path

import pytest

from bot import topics
from bot.runtime import FULL_GC_EVERY, StoreRunner, settle_gc
from bot.store import Store


async def test_calls_run_in_order_on_one_thread_that_is_not_the_loops() -> None:
    runner = StoreRunner(Store.open(":memory:"))
    try:

        def where(store: Store, n: int, *, tag: str) -> tuple[int, str, int]:
            return n, tag, threading.get_ident()

        results = await asyncio.gather(*(runner.call(where, n, tag=f"t{n}") for n in range(20)))
        assert [(n, tag) for n, tag, _ in results] == [(n, f"t{n}") for n in range(20)]
        threads = {ident for _, _, ident in results}
        assert len(threads) == 1
        assert threads != {threading.get_ident()}
    finally:
        await runner.close()


async def test_a_file_store_works_through_the_runner(tmp_path: Path) -> None:
    runner = StoreRunner(Store.open(tmp_path / "bot.db"))
    try:
        assert await runner.call(lambda s: s.count_papers()) == 0
        mode = await runner.call(lambda s: s.conn.execute("PRAGMA journal_mode").fetchone()[0])
        assert mode == "wal"
    finally:
        await runner.close()


async def test_exceptions_propagate_to_the_caller() -> None:
    runner = StoreRunner(Store.open(":memory:"))
    try:

        def boom(store: Store) -> None:
            raise ValueError("bad")

        with pytest.raises(ValueError, match="bad"):
            await runner.call(boom)
        assert await runner.call(lambda s: 41 + 1) == 42  # the worker survives
    finally:
        await runner.close()


async def test_a_slow_call_does_not_block_the_event_loop() -> None:
    runner = StoreRunner(Store.open(":memory:"))
    try:
        beats = 0

        async def heartbeat() -> None:
            nonlocal beats
            while True:
                await asyncio.sleep(0.01)
                beats += 1

        task = asyncio.create_task(heartbeat())
        await runner.call(lambda s: time.sleep(0.3))
        task.cancel()
        # A blocked loop would have managed none or one beat in that time.
        assert beats >= 10
    finally:
        await runner.close()


async def test_close_closes_the_store_and_refuses_later_calls() -> None:
    store = Store.open(":memory:")
    runner = StoreRunner(store)
    await runner.close()
    await runner.close()  # idempotent
    with pytest.raises(Exception, match="closed"):
        store.conn.execute("SELECT 1")
    with pytest.raises(RuntimeError, match="closed"):
        await runner.call(lambda s: None)


def test_settle_gc_freezes_start_up_objects_and_makes_full_collections_rare() -> None:
    before = gc.get_threshold()
    try:
        settle_gc()
        assert gc.get_freeze_count() > 0
        assert topics._lexicon_index.cache_info().currsize == 1  # built before the freeze
        assert gc.get_threshold() == (before[0], before[1], FULL_GC_EVERY)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
