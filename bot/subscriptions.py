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
    """Changing subscribers and their topics by the rules; plain reads go to
    `store.subscribers`."""

    def __init__(self, store: Store) -> None:
        self.rows = store.subscribers
        self.ledger = store.ledger

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

    def remove_topic(self, subscriber_id: int, target: str) -> str:
        """Stop following a topic given by its text or its number in the list; returns its text."""
        current = self.rows.topics(subscriber_id)
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
