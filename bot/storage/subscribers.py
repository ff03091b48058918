"""Subscribers: a person's DM or a channel, their topics, muted papers and channel managers.

Rows only: the rules (topic validation, the topic limit, when a digest is due) live in
`bot.subscriptions` and `bot.digests.schedule`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from bot.models import DigestSettings, Subscriber, TopicSubscription
from bot.storage.times import parse_utc, utc_iso


def _row_to_subscriber(row: dict[str, Any]) -> Subscriber:
    settings = DigestSettings(
        tz=str(row["tz"]),
        digest_time=str(row["digest_time"]),
        days=tuple(int(d) for d in str(row["days"]).split(",") if d != ""),
        max_papers=int(row["max_papers"]),
        paused=bool(row["paused"]),
    )
    return Subscriber(
        id=int(row["id"]),
        platform=str(row["platform"]),
        kind=str(row["kind"]),
        address=str(row["address"]),
        workspace=str(row["workspace"] or ""),
        settings=settings,
        created_at=parse_utc(str(row["created_at"])),
        next_due_at=parse_utc(str(row["next_due_at"])) if row["next_due_at"] else None,
        undeliverable=str(row["undeliverable"]) if row["undeliverable"] else None,
    )


def _settings_values(settings: DigestSettings) -> list[Any]:
    days = ",".join(str(d) for d in settings.days)
    return [settings.tz, settings.digest_time, days, settings.max_papers, int(settings.paused)]


def topic_key(text: str) -> str:
    """A topic's identity for duplicates: case and spacing do not make a new topic."""
    return " ".join(text.lower().split())


class Subscribers:
    """The `subscribers` (with their private feeds' secrets), `topics`, `muted_papers` and
    `channel_managers` tables."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: sqlite3.Connection = db.conn

    def _one(self, where: str, params: Sequence[Any]) -> Subscriber | None:
        rows = list(self._db.query(f"SELECT * FROM subscribers WHERE {where}", list(params)))
        return _row_to_subscriber(rows[0]) if rows else None

    def find(
        self, platform: str, kind: str, address: str, workspace: str = ""
    ) -> Subscriber | None:
        """The subscriber for a DM user or channel of a workspace, if it exists."""
        return self._one(
            "platform = ? AND workspace = ? AND kind = ? AND address = ?",
            [platform, workspace, kind, address],
        )

    def get(self, subscriber_id: int) -> Subscriber | None:
        """A subscriber by id, or None."""
        return self._one("id = ?", [subscriber_id])

    def create(
        self,
        platform: str,
        kind: str,
        address: str,
        workspace: str,
        settings: DigestSettings,
        now: datetime,
        next_due: datetime,
    ) -> Subscriber:
        """Add a subscriber (the caller checked there is none for that address)."""
        with self._conn:
            self._conn.execute(
                "INSERT INTO subscribers (platform, kind, address, workspace, tz, digest_time, "
                "days, max_papers, paused, created_at, next_due_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    platform,
                    kind,
                    address,
                    workspace,
                    *_settings_values(settings),
                    utc_iso(now),
                    utc_iso(next_due),
                ],
            )
        created = self.find(platform, kind, address, workspace)
        assert created is not None
        return created

    def save_settings(
        self, subscriber_id: int, settings: DigestSettings, next_due: datetime
    ) -> None:
        """Store new digest settings and the next due moment they give."""
        with self._conn:
            self._conn.execute(
                "UPDATE subscribers SET tz = ?, digest_time = ?, days = ?, max_papers = ?, "
                "paused = ?, next_due_at = ? WHERE id = ?",
                [*_settings_values(settings), utc_iso(next_due), subscriber_id],
            )

    def set_next_due(self, subscriber_id: int, due: datetime) -> None:
        """Record when the subscriber's next digest is due."""
        with self._conn:
            self._conn.execute(
                "UPDATE subscribers SET next_due_at = ? WHERE id = ?", [utc_iso(due), subscriber_id]
            )

    def set_undeliverable(self, subscriber_id: int, reason: str | None) -> None:
        """Mark a destination gone (with why), or deliverable again (None)."""
        with self._conn:
            self._conn.execute(
                "UPDATE subscribers SET undeliverable = ? WHERE id = ?", [reason, subscriber_id]
            )

    def due(self, now: datetime, platforms: Sequence[str], limit: int) -> list[Subscriber]:
        """Subscribers whose digest is due: active, deliverable, following a topic, on a platform.

        One range scan of the `next_due_at` index; the topic check is an indexed EXISTS.
        """
        if not platforms:
            return []
        marks = ", ".join("?" for _ in platforms)
        return [
            _row_to_subscriber(r)
            for r in self._db.query(
                "SELECT * FROM subscribers AS s "
                "WHERE s.next_due_at <= ? AND s.paused = 0 AND s.undeliverable IS NULL "
                f"AND +s.platform IN ({marks}) "  # the unary + keeps the planner on next_due_at
                "AND EXISTS (SELECT 1 FROM topics AS t WHERE t.subscriber_id = s.id) "
                "ORDER BY s.next_due_at LIMIT ?",
                [utc_iso(now), *platforms, limit],
            )
        ]

    # -- private feeds -------------------------------------------------------------------------

    def feed_token(self, subscriber_id: int) -> str | None:
        """The secret of the subscriber's private feed address, if it has one."""
        row = self._conn.execute(
            "SELECT feed_token FROM subscribers WHERE id = ?", [subscriber_id]
        ).fetchone()
        return str(row[0]) if row and row[0] else None

    def set_feed_token(self, subscriber_id: int, token: str) -> None:
        """Give the subscriber's private feed a new secret (the old address stops working)."""
        with self._conn:
            self._conn.execute(
                "UPDATE subscribers SET feed_token = ? WHERE id = ?", [token, subscriber_id]
            )

    def by_feed_token(self, token: str) -> Subscriber | None:
        """The subscriber whose private feed has this secret (one look-up of its index)."""
        return self._one("feed_token = ?", [token])

    # -- topics ------------------------------------------------------------------------------

    def topics_of(self, subscriber_ids: Sequence[int]) -> dict[int, list[TopicSubscription]]:
        """The topics of several subscribers at once (a digest batch), oldest first."""
        found: dict[int, list[TopicSubscription]] = {}
        marks = ", ".join("?" for _ in subscriber_ids)
        for r in self._conn.execute(
            "SELECT id, subscriber_id, text, created_at FROM topics "
            f"WHERE subscriber_id IN ({marks}) ORDER BY id",
            list(subscriber_ids),
        ):
            found.setdefault(int(r[1]), []).append(
                TopicSubscription(int(r[0]), int(r[1]), str(r[2]), parse_utc(str(r[3])))
            )
        return found

    def topic(self, topic_id: int) -> TopicSubscription | None:
        """One topic subscription by id (None when it was unsubscribed)."""
        row = self._conn.execute(
            "SELECT id, subscriber_id, text, created_at FROM topics WHERE id = ?", [topic_id]
        ).fetchone()
        if row is None:
            return None
        return TopicSubscription(int(row[0]), int(row[1]), str(row[2]), parse_utc(str(row[3])))

    def topics(self, subscriber_id: int) -> list[TopicSubscription]:
        """A subscriber's topics, oldest first (their numbers in `/papers list`)."""
        return self.topics_of([subscriber_id]).get(subscriber_id, [])

    def add_topic(self, subscriber_id: int, text: str, now: datetime) -> None:
        """Add a topic (the caller validated it and checked it is not followed yet)."""
        with self._conn:
            self._conn.execute(
                "INSERT INTO topics (subscriber_id, text, key, created_at) VALUES (?, ?, ?, ?)",
                [subscriber_id, text, topic_key(text), utc_iso(now)],
            )

    def remove_topic(self, topic_id: int) -> None:
        """Delete one topic subscription (and, by the foreign key, what it learned)."""
        with self._conn:
            self._conn.execute("DELETE FROM topics WHERE id = ?", [topic_id])

    def popular_topics(self, platform: str, containing: str, limit: int) -> list[str]:
        """Topics most followed on a platform whose text contains `containing` (any case)."""
        return [
            str(r[0])
            for r in self._conn.execute(
                "SELECT min(t.text), count(*) AS n FROM topics t "
                "JOIN subscribers s ON s.id = t.subscriber_id "
                "WHERE s.platform = ? AND instr(t.key, ?) > 0 "
                "GROUP BY t.key ORDER BY n DESC, t.key LIMIT ?",
                [platform, topic_key(containing), limit],
            )
        ]

    # -- muted papers --------------------------------------------------------------------------

    def muted_of(self, subscriber_ids: Sequence[int]) -> dict[int, set[str]]:
        """The muted papers of several subscribers at once (a digest batch)."""
        found: dict[int, set[str]] = {}
        marks = ", ".join("?" for _ in subscriber_ids)
        for subscriber_id, paper_id in self._conn.execute(
            f"SELECT subscriber_id, paper_id FROM muted_papers WHERE subscriber_id IN ({marks})",
            list(subscriber_ids),
        ):
            found.setdefault(int(subscriber_id), set()).add(str(paper_id))
        return found

    def muted(self, subscriber_id: int) -> set[str]:
        """Papers the subscriber marked "not relevant"."""
        return self.muted_of([subscriber_id]).get(subscriber_id, set())

    def mute(self, subscriber_id: int, paper_id: str, now: datetime) -> None:
        """Leave a paper out of this subscriber's digests and look-ups from now on."""
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO muted_papers (subscriber_id, paper_id, created_at) "
                "VALUES (?, ?, ?)",
                [subscriber_id, paper_id, utc_iso(now)],
            )

    # -- channel managers ------------------------------------------------------------------------

    def add_channel_manager(
        self, platform: str, workspace: str, channel: str, user_id: str, now: datetime
    ) -> None:
        """Remember that a user may manage a channel (they added the bot to it)."""
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO channel_managers "
                "(platform, workspace, channel, user_id, created_at) VALUES (?, ?, ?, ?, ?)",
                [platform, workspace, channel, user_id, utc_iso(now)],
            )

    def is_channel_manager(self, platform: str, workspace: str, channel: str, user_id: str) -> bool:
        """Whether the user added the bot to that channel."""
        row = self._conn.execute(
            "SELECT 1 FROM channel_managers "
            "WHERE platform = ? AND workspace = ? AND channel = ? AND user_id = ?",
            [platform, workspace, channel, user_id],
        ).fetchone()
        return row is not None

    # -- a workspace leaving -----------------------------------------------------------------------

    def forget_workspace(self, platform: str, workspace: str) -> int:
        """Delete a workspace's subscribers with everything that hangs on them (topics and
        their signals, mutes, digest ledger rows) and its channel managers, in one
        transaction; returns how many subscribers went."""
        where = "SELECT id FROM subscribers WHERE platform = ? AND workspace = ?"
        key = [platform, workspace]
        with self._conn:
            for table in ("topics", "muted_papers", "digest_messages", "deliveries"):
                self._conn.execute(f"DELETE FROM {table} WHERE subscriber_id IN ({where})", key)
            gone = self._conn.execute(
                "DELETE FROM subscribers WHERE platform = ? AND workspace = ?", key
            ).rowcount
            self._conn.execute(
                "DELETE FROM channel_managers WHERE platform = ? AND workspace = ?", key
            )
        return int(gone)
