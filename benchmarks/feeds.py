"""Topic feeds (`GET /feeds/search.atom`): a request's latency through a real aiohttp server on
127.0.0.1 beside a `/papers` look-up's, the store-thread time of each, the longest the event
loop was held meanwhile, and a full feed's size."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.feeds_http import add_feed_routes
from benchmarks.harness import EPOCH, p50_p99, queries, timed
from bot import feeds
from bot.commands import Command
from bot.importer import import_files, sample_corpus_path
from bot.models import Caller
from bot.runtime import StoreRunner
from bot.search import search
from bot.service import PaperBot
from bot.storage import Store

REQUESTS = 200
CALLER = Caller("console", "bench")


def _open(path: Path | None) -> Store:
    if path is not None:
        return Store.open(path)
    store = Store.open(":memory:")
    import_files(store, [sample_corpus_path()], EPOCH)
    return store


class LoopLag:
    """How late the event loop was to wake a task sleeping 1 ms at a time: what a request
    holding the loop (or the GIL: threads switch every 5 ms) makes every other request wait."""

    def __init__(self) -> None:
        self.late: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            self.late.append((time.perf_counter() - started - 0.001) * 1000)

    def start(self) -> None:
        """Start watching (and forget what was seen before)."""
        self.late = []
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> tuple[float, float]:
        """Stop watching; the p99 and the worst lateness in ms."""
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return p50_p99(self.late)[1], max(self.late, default=0.0)


async def _measure(store: Store, today: date, requests: int) -> dict[str, float]:
    runner = StoreRunner(store)
    bot = PaperBot(runner, clock=lambda: EPOCH + timedelta(days=1))
    app = web.Application()
    add_feed_routes(app, bot)
    topics = queries()
    out: dict[str, float] = {}
    try:
        async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:

            async def get(q: str) -> bytes:
                response = await client.get("/feeds/search.atom", params={"q": q})
                assert response.status == 200, q
                return await response.read()

            # Warm the page cache and the concept counts, as a running bot has them.
            largest = b""
            for q in topics:
                body = await get(q)
                largest = max(largest, body, key=lambda b: b.count(b"<entry>"))
                await bot.run(CALLER, Command("lookup", arg=q))
            lag = LoopLag()

            async def each(
                name: str, request: Callable[[str], Awaitable[object]], fresh: bool = False
            ) -> list[float]:
                """Milliseconds of each of `requests` requests, the loop's lateness meanwhile."""
                took = []
                lag.start()
                for n in range(requests):
                    if fresh:
                        feeds.render.cache_clear()
                    started = time.perf_counter()
                    await request(topics[n % len(topics)])
                    took.append((time.perf_counter() - started) * 1000)
                out[f"{name}loop_lag_p99"], out[f"{name}loop_lag_max"] = await lag.stop()
                return took

            feed_ms = await each("", get)
            # Every feed changed since it was last rendered (the kept documents do not help).
            fresh_ms = await each("fresh_", get, fresh=True)
            lookup_ms = await each("lookup_", lambda q: bot.run(CALLER, Command("lookup", arg=q)))
        # The store thread's share, with nothing else waiting for it.
        feed_store = [
            timed(lambda q=q: feeds.search_feed(store, "", q, today))  # type: ignore[misc]
            for q in topics
        ]
        lookup_store = [timed(lambda q=q: search(store, q, 5, today)) for q in topics]  # type: ignore[misc]
    finally:
        await runner.close()
    out["p50"], out["p99"] = p50_p99(feed_ms)
    out["fresh_p50"], out["fresh_p99"] = p50_p99(fresh_ms)
    out["lookup_p50"], out["lookup_p99"] = p50_p99(lookup_ms)
    out["store_p50"], out["store_p99"] = p50_p99(feed_store)
    out["lookup_store_p50"], out["lookup_store_p99"] = p50_p99(lookup_store)
    out["entries"] = float(largest.count(b"<entry>"))
    out["bytes"] = float(len(largest))
    out["gzip_bytes"] = float(len(gzip.compress(largest)))
    return out


def run(path: Path | None = None, requests: int = REQUESTS) -> dict[str, float]:
    """p50/p99 in ms of a topic feed request (polled unchanged, and rendered afresh) and of a
    look-up (on the bundled sample without a path), the event loop's lateness meanwhile, their
    store-thread times, and the largest feed's entries and size."""
    store = _open(path)
    today = (EPOCH + timedelta(days=1)).date()
    return asyncio.run(_measure(store, today, requests))
