"""Signals: papers a reader marked relevant or not relevant under one topic subscription."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from bot.storage.times import utc_iso

# A topic learns from its most recent signals only: enough to teach it a scope, and a bound on
# what each digest spends comparing papers with them.
RECENT_SIGNALS = 50


class Signal(NamedTuple):
    """One reader's verdict on one paper under one topic subscription (a tuple: a digest batch
    reads hundreds)."""

    topic_id: int
    paper_id: str
    relevant: bool
    matched: bool = True  # whether the topic matched the paper when it was marked


@dataclass(frozen=True)
class SignalCount:
    """How many papers a topic was taught with, by verdict."""

    relevant: int = 0
    not_relevant: int = 0

    @property
    def total(self) -> int:
        """Signals of either kind."""
        return self.relevant + self.not_relevant


class Signals:
    """The `signals` table."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def record(self, signal: Signal, by_user: str, now: datetime) -> None:
        """Save a verdict; a later one on the same paper replaces the earlier."""
        with self._conn:
            self._conn.execute(
                "INSERT INTO signals (topic_id, paper_id, relevant, matched, by_user, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (topic_id, paper_id) DO UPDATE SET "
                "relevant = excluded.relevant, matched = excluded.matched, "
                "by_user = excluded.by_user, created_at = excluded.created_at",
                [
                    signal.topic_id,
                    signal.paper_id,
                    int(signal.relevant),
                    int(signal.matched),
                    by_user,
                    utc_iso(now),
                ],
            )

    def of_topics(self, topic_ids: Sequence[int]) -> dict[int, list[Signal]]:
        """The most recent `RECENT_SIGNALS` signals of each topic, newest first."""
        found: dict[int, list[Signal]] = {}
        if not topic_ids:
            return found
        marks = ", ".join("?" for _ in topic_ids)
        rows = self._conn.execute(
            f"SELECT topic_id, paper_id, relevant, matched FROM signals "
            f"WHERE topic_id IN ({marks}) "
            "ORDER BY topic_id, created_at DESC, paper_id",
            list(topic_ids),
        )
        for topic_id, paper_id, relevant, matched in rows:
            kept = found.setdefault(int(topic_id), [])
            if len(kept) < RECENT_SIGNALS:
                kept.append(Signal(int(topic_id), str(paper_id), bool(relevant), bool(matched)))
        return found

    def counts(self, topic_ids: Sequence[int]) -> dict[int, SignalCount]:
        """How many signals each topic has (topics without any are left out)."""
        if not topic_ids:
            return {}
        marks = ", ".join("?" for _ in topic_ids)
        rows = self._conn.execute(
            f"SELECT topic_id, sum(relevant), sum(1 - relevant) FROM signals "
            f"WHERE topic_id IN ({marks}) GROUP BY topic_id",
            list(topic_ids),
        )
        return {int(t): SignalCount(int(good), int(bad)) for t, good, bad in rows}

    def forget(self, topic_id: int) -> int:
        """Delete a topic's signals; how many there were."""
        with self._conn:
            return self._conn.execute("DELETE FROM signals WHERE topic_id = ?", [topic_id]).rowcount
