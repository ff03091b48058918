"""Subscribers and their topics and settings: the rules around `bot.storage`'s rows.

A topic is validated by the topic parser before it is saved; a subscriber follows at most
MAX_TOPICS; topics are named by text or by their number in `/papers list`. When the next digest
is due comes from `bot.digests.schedule`.
"""

from __future__ import annotations

from datetime import datetime

from bot.digests.schedule import next_due
from bot.errors import PaperbotError
from bot.models import DigestSettings, Subscriber, TopicSubscription
from bot.storage import Store, topic_key
from bot.topics import parse

MAX_TOPICS = 20


class NotFound(PaperbotError):
    """Something the user named does not exist (a topic number, a topic)."""


class Subscriptions:
    """Reading and changing subscribers and their topics."""

    def __init__(self, store: Store) -> None:
        self.rows = store.subscribers
        self.ledger = store.ledger

    def find(self, platform: str, kind: str, address: str) -> Subscriber | None:
        """The subscriber for a DM user or channel, if it exists."""
        return self.rows.find(platform, kind, address)

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
        existing = self.rows.find(platform, kind, address)
        if existing is not None:
            return existing
        settings = settings or DigestSettings()
        due = next_due(settings, None, now)
        return self.rows.create(platform, kind, address, workspace, settings, now, due)

    def topics(self, subscriber_id: int) -> list[TopicSubscription]:
        """A subscriber's topics, oldest first (their numbers in `/papers list`)."""
        return self.rows.topics(subscriber_id)

    def popular_topics(self, platform: str, containing: str, limit: int) -> list[str]:
        """Topics most followed on a platform whose text contains `containing` (any case)."""
        return self.rows.popular_topics(platform, containing, limit)

    def add_topic(self, subscriber_id: int, text: str, now: datetime) -> bool:
        """Follow a topic (validated by the topic parser); False if it was already followed."""
        text = " ".join(text.split())
        parse(text)  # raises InvalidQuery with a message for the user
        current = self.topics(subscriber_id)
        if any(topic_key(t.text) == topic_key(text) for t in current):
            return False
        if len(current) >= MAX_TOPICS:
            raise PaperbotError(
                f"You already follow {MAX_TOPICS} topics, the most there can be. "
                "Unsubscribe from one first (`/papers list` shows them)."
            )
        self.rows.add_topic(subscriber_id, text, now)
        return True

    def remove_topic(self, subscriber_id: int, target: str) -> str:
        """Stop following a topic given by its text or its number in the list; returns its text."""
        current = self.topics(subscriber_id)
        chosen: TopicSubscription | None = None
        if target.strip().isascii() and target.strip().isdigit():
            number = int(target.strip())
            if not 1 <= number <= len(current):
                raise NotFound(
                    f"There is no topic number {number}; "
                    + (f"you have 1 to {len(current)}." if current else "you follow no topics.")
                )
            chosen = current[number - 1]
        else:
            chosen = next((t for t in current if topic_key(t.text) == topic_key(target)), None)
            if chosen is None:
                raise NotFound(f"You don't follow `{target}`. `/papers list` shows your topics.")
        self.rows.remove_topic(chosen.id)
        return chosen.text

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

    def muted(self, subscriber_id: int) -> set[str]:
        """Papers the subscriber marked "not relevant"."""
        return self.rows.muted(subscriber_id)

    def mute(self, subscriber_id: int, paper_id: str, now: datetime) -> None:
        """Leave a paper out of this subscriber's digests and look-ups from now on."""
        self.rows.mute(subscriber_id, paper_id, now)

    def add_channel_manager(self, platform: str, channel: str, user_id: str, now: datetime) -> None:
        """Remember that a user may manage a channel (they added the bot to it)."""
        self.rows.add_channel_manager(platform, channel, user_id, now)

    def is_channel_manager(self, platform: str, channel: str, user_id: str) -> bool:
        """Whether the user added the bot to that channel."""
        return self.rows.is_channel_manager(platform, channel, user_id)
