"""StoreRunner: one worker thread owns the store; the event loop stays free meanwhile."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path

import pytest

from bot.runtime import BACKGROUND_SHARE, BACKSTOP_PAGES, StoreRunner
from bot.storage import Store


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
        assert await runner.call(lambda s: s.papers.count()) == 0
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


async def _queued_behind_a_gate(
    runner: StoreRunner, submit: list[tuple[str, str, float]]
) -> list[str]:
    """Submit `(name, kind, seconds)` calls while the store thread is held, release it and
    return the names in the order they ran. Background work is owed its share after the gate's
    50 ms, so a 5 ms "turn" of it is queued first: it runs before any command."""
    ran: list[str] = []
    gate = threading.Event()
    held = asyncio.ensure_future(runner.call(lambda s: gate.wait(5)))
    await asyncio.sleep(0.05)  # the thread is inside the gate call now
    kinds = {"first": runner.first, "call": runner.call, "background": runner.background}

    def job(store: Store, name: str, seconds: float) -> None:
        time.sleep(seconds)
        ran.append(name)

    calls = []
    for name, kind, seconds in [("turn", "background", 0.005), *submit]:
        calls.append(asyncio.ensure_future(kinds[kind](job, name, seconds)))
        await asyncio.sleep(0)  # each reaches the queue in this order
    gate.set()
    await asyncio.gather(held, *calls)
    return ran


async def test_first_goes_ahead_of_commands_and_commands_ahead_of_bulk_work() -> None:
    runner = StoreRunner(Store.open(":memory:"))
    try:
        ran = await _queued_behind_a_gate(
            runner,
            [("bulk", "background", 0), ("command", "call", 0), ("ledger", "first", 0)],
        )
        assert ran == ["ledger", "turn", "command", "bulk"]
    finally:
        await runner.close()


async def test_bulk_work_keeps_its_share_under_a_flood_of_commands() -> None:
    # Strict priority ran all the commands first: a digest run due during 100 look-ups a
    # second on a slow host sent nothing.
    runner = StoreRunner(Store.open(":memory:"))
    try:
        ran = await _queued_behind_a_gate(
            runner,
            [(f"bulk{n}", "background", 0.002) for n in range(4)]
            + [(f"command{n}", "call", 0.002) for n in range(60)],
        )
        bulk = [i for i, name in enumerate(ran) if name.startswith("bulk")]
        assert ran[:2] == ["turn", "command0"]  # after its turn, a waiting command comes first
        assert bulk[-1] < len(ran) - 1  # all the bulk work ran amid the commands
        # Each bulk call waits for about (1 - share) / share of its own time in commands.
        gaps = [b - a - 1 for a, b in itertools.pairwise(bulk)]
        expected = (1 - BACKGROUND_SHARE) / BACKGROUND_SHARE
        assert all(expected / 3 <= gap <= expected * 3 for gap in gaps), (gaps, ran)
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


async def test_a_file_store_is_checkpointed_by_its_own_thread_not_by_commits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ck.db"
    others = set(threading.enumerate())
    runner = StoreRunner(Store.open(path), checkpoint_every=0.01)
    ours = [t for t in threading.enumerate() if t not in others]
    try:
        backstop = await runner.call(
            lambda s: s.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        )
        assert backstop == BACKSTOP_PAGES
        assert "paperbot-checkpoint" in {t.name for t in ours}
        before = path.stat().st_size

        def write(store: Store) -> None:
            with store.conn:
                store.conn.execute("CREATE TABLE filler (x BLOB)")
                store.conn.executemany(
                    "INSERT INTO filler VALUES (?)", [(b"x" * 4000,) for _ in range(200)]
                )

        await runner.call(write)
        # The pages reach the database file without any commit checkpointing (200 < 10,000).
        deadline = time.monotonic() + 10
        while path.stat().st_size < before + 200 * 4000 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert path.stat().st_size >= before + 200 * 4000
        # A reader on another connection sees the rows.
        assert await asyncio.to_thread(_count_filler, path) == 200
    finally:
        await runner.close()
    assert not any(t.is_alive() for t in ours)


def _count_filler(path: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM filler").fetchone()[0])
    finally:
        conn.close()


async def test_a_memory_store_has_no_checkpoint_thread() -> None:
    runner = StoreRunner(Store.open(":memory:"))
    try:
        assert await runner.call(lambda s: s.wal_path) is None
    finally:
        await runner.close()
