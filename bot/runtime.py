"""One worker thread that owns the Store, so async code never blocks its event loop on SQLite.

SQLite connections are not safe to share between threads, and the design has one writer; one
worker thread gives both at once: every call runs on the same thread, one at a time.

Calls have two priorities. `call` is for people waiting (commands, look-ups); `background` is
for bulk work (digest runs, ingestion), which is cut into short calls. A waiting command runs
as soon as the current call ends, instead of queueing behind every background call already
submitted: that is what keeps a look-up fast while a digest run and an ingest are going.
A second thread, with its own connection, checkpoints the WAL so that the store thread's
commits do not (see `CHECKPOINT_SECONDS`).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from bot.storage import Store
from bot.storage.checkpoint import Checkpointer

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_NOW, _LATER, _LAST = 0, 1, 2
_Job = tuple[int, int, Callable[[], Any] | None, asyncio.AbstractEventLoop | None, Any]


# SQLite checkpoints the WAL inside the commit that takes it past 1,000 pages: on the store
# thread, that commit waited for the disk (up to 37-80 ms in the stall benchmark) with every
# queued look-up behind it. A second connection on its own thread checkpoints every
# CHECKPOINT_SECONDS instead, in PASSIVE mode (it never blocks the writer or readers, and it
# does not hold the GIL while it waits). The store's own threshold is raised to BACKSTOP_PAGES:
# under a busy ingest a passive checkpoint rarely ends with no commit in flight, so the WAL is
# not restarted and grows until the store checkpoints it itself (40 MB at most).
CHECKPOINT_SECONDS = 1.0
BACKSTOP_PAGES = 10_000


class StoreRunner:
    """Runs `fn(store, ...)` on the store's own thread and awaits the result.

    `checkpoint_every` (seconds; None for never) starts the checkpoint thread for a store in
    WAL mode.
    """

    def __init__(self, store: Store, checkpoint_every: float | None = CHECKPOINT_SECONDS) -> None:
        self._store = store
        self._queue: queue.PriorityQueue[_Job] = queue.PriorityQueue()
        self._order = itertools.count()  # FIFO within a priority
        self._closed = False
        self._checkpointer: Checkpointer | None = None
        if checkpoint_every is not None and (path := store.wal_path) is not None:
            store.set_autocheckpoint(BACKSTOP_PAGES)
            self._checkpointer = Checkpointer(path, checkpoint_every)
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
                loop.call_soon_threadsafe(settle_future, future, None, exc)
            else:
                assert loop is not None
                loop.call_soon_threadsafe(settle_future, future, result, None)

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
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
        await self._submit(_LAST, self._store.close)
        self._closed = True
        self._queue.put((_LAST, next(self._order), None, None, None))
        await asyncio.to_thread(self._thread.join)


def settle_future(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Hand a thread's result or error to the coroutine awaiting it, unless it gave up."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
