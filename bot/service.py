"""The async face of the core that adapters talk to: commands in, replies out.

Every database call goes through the `StoreRunner`'s single worker thread, so a slow query can
delay other commands but never the event loop that must ack Slack and Discord within 3 seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bot.commands import Handler
from bot.models import Caller, Reply
from bot.runtime import StoreRunner
from bot.store import Store

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    """The current aware UTC time."""
    return datetime.now(UTC)


class PaperBot:
    """Runs `/papers` commands for any adapter."""

    def __init__(self, runner: StoreRunner, clock: Callable[[], datetime] = utcnow) -> None:
        self.runner = runner
        self.clock = clock

    async def handle(self, caller: Caller, text: str) -> Reply:
        """Run the text after `/papers` for a caller; always returns a Reply."""
        started = time.perf_counter()
        now = self.clock()

        def run(store: Store) -> Reply:
            return Handler(store).handle_text(caller, text, now)

        try:
            reply = await self.runner.call(run)
        except Exception:  # the one place a bug becomes a polite answer instead of silence
            log.exception("command failed (platform=%s user=%s)", caller.platform, caller.user_id)
            reply = Reply("Sorry, something went wrong on my side. Please try again.", error=True)
        log.info(
            "command platform=%s ms=%.1f error=%s",
            caller.platform,
            (time.perf_counter() - started) * 1000,
            reply.error,
        )
        return reply
