"""One worker thread that owns the Store, so async code never blocks its event loop on SQLite.

SQLite connections are not safe to share between threads, and the design has one writer; one
worker thread gives both at once: every call runs on the same thread, one at a time.

Calls have three priorities. `call` is for people waiting (commands, look-ups); `background`
is for bulk work (digest runs, ingestion), which is cut into short calls. A waiting command runs
as soon as the current call ends, instead of queueing behind every background call already
submitted: that is what keeps a look-up fast while a digest run and an ingest are going. But
background work waiting always gets a share of the thread (`BACKGROUND_SHARE`): under more
look-ups than the thread can serve, digests would otherwise stop altogether. `first` goes
ahead of both, for the digest ledger's tiny writes that every send in flight waits on.
A second thread, with its own connection, checkpoints the WAL so that the store thread's
commits do not (see `CHECKPOINT_SECONDS`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from bot.storage import Store
from bot.storage.checkpoint import Checkpointer

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

_FIRST, _NOW, _LATER, _LAST = 0, 1, 2, 3
# A job with its loop and future; None for the thread's stop.
_Job = tuple[Callable[[], Any] | None, asyncio.AbstractEventLoop | None, Any]

# At 100 look-ups a second on a slow host the store thread was busy with look-ups all the
# time, and a digest run due meanwhile sent 0 digests in 30 s. So while background calls wait,
# they get at least this share of the thread's time; a look-up still waits behind at most one
# of them (a claim batch is budgeted at 40 ms).
BACKGROUND_SHARE = 0.1


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
        self._queues: tuple[deque[_Job], ...] = (deque(), deque(), deque(), deque())  # FIFO each
        self._ready = threading.Condition()
        # Seconds the last background call took, and commands have taken since it ran.
        self._background_took = 0.0
        self._commands_took = 0.0
        self._closed = False
        self._checkpointer: Checkpointer | None = None
        if checkpoint_every is not None and (path := store.wal_path) is not None:
            store.set_autocheckpoint(BACKSTOP_PAGES)
            self._checkpointer = Checkpointer(path, checkpoint_every)
        self._thread = threading.Thread(target=self._work, name="paperbot-store", daemon=True)
        self._thread.start()

    def _next(self) -> tuple[int, _Job]:
        """The next job: a waiting command first, unless background work is owed its share."""
        first, now, later, last = self._queues
        owed = self._commands_took * BACKGROUND_SHARE > self._background_took * (
            1 - BACKGROUND_SHARE
        )
        with self._ready:
            while not (first or now or later or last):
                self._ready.wait()
            if first:
                return _FIRST, first.popleft()
            if later and (not now or owed):
                return _LATER, later.popleft()
            if now:
                return _NOW, now.popleft()
            return _LAST, last.popleft()

    def _work(self) -> None:
        while True:
            priority, (job, loop, future) = self._next()
            if job is None:
                return
            started = time.perf_counter()
            try:
                result = job()
            except BaseException as exc:  # handed to the awaiting coroutine, not lost here
                assert loop is not None
                loop.call_soon_threadsafe(settle_future, future, None, exc)
            else:
                assert loop is not None
                loop.call_soon_threadsafe(settle_future, future, result, None)
            took = time.perf_counter() - started
            if priority == _LATER:
                self._background_took, self._commands_took = took, 0.0
            else:
                self._commands_took += took

    async def _submit(self, priority: int, job: Callable[[], T]) -> T:
        if self._closed:
            raise RuntimeError("the store runner is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._put(priority, (job, loop, future))
        return await future

    def _put(self, priority: int, item: _Job) -> None:
        with self._ready:
            self._queues[priority].append(item)
            self._ready.notify()

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

    async def first(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Like `call`, but ahead of every waiting `call`: for writes of a millisecond or two
        that much else waits on (the digest ledger's)."""
        return await self._submit(_FIRST, functools.partial(fn, self._store, *args, **kwargs))

    async def close(self) -> None:
        """Finish queued calls, close the store on its own thread and stop the thread."""
        if self._closed:
            return
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.stop)
        await self._submit(_LAST, self._store.close)
        self._closed = True
        self._put(_LAST, (None, None, None))
        await asyncio.to_thread(self._thread.join)


def settle_future(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """Hand a thread's result or error to the coroutine awaiting it, unless it gave up."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
