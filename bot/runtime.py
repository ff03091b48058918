"""One worker thread that owns the Store, so async code never blocks its event loop on SQLite.

SQLite connections are not safe to share between threads, and the design has one writer; one
worker thread gives both at once: every call runs on the same thread, one at a time.

Calls have two priorities. `call` is for people waiting (commands, look-ups); `background` is
for bulk work (digest runs, ingestion), which is cut into short calls. A waiting command runs
as soon as the current call ends, instead of queueing behind every background call already
submitted: that is what keeps a look-up fast while a digest run and an ingest are going.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import itertools
import queue
import threading
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from bot import topics
from bot.store import Store

P = ParamSpec("P")
T = TypeVar("T")

_NOW, _LATER, _LAST = 0, 1, 2
_Job = tuple[int, int, Callable[[], Any] | None, asyncio.AbstractEventLoop | None, Any]


class StoreRunner:
    """Runs `fn(store, ...)` on the store's own thread and awaits the result."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._order = itertools.count()  # FIFO within a priority
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="paperbot-store", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            _, _, job, loop, future = self._queue.get()
            if job is None:
                return
            try:
                result = job()
            except BaseException as exc:  # handed to the awaiting coroutine, not lost here
                assert loop is not None
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                assert loop is not None
                loop.call_soon_threadsafe(_settle, future, result, None)

    async def _submit(self, priority: int, job: Callable[[], T]) -> T:
        if self._closed:
            raise RuntimeError("the store runner is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((priority, next(self._order), job, loop, future))
        return await future

    async def call(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(store, *args, **kwargs)` on the store thread, ahead of background work."""
        return await self._submit(_NOW, functools.partial(fn, self._store, *args, **kwargs))

    async def background(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like `call`, but after every waiting `call`: for bulk work in short steps."""
        return await self._submit(_LATER, functools.partial(fn, self._store, *args, **kwargs))

    async def close(self) -> None:
        """Finish queued calls, close the store on its own thread and stop the thread."""
        if self._closed:
            return
        await self._submit(_LAST, self._store.close)
        self._closed = True
        self._queue.put((_LAST, next(self._order), None, None, None))
        await asyncio.to_thread(self._thread.join)


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


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
