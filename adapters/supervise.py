"""Starting a chat adapter without holding up the rest of the bot.

An adapter connects in a background task. Each step (log in, sync commands, connect) is retried
with exponential backoff while its failures are transient (5xx, timeouts, connection errors),
with one WARNING line per failure and the adapter's state `retrying`. A failure retrying cannot
fix (a refused token, a refused command tree, a gateway closed for good) is raised as
`Permanent`, whose message says what to fix: one ERROR line, state `failed`, no more attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential,
    wait_random,
)
from tenacity.wait import wait_base

from bot.health import Adapters

log = logging.getLogger(__name__)

T = TypeVar("T")

# 2, 4, 8 ... seconds, at most 5 minutes apart: a platform outage is retried all day long
# without hammering it, and a short blip costs a few seconds.
RETRY_WAIT = wait_exponential(multiplier=2, max=300) + wait_random(0, 1)
# A step that has not finished in this long is abandoned and retried.
STEP_SECONDS = 60.0
MAX_REASON = 300


class Permanent(Exception):
    """A failure retrying will not fix; its message says what to fix."""


def describe(error: BaseException) -> str:
    """A failure in one line, short enough for a log line and /healthz."""
    text = " ".join(str(error).split()) or type(error).__name__
    text = text if text.startswith(type(error).__name__) else f"{type(error).__name__}: {text}"
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _transient(error: BaseException) -> bool:
    # Not a BaseException such as CancelledError: a stop must stop the retries too.
    return isinstance(error, Exception) and not isinstance(error, Permanent)


@dataclass
class Supervisor:
    """Runs one adapter's start-up steps, keeping its state in the registry."""

    name: str
    adapters: Adapters
    wait: wait_base = field(default=RETRY_WAIT)
    step_seconds: float = STEP_SECONDS

    def __post_init__(self) -> None:
        # Listed from the start, so /healthz shows an adapter that has not connected yet.
        self.adapters.set(self.name, "starting")

    def starting(self, doing: str) -> None:
        """Record that the adapter is starting, and what it is doing."""
        self.adapters.set(self.name, "starting", doing)

    def ok(self) -> None:
        """Record that the adapter is serving."""
        self.adapters.set(self.name, "ok")

    def failed(self, reason: str) -> None:
        """Record a permanent failure: one ERROR line saying what to fix."""
        log.error("%s adapter stopped: %s", self.name, reason)
        self.adapters.set(self.name, "failed", reason)

    async def step(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` until it succeeds; retry transient failures, raise `Permanent` ones."""

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            delay = state.next_action.sleep if state.next_action else 0.0
            why = (
                f"no answer in {self.step_seconds:.0f} s"
                if isinstance(error, TimeoutError)
                else describe(error or Exception())
            )
            reason = f"{what} failed ({why}); retry in {delay:.0f} s"
            log.warning("%s adapter: %s", self.name, reason)
            self.adapters.set(self.name, "retrying", reason)

        retrying: AsyncRetrying = AsyncRetrying(
            wait=self.wait,
            retry=retry_if_exception(_transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt_state in retrying:
            with attempt_state:
                async with asyncio.timeout(self.step_seconds):
                    return await attempt()
        raise AssertionError("tenacity made no attempt")  # pragma: no cover - it always does


async def cancelled(task: asyncio.Task[Any]) -> None:
    """Cancel a background task and wait until it has finished."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
