"""Subscribers and their topics and settings: the rules around `bot.storage`'s rows.

A topic is validated by the topic parser before it is saved; a subscriber follows at most
MAX_TOPICS; topics are named by text or by their number in `/papers list`; what a topic
learned from its reader (`bot.learning`) is kept and cleared with it. When the next digest
is due comes from `bot.digests.schedule`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from bot.digests.schedule import next_due
from bot.errors import InvalidQuery, PaperbotError
from bot.models import Caller, DigestSettings, Paper, Subscriber, TopicSubscription
from bot.search import topic_matches
from bot.storage import Signal, Store, topic_key
from bot.topics import parse

if TYPE_CHECKING:
    from bot.semantic import Semantic

MAX_TOPICS = 20


class NotFound(PaperbotError):
    """Something the user named does not exist (a topic number, a topic)."""


class Subscriptions:
    """Changing subscribers and their topics by the rules; plain reads go to
    `store.subscribers`."""

    def __init__(self, store: Store, semantic: Semantic | None = None) -> None:
        self.store = store
        self.semantic = semantic  # decides, with the words, whether a topic matches a paper
        self.rows = store.subscribers
        self.ledger = store.ledger
        self.signals = store.signals

    def get(self, subscriber_id: int) -> Subscriber:
        """A subscriber by id."""
        found = self.rows.get(subscriber_id)
        if found is None:
            raise NotFound(f"no subscriber {subscriber_id}")
        return found

    def get_or_create(
        self,
        platform: str,
        kind: str,
        address: str,
        workspace: str,
        now: datetime,
        settings: DigestSettings | None = None,
    ) -> Subscriber:
        """The subscriber for a DM user or channel, created with default settings if new."""
        existing = self.rows.find(platform, kind, address, workspace)
        if existing is not None:
            return existing
        settings = settings or DigestSettings()
        due = next_due(settings, None, now)
        return self.rows.create(platform, kind, address, workspace, settings, now, due)

    def add_topic(self, subscriber_id: int, text: str, now: datetime) -> bool:
        """Follow a topic (validated by the topic parser); False if it was already followed."""
        text = " ".join(text.split())
        parse(text)  # raises InvalidQuery with a message for the user
        current = self.rows.topics(subscriber_id)
        if any(topic_key(t.text) == topic_key(text) for t in current):
            return False
        if len(current) >= MAX_TOPICS:
            raise PaperbotError(
                f"You already follow {MAX_TOPICS} topics, the most there can be. "
                "Unsubscribe from one first (`/papers list` shows them)."
            )
        self.rows.add_topic(subscriber_id, text, now)
        return True

    def followed(self, subscriber_id: int, text: str) -> TopicSubscription | None:
        """The subscriber's topic written as `text` (the same topic key), if they follow it."""
        key = topic_key(text)
        return next((t for t in self.rows.topics(subscriber_id) if topic_key(t.text) == key), None)

    def find_topic(self, subscriber_id: int, target: str) -> TopicSubscription:
        """A followed topic given by its text or its number in the list."""
        if target.strip().isascii() and target.strip().isdigit():
            current = self.rows.topics(subscriber_id)
            number = int(target.strip())
            if not 1 <= number <= len(current):
                raise NotFound(
                    f"There is no topic number {number}; "
                    + (f"you have 1 to {len(current)}." if current else "you follow no topics.")
                )
            return current[number - 1]
        chosen = self.followed(subscriber_id, target)
        if chosen is None:
            raise NotFound(f"You don't follow `{target}`. `/papers list` shows your topics.")
        return chosen

    def remove_topic(self, subscriber_id: int, target: str) -> str:
        """Stop following a topic given by its text or its number in the list; returns its text.
        What the topic learned from its reader goes with it."""
        chosen = self.find_topic(subscriber_id, target)
        self.rows.remove_topic(chosen.id)
        return chosen.text

    def forget(self, subscriber_id: int, target: str) -> tuple[str, int]:
        """Clear what a topic (by text or number) learned; its text and how many signals."""
        chosen = self.find_topic(subscriber_id, target)
        return chosen.text, self.signals.forget(chosen.id)

    def teach(
        self, caller: Caller, topic_id: int, paper: Paper, relevant: bool, now: datetime
    ) -> TopicSubscription:
        """Record that a paper shown under a topic subscription is (not) relevant to it; the
        topic taught.

        A person teaches their own subscriptions; in a channel, any member teaches the
        channel's (the latest click on a paper wins; managers can `channel forget`).
        """
        topic = self.rows.topic(topic_id)
        owner = self.rows.get(topic.subscriber_id) if topic is not None else None
        if topic is None or owner is None:
            raise NotFound("That topic is no longer followed, so there is nothing to teach.")
        own = owner.kind == "user" and owner.address == caller.user_id
        here = (
            owner.kind == "channel"
            and bool(caller.channel_id)
            and (owner.address == caller.channel_id)
        )
        if owner.platform != caller.platform or not (own or here):
            raise PaperbotError(
                "That paper was shown for someone else's subscription: only its reader "
                "(or, for a channel's, the channel's members) can teach it."
            )
        self.record(topic, paper, relevant, caller.user_id, now)
        return topic

    def record(
        self, topic: TopicSubscription, paper: Paper, relevant: bool, by_user: str, now: datetime
    ) -> None:
        """Save a signal on a topic, noting whether the topic matches the paper."""
        try:
            matched = topic_matches(self.store, topic.text, paper, self.semantic)
        except InvalidQuery:  # saved under older topic rules: it matches nothing now
            matched = False
        self.signals.record(Signal(topic.id, paper.id, relevant, matched), by_user, now)

    def update_settings(
        self, subscriber: Subscriber, settings: DigestSettings, now: datetime
    ) -> Subscriber:
        """Save new digest settings and recompute when the next digest is due."""
        due = next_due(settings, self.ledger.last_digest_day(subscriber.id), now)
        self.rows.save_settings(subscriber.id, settings, due)
        return self.get(subscriber.id)

    def clear_undeliverable(self, subscriber_id: int) -> str | None:
        """Forget that a destination was gone (the user is back); returns the old reason."""
        subscriber = self.get(subscriber_id)
        if subscriber.undeliverable is None:
            return None
        self.rows.set_undeliverable(subscriber_id, None)
        return subscriber.undeliverable
