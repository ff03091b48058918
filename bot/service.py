"""The async face of the core that adapters talk to: commands in, replies out.

`PaperBot.run(caller, command)` is the one way a command enters the core, from every adapter
and every kind of input (typed text, typed options, buttons).

Every database call goes through the `StoreRunner`'s single worker thread, so a slow query can
delay other commands but never the event loop that must ack Slack and Discord within 3 seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot import feeds, lexicon
from bot.cards import card_from_hit
from bot.commands import LOOKUP_LIMIT, Command, Handler
from bot.errors import SourceError
from bot.metrics import COMMAND_SECONDS, FEED_SECONDS
from bot.models import Caller, Paper, Reply, SearchHit
from bot.runtime import StoreRunner
from bot.storage import Store

if TYPE_CHECKING:
    from bot.semantic import Semantic

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    """The current aware UTC time."""
    return datetime.now(UTC)


class PaperBot:
    """Runs `/papers` commands for any adapter."""

    def __init__(
        self,
        runner: StoreRunner,
        clock: Callable[[], datetime] = utcnow,
        fallback: Callable[[str, int], Awaitable[list[Paper]]] | None = None,
        semantic: Semantic | None = None,
        public_url: str = feeds.DEFAULT_BASE,
    ) -> None:
        self.runner = runner
        self.clock = clock
        self.semantic = semantic  # the semantic extra, when loaded
        # Where feed readers reach the HTTP endpoint: the base of the feeds' addresses.
        self.public_url = public_url
        # A remote search (Hugging Face's) for look-ups the local store answers poorly.
        self.fallback = fallback

    async def run(self, caller: Caller, command: Command) -> Reply:
        """Run a command for a caller; always returns a Reply (a bug becomes an apology)."""
        started = time.perf_counter()
        now = self.clock()

        def run(store: Store) -> Reply:
            return Handler(store, self.semantic, self.public_url).handle(caller, command, now)

        try:
            reply = await self.runner.call(run)
        except Exception:  # the one place a bug becomes a polite answer instead of silence
            log.exception("command failed (platform=%s user=%s)", caller.platform, caller.user_id)
            reply = Reply("Sorry, something went wrong on my side. Please try again.", error=True)
        if (
            self.fallback is not None
            and command.action == "lookup"
            and not reply.error
            and len(reply.cards) < FALLBACK_BELOW
        ):
            reply = await self._with_fallback(command.arg, reply)
        seconds = time.perf_counter() - started
        COMMAND_SECONDS.labels(caller.platform, command.action).observe(seconds)
        log.info(
            "command platform=%s action=%s ms=%.1f error=%s",
            caller.platform,
            command.action,
            seconds * 1000,
            reply.error,
        )
        return reply

    async def search_feed(self, query: str) -> feeds.Feed:
        """The Atom feed of a topic's newest papers; raises `InvalidQuery` for unusable text.

        One call on the store thread, as a look-up: the papers, then the document (see
        `bot.feeds` for why it is rendered there too); the event loop only waits.
        """
        started = time.perf_counter()
        today = self.clock().date()

        def build(store: Store) -> feeds.Feed:
            data = feeds.search_feed(store, self.public_url, query, today, self.semantic)
            return feeds.render(data)

        feed = await self.runner.call(build)
        FEED_SECONDS.labels("search").observe(time.perf_counter() - started)
        return feed

    async def digest_feed(self, token: str) -> feeds.Feed | None:
        """The Atom feed of the digests of the subscriber whose private feed has this secret;
        None when none has it (a malformed secret costs no store work)."""
        if not feeds.is_token(token):
            return None
        started = time.perf_counter()

        def build(store: Store) -> feeds.Feed | None:
            data = feeds.digest_feed(store, self.public_url, token)
            return None if data is None else feeds.render(data)

        feed = await self.runner.call(build)
        if feed is not None:
            FEED_SECONDS.labels("digests").observe(time.perf_counter() - started)
        return feed

    async def own_topics(self, caller: Caller, channel: bool = False) -> list[str]:
        """The topics the caller (or the caller's channel) follows, oldest first."""
        kind, address = ("channel", caller.channel_id) if channel else ("user", caller.user_id)

        def read(store: Store) -> list[str]:
            rows = store.subscribers
            if not address:
                return []
            subscriber = rows.find(caller.platform, kind, address, caller.workspace)
            return [t.text for t in rows.topics(subscriber.id)] if subscriber else []

        return list(await self.runner.call(read))

    async def suggest_topics(self, platform: str, typed: str, limit: int) -> list[tuple[str, str]]:
        """Autocomplete for a topic: popular topics first, then the lexicon's terms.

        Returns (label to show, topic text) pairs, at most `limit`.
        """
        popular = await self.runner.call(
            lambda store: store.subscribers.popular_topics(platform, typed, limit)
        )
        out = [(topic, topic) for topic in popular]
        known = {topic.lower() for topic in popular}
        for shown, form in lexicon.suggestions(typed, limit):
            if form.lower() not in known:
                out.append((shown, form))
        return out[:limit]

    async def record_channel_manager(self, caller: Caller) -> None:
        """The caller added the bot to their channel: they may manage its subscriptions."""
        now = self.clock()
        await self.runner.call(
            lambda store: store.subscribers.add_channel_manager(
                caller.platform, caller.workspace, caller.channel_id, caller.user_id, now
            )
        )

    async def is_channel_manager(self, caller: Caller) -> bool:
        """Whether the caller added the bot to the channel they are in."""
        return bool(
            await self.runner.call(
                lambda store: store.subscribers.is_channel_manager(
                    caller.platform, caller.workspace, caller.channel_id, caller.user_id
                )
            )
        )

    async def forget_workspace(self, platform: str, workspace: str) -> int:
        """A workspace removed the app: delete its subscribers and all that hangs on them."""
        return int(
            await self.runner.call(
                lambda store: store.subscribers.forget_workspace(platform, workspace)
            )
        )

    async def _with_fallback(self, query: str, reply: Reply) -> Reply:
        assert self.fallback is not None
        try:
            papers = await self.fallback(query, LOOKUP_LIMIT)
        except (SourceError, TimeoutError) as exc:
            log.warning("fallback search failed: %s", exc)
            return reply
        known = {card.paper_id for card in reply.cards}
        extra = [card_from_hit(SearchHit(p, 0.0)) for p in papers if p.id not in known][
            : LOOKUP_LIMIT - len(reply.cards)
        ]
        if not extra:
            return reply
        extra = [replace(card, why="found by Hugging Face paper search") for card in extra]
        note = (
            f"The local store has only {len(reply.cards)} for `{query}`; "
            "more from Hugging Face paper search:"
        )
        return replace(reply, text=note, cards=reply.cards + tuple(extra), error=False)


FALLBACK_BELOW = 3
