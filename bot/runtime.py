"""One worker thread that owns the Store, so async code never blocks its event loop on SQLite.

SQLite connections are not safe to share between threads, and the design has one writer; a
single-thread executor gives both at once: every call runs on the same thread, one at a time.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Concatenate, ParamSpec, TypeVar

from bot.store import Store

P = ParamSpec("P")
T = TypeVar("T")


class StoreRunner:
    """Runs `fn(store, ...)` on the store's own thread and awaits the result."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paperbot-store")
        self._closed = False

    async def call(
        self, fn: Callable[Concatenate[Store, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(store, *args, **kwargs)` on the store thread; exceptions propagate."""
        if self._closed:
            raise RuntimeError("the store runner is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(fn, self._store, *args, **kwargs)
        )

    async def close(self) -> None:
        """Finish queued calls, close the store on its own thread and stop the thread."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._store.close)
        self._executor.shutdown(wait=True)
