"""Subscribers, their topics and digest settings, and when each one's next digest is due.

Due times are computed with zoneinfo in the subscriber's own time zone and stored in UTC as
`next_due_at`, so the digest tick is one indexed query however many subscribers there are.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.errors import PaperbotError
from bot.models import DigestSettings, Subscriber, TopicSubscription
from bot.store import Store, parse_utc, utc_iso
from bot.topics import parse

MAX_TOPICS = 20


class NotFound(PaperbotError):
    """Something the user named does not exist (a topic number, a topic)."""


def local_due(settings: DigestSettings, day: date) -> datetime:
    """The aware UTC moment of a subscriber's digest on a local calendar day.

    A local time skipped by a DST change (02:30 on a spring-forward night) falls an hour later,
    as zoneinfo resolves it; a repeated one (autumn) takes its first occurrence.
    """
    hour, minute = (int(part) for part in settings.digest_time.split(":"))
    local = datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(settings.tz))
    return local.astimezone(UTC)


def next_due(settings: DigestSettings, after_local_day: date | None, now: datetime) -> datetime:
    """The first due moment on a chosen weekday, on a local day after `after_local_day`.

    With `after_local_day` None the search starts today (local), so a digest whose time has
    already passed today is due at once: that is the catch-up rule after a restart.
    """
    zone = ZoneInfo(settings.tz)
    today = now.astimezone(zone).date()
    day = today if after_local_day is None else max(today, after_local_day + timedelta(days=1))
    for offset in range(8):
        candidate = day + timedelta(days=offset)
        if candidate.weekday() in settings.days:
            return local_due(settings, candidate)
    raise ValueError("a subscriber must have at least one digest day")


def subscribed_at(subscriber: Subscriber, topics: Sequence[TopicSubscription]) -> datetime:
    """When the subscriber started following topics: its earliest topic, else its creation."""
    return min((t.created_at for t in topics), default=subscriber.created_at)


def next_send(
    settings: DigestSettings, due: datetime, since: datetime, now: datetime
) -> tuple[datetime, list[date]]:
    """When the digest due at `due` really goes out, and the local days passed over as over.

    Due moments that are never sent are passed over: one before the subscriber followed
    anything (no "missed" digest at 09:00 for someone who subscribed at 15:00), or on a local
    day that is over (the bot was down for the rest of it). A result at or before `now` goes
    out at the next digest tick, within a minute. The digest tick and every "Next:" shown to
    a user use this, so what is promised is what happens.
    """
    today = local_date(settings, now)
    day = local_date(settings, due)
    stale: list[date] = []
    while due <= now and (due < since or day < today):
        if day < today and due >= since:
            stale.append(day)
        due = next_due(settings, day, now)
        day = local_date(settings, due)
    return due, stale


def local_date(settings: DigestSettings, moment: datetime) -> date:
    """The subscriber's local calendar date at `moment`."""
    return moment.astimezone(ZoneInfo(settings.tz)).date()


def _row_to_subscriber(row: dict[str, object]) -> Subscriber:
    settings = DigestSettings(
        tz=str(row["tz"]),
        digest_time=str(row["digest_time"]),
        days=tuple(int(d) for d in str(row["days"]).split(",") if d != ""),
        max_papers=int(row["max_papers"]),  # type: ignore[call-overload]
        paused=bool(row["paused"]),
    )
    return Subscriber(
        id=int(row["id"]),  # type: ignore[call-overload]
        platform=str(row["platform"]),
        kind=str(row["kind"]),
        address=str(row["address"]),
        workspace=str(row["workspace"] or ""),
        settings=settings,
        created_at=parse_utc(str(row["created_at"])),
        next_due_at=parse_utc(str(row["next_due_at"])) if row["next_due_at"] else None,
        undeliverable=str(row["undeliverable"]) if row["undeliverable"] else None,
        undeliverable_notified=bool(row["undeliverable_notified"]),
    )


def topic_key(text: str) -> str:
    """A topic's identity for duplicates: case and spacing do not make a new topic."""
    return " ".join(text.lower().split())


class Subscriptions:
    """Reading and changing subscribers and their topics."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn

    def find(self, platform: str, kind: str, address: str) -> Subscriber | None:
        """The subscriber for a DM user or channel, if it exists."""
        rows = list(
            self.store.db.query(
                "SELECT * FROM subscribers WHERE platform = ? AND kind = ? AND address = ?",
                [platform, kind, address],
            )
        )
        return _row_to_subscriber(rows[0]) if rows else None

    def get(self, subscriber_id: int) -> Subscriber:
        """A subscriber by id."""
        rows = list(self.store.db.query("SELECT * FROM subscribers WHERE id = ?", [subscriber_id]))
        if not rows:
            raise NotFound(f"no subscriber {subscriber_id}")
        return _row_to_subscriber(rows[0])

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
        existing = self.find(platform, kind, address)
        if existing is not None:
            return existing
        settings = settings or DigestSettings()
        with self.conn:
            self.conn.execute(
                "INSERT INTO subscribers (platform, kind, address, workspace, tz, digest_time, "
                "days, max_papers, paused, created_at, next_due_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    platform,
                    kind,
                    address,
                    workspace,
                    settings.tz,
                    settings.digest_time,
                    ",".join(str(d) for d in settings.days),
                    settings.max_papers,
                    int(settings.paused),
                    utc_iso(now),
                    utc_iso(next_due(settings, None, now)),
                ],
            )
        created = self.find(platform, kind, address)
        assert created is not None
        return created

    def topics(self, subscriber_id: int) -> list[TopicSubscription]:
        """A subscriber's topics, oldest first (their numbers in `/papers list`)."""
        return self.topics_of([subscriber_id]).get(subscriber_id, [])

    def topics_of(self, subscriber_ids: Sequence[int]) -> dict[int, list[TopicSubscription]]:
        """The topics of several subscribers at once (a digest batch), oldest first."""
        found: dict[int, list[TopicSubscription]] = {}
        marks = ", ".join("?" for _ in subscriber_ids)
        for r in self.conn.execute(
            "SELECT id, subscriber_id, text, created_at FROM topics "
            f"WHERE subscriber_id IN ({marks}) ORDER BY id",
            list(subscriber_ids),
        ):
            found.setdefault(int(r[1]), []).append(
                TopicSubscription(int(r[0]), int(r[1]), str(r[2]), parse_utc(str(r[3])))
            )
        return found

    def popular_topics(self, platform: str, containing: str, limit: int) -> list[str]:
        """Topics most followed on a platform whose text contains `containing` (any case)."""
        return [
            str(r[0])
            for r in self.conn.execute(
                "SELECT min(t.text), count(*) AS n FROM topics t "
                "JOIN subscribers s ON s.id = t.subscriber_id "
                "WHERE s.platform = ? AND instr(t.key, ?) > 0 "
                "GROUP BY t.key ORDER BY n DESC, t.key LIMIT ?",
                [platform, topic_key(containing), limit],
            )
        ]

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
        with self.conn:
            self.conn.execute(
                "INSERT INTO topics (subscriber_id, text, key, created_at) VALUES (?, ?, ?, ?)",
                [subscriber_id, text, topic_key(text), utc_iso(now)],
            )
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
        with self.conn:
            self.conn.execute("DELETE FROM topics WHERE id = ?", [chosen.id])
        return chosen.text

    def update_settings(
        self, subscriber: Subscriber, settings: DigestSettings, now: datetime
    ) -> Subscriber:
        """Save new digest settings and recompute when the next digest is due."""
        due = next_due(settings, self.last_digest_day(subscriber.id), now)
        with self.conn:
            self.conn.execute(
                "UPDATE subscribers SET tz = ?, digest_time = ?, days = ?, max_papers = ?, "
                "paused = ?, next_due_at = ? WHERE id = ?",
                [
                    settings.tz,
                    settings.digest_time,
                    ",".join(str(d) for d in settings.days),
                    settings.max_papers,
                    int(settings.paused),
                    utc_iso(due),
                    subscriber.id,
                ],
            )
        return self.get(subscriber.id)

    def last_digest_day(self, subscriber_id: int) -> date | None:
        """The latest local date with a ledger entry (claimed, sent or empty), if any."""
        row = self.conn.execute(
            "SELECT max(local_date) FROM deliveries WHERE subscriber_id = ?", [subscriber_id]
        ).fetchone()
        return date.fromisoformat(row[0]) if row and row[0] else None

    def mark_undeliverable(self, subscriber_id: int, reason: str) -> None:
        """Stop sending to a destination that is gone, until the subscriber is heard from again."""
        with self.conn:
            self.conn.execute(
                "UPDATE subscribers SET undeliverable = ?, undeliverable_notified = 0 WHERE id = ?",
                [reason, subscriber_id],
            )

    def clear_undeliverable(self, subscriber_id: int) -> str | None:
        """Forget that a destination was gone (the user is back); returns the old reason."""
        subscriber = self.get(subscriber_id)
        if subscriber.undeliverable is None:
            return None
        with self.conn:
            self.conn.execute(
                "UPDATE subscribers SET undeliverable = NULL, undeliverable_notified = 1 "
                "WHERE id = ?",
                [subscriber_id],
            )
        return subscriber.undeliverable

    def muted(self, subscriber_id: int) -> set[str]:
        """Papers the subscriber marked "not relevant"."""
        return self.muted_of([subscriber_id]).get(subscriber_id, set())

    def muted_of(self, subscriber_ids: Sequence[int]) -> dict[int, set[str]]:
        """The muted papers of several subscribers at once (a digest batch)."""
        found: dict[int, set[str]] = {}
        marks = ", ".join("?" for _ in subscriber_ids)
        for subscriber_id, paper_id in self.conn.execute(
            f"SELECT subscriber_id, paper_id FROM muted_papers WHERE subscriber_id IN ({marks})",
            list(subscriber_ids),
        ):
            found.setdefault(int(subscriber_id), set()).add(str(paper_id))
        return found

    def mute(self, subscriber_id: int, paper_id: str, now: datetime) -> None:
        """Leave a paper out of this subscriber's digests and look-ups from now on."""
        with self.conn:
            self.conn.execute(
                "INSERT OR IGNORE INTO muted_papers (subscriber_id, paper_id, created_at) "
                "VALUES (?, ?, ?)",
                [subscriber_id, paper_id, utc_iso(now)],
            )

    def due(self, now: datetime, platforms: Sequence[str], limit: int = 1000) -> list[Subscriber]:
        """Subscribers whose digest is due: active, deliverable, following a topic, on a platform.

        One range scan of the `next_due_at` index; the topic check is an indexed EXISTS.
        """
        if not platforms:
            return []
        marks = ", ".join("?" for _ in platforms)
        return [
            _row_to_subscriber(r)
            for r in self.store.db.query(
                "SELECT * FROM subscribers AS s "
                "WHERE s.next_due_at <= ? AND s.paused = 0 AND s.undeliverable IS NULL "
                f"AND +s.platform IN ({marks}) "  # the unary + keeps the planner on next_due_at
                "AND EXISTS (SELECT 1 FROM topics AS t WHERE t.subscriber_id = s.id) "
                "ORDER BY s.next_due_at LIMIT ?",
                [utc_iso(now), *platforms, limit],
            )
        ]

    def set_next_due(self, subscriber_id: int, due: datetime) -> None:
        """Record when the subscriber's next digest is due."""
        with self.conn:
            self.conn.execute(
                "UPDATE subscribers SET next_due_at = ? WHERE id = ?", [utc_iso(due), subscriber_id]
            )

    def add_channel_manager(self, platform: str, channel: str, user_id: str, now: datetime) -> None:
        """Remember that a user may manage a channel (they added the bot to it)."""
        with self.conn:
            self.conn.execute(
                "INSERT OR IGNORE INTO channel_managers (platform, channel, user_id, created_at) "
                "VALUES (?, ?, ?, ?)",
                [platform, channel, user_id, utc_iso(now)],
            )

    def is_channel_manager(self, platform: str, channel: str, user_id: str) -> bool:
        """Whether the user added the bot to that channel."""
        row = self.conn.execute(
            "SELECT 1 FROM channel_managers WHERE platform = ? AND channel = ? AND user_id = ?",
            [platform, channel, user_id],
        ).fetchone()
        return row is not None


def dumps_ids(ids: tuple[str, ...] | list[str]) -> str:
    """Paper ids as the JSON text the ledger stores."""
    return json.dumps(list(ids))
