"""The delivery ledger: one row per subscriber and local digest date, and what became of it.

A row is inserted `claimed` before anything is sent; as each message of the digest goes out
the row records it (`sending_at` while a post is under way, then the message's id); it ends
`sent`, `empty` or `failed`. A digest of several messages keeps their bodies in
`digest_messages` until it is complete. The rules are `bot.digests.runner`'s.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from bot.storage.times import parse_utc, utc_iso


def _ids(paper_ids: Sequence[str]) -> str:
    return json.dumps(list(paper_ids))


@dataclass
class Progress:
    """How far a digest's messages got, as its ledger row records it.

    Messages go out in order: `sent` of them are posted (their ids in `ids`); with `sending_at`
    set, message number `sent` was being posted since then and its outcome is unknown.
    `bodies` holds every message of a digest of several (kept until it is complete, so one cut
    by a crash resumes with the very same messages); a one-message digest keeps none, since a
    message that never arrived is simply rebuilt from the digest's window.
    """

    parts: int | None = None  # None until the digest is rendered
    sent: int = 0
    ids: list[str] = field(default_factory=list)
    sending_at: datetime | None = None
    bodies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SentDigest:
    """A digest that reached its subscriber: its local date, when it was sent, its papers."""

    local_date: date
    sent_at: datetime
    paper_ids: tuple[str, ...]


@dataclass
class OpenClaim:
    """A ledger row still `claimed`: a digest whose send has not finished."""

    subscriber_id: int
    local_date: date
    window_start: datetime
    window_end: datetime
    attempts: int
    paper_ids: tuple[str, ...]
    progress: Progress = field(default_factory=Progress)


# -- changes recorded while messages go out (`Ledger.record` writes several in one commit) --------


@dataclass(frozen=True)
class Start:
    """Message `part`'s post is about to begin; the first of a digest brings its message count
    (and, for a digest of several, their bodies)."""

    subscriber_id: int
    day: date
    part: int
    at: datetime
    parts: int | None = None
    bodies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Posted:
    """The platform accepted message `part` (`message_id`); with `paper_ids`, it was the last."""

    subscriber_id: int
    day: date
    part: int
    message_id: str
    at: datetime
    paper_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class NotPosted:
    """The message in flight certainly did not go out (refused, or not found by a look-up)."""

    subscriber_id: int
    day: date


@dataclass(frozen=True)
class Retaken:
    """An unfinished digest is taken up again: one more send attempt (counted before it, so a
    digest whose send kills the process every time is given up in the end)."""

    subscriber_id: int
    day: date


Change = Start | Posted | NotPosted | Retaken


class Ledger:
    """The `deliveries` and `digest_messages` tables."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _drop_bodies(self, key: Sequence[object]) -> None:
        self._conn.execute(
            "DELETE FROM digest_messages WHERE subscriber_id = ? AND local_date = ?", key
        )

    # -- reading -------------------------------------------------------------------------------

    def last_digest_day(self, subscriber_id: int) -> date | None:
        """The latest local date with a ledger entry (claimed, sent or empty), if any."""
        row = self._conn.execute(
            "SELECT max(local_date) FROM deliveries WHERE subscriber_id = ?", [subscriber_id]
        ).fetchone()
        return date.fromisoformat(row[0]) if row and row[0] else None

    def last_window_end(self, subscriber_id: int, before: date | None) -> datetime | None:
        """Where the latest digest that did not fail ended its window (only digests of local
        dates before `before`, when given); None before the first."""
        sql = "SELECT window_end FROM deliveries WHERE subscriber_id = ? AND status != 'failed'"
        params: list[object] = [subscriber_id]
        if before is not None:
            sql += " AND local_date < ?"
            params.append(before.isoformat())
        row = self._conn.execute(sql + " ORDER BY local_date DESC LIMIT 1", params).fetchone()
        return parse_utc(str(row[0])) if row else None

    def sent(self, subscriber_id: int, limit: int) -> list[SentDigest]:
        """The subscriber's latest `limit` sent digests, newest first (one range of the key)."""
        rows = self._conn.execute(
            "SELECT local_date, finished_at, paper_ids FROM deliveries "
            "WHERE subscriber_id = ? AND status = 'sent' ORDER BY local_date DESC LIMIT ?",
            [subscriber_id, limit],
        )
        return [
            SentDigest(date.fromisoformat(day), parse_utc(str(at)), tuple(json.loads(ids or "[]")))
            for day, at, ids in rows
        ]

    def open_claims(self, platforms: Sequence[str], now: datetime) -> list[OpenClaim]:
        """Claimed rows whose retry time has come, of subscribers on `platforms`, oldest claim
        first, each with how far its messages got."""
        if not platforms:
            return []
        marks = ", ".join("?" for _ in platforms)
        rows = self._conn.execute(
            "SELECT d.subscriber_id, d.local_date, d.window_start, d.window_end, d.attempts, "
            "d.paper_ids, d.parts, d.sent_parts, d.message_ids, d.sending_at "
            "FROM deliveries AS d JOIN subscribers AS s ON s.id = d.subscriber_id "
            "WHERE d.status = 'claimed' AND (d.retry_at IS NULL OR d.retry_at <= ?) "
            f"AND s.platform IN ({marks}) ORDER BY d.claimed_at",
            [utc_iso(now), *platforms],
        ).fetchall()
        claims = []
        for r in rows:
            day = date.fromisoformat(str(r[1]))
            progress = Progress(
                parts=None if r[6] is None else int(r[6]),
                sent=int(r[7] or 0),
                ids=[str(i) for i in json.loads(r[8] or "[]")],
                sending_at=parse_utc(str(r[9])) if r[9] else None,
            )
            if (progress.parts or 0) > 1:
                progress.bodies = [
                    str(b[0])
                    for b in self._conn.execute(
                        "SELECT body FROM digest_messages "
                        "WHERE subscriber_id = ? AND local_date = ? ORDER BY part",
                        [int(r[0]), day.isoformat()],
                    )
                ]
            claims.append(
                OpenClaim(
                    subscriber_id=int(r[0]),
                    local_date=day,
                    window_start=parse_utc(str(r[2])),
                    window_end=parse_utc(str(r[3])),
                    attempts=int(r[4] or 0),
                    paper_ids=tuple(json.loads(r[5] or "[]")),
                    progress=progress,
                )
            )
        return claims

    # -- claiming ------------------------------------------------------------------------------

    def claim(
        self,
        subscriber_id: int,
        day: date,
        window: tuple[datetime, datetime],
        paper_ids: Sequence[str],
        next_due: datetime,
    ) -> bool:
        """Insert the day's row (`empty` with no papers, else `claimed`) and move the
        subscriber's `next_due_at` on; False, changing nothing, when the day is taken already.

        Commits nothing itself: the caller's `Store.transaction()` groups a batch's claims.
        """
        start, now = window
        empty = not paper_ids
        try:
            self._conn.execute(
                "INSERT INTO deliveries (subscriber_id, local_date, status, window_start, "
                "window_end, claimed_at, finished_at, paper_ids, attempts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
                [
                    subscriber_id,
                    day.isoformat(),
                    "empty" if empty else "claimed",
                    utc_iso(start),
                    utc_iso(now),
                    utc_iso(now),
                    utc_iso(now) if empty else None,
                    _ids(paper_ids),
                ],
            )
        except sqlite3.IntegrityError:
            return False
        # In the same transaction: from here on the ledger row owns this day.
        self._conn.execute(
            "UPDATE subscribers SET next_due_at = ? WHERE id = ?",
            [utc_iso(next_due), subscriber_id],
        )
        return True

    def set_paper_ids(self, subscriber_id: int, day: date, paper_ids: Sequence[str]) -> None:
        """Record what a rebuilt digest holds."""
        with self._conn:
            self._conn.execute(
                "UPDATE deliveries SET paper_ids = ? WHERE subscriber_id = ? AND local_date = ?",
                [_ids(paper_ids), subscriber_id, day.isoformat()],
            )

    # -- outcomes ------------------------------------------------------------------------------

    def finish(
        self,
        subscriber_id: int,
        day: date,
        status: str,
        now: datetime,
        *,
        paper_ids: Sequence[str] | None = None,
        error: str | None = None,
    ) -> None:
        """End a digest without (more) messages: `empty` or `failed`."""
        key = [subscriber_id, day.isoformat()]
        with self._conn:
            self._conn.execute(
                "UPDATE deliveries SET status = ?, finished_at = ?, message_id = NULL, "
                "paper_ids = coalesce(?, paper_ids), error = ?, retry_at = NULL "
                "WHERE subscriber_id = ? AND local_date = ?",
                [status, utc_iso(now), None if paper_ids is None else _ids(paper_ids), error, *key],
            )
            # What was never sent will not be: its bodies need not be kept.
            self._drop_bodies(key)

    def add_failure(self, subscriber_id: int, day: date) -> int:
        """Count a failed send (or a failed look-up of one); returns the digest's failures."""
        key = [subscriber_id, day.isoformat()]
        with self._conn:
            self._conn.execute(
                "UPDATE deliveries SET failures = failures + 1 "
                "WHERE subscriber_id = ? AND local_date = ?",
                key,
            )
        row = self._conn.execute(
            "SELECT failures FROM deliveries WHERE subscriber_id = ? AND local_date = ?", key
        ).fetchone()
        return int(row[0] or 0) if row else 0

    def retry_later(self, subscriber_id: int, day: date, error: str, at: datetime) -> None:
        """Keep the digest claimed, with why it failed and when to try again."""
        with self._conn:
            self._conn.execute(
                "UPDATE deliveries SET error = ?, retry_at = ? "
                "WHERE subscriber_id = ? AND local_date = ?",
                [error, utc_iso(at), subscriber_id, day.isoformat()],
            )

    def record(self, changes: Sequence[Change]) -> None:
        """Write messages' progress, in order, in one commit."""
        with self._conn:
            for change in changes:
                key = [change.subscriber_id, change.day.isoformat()]
                if isinstance(change, Start):
                    self._start(change, key)
                elif isinstance(change, Posted):
                    self._posted(change, key)
                elif isinstance(change, NotPosted):
                    self._conn.execute(
                        "UPDATE deliveries SET sending_at = NULL "
                        "WHERE subscriber_id = ? AND local_date = ?",
                        key,
                    )
                else:
                    self._conn.execute(
                        "UPDATE deliveries SET attempts = attempts + 1 "
                        "WHERE subscriber_id = ? AND local_date = ?",
                        key,
                    )

    def _start(self, change: Start, key: list[object]) -> None:
        self._conn.execute(
            "UPDATE deliveries SET sending_at = ?, parts = coalesce(?, parts) "
            "WHERE subscriber_id = ? AND local_date = ?",
            [utc_iso(change.at), change.parts, *key],
        )
        if change.bodies:
            self._drop_bodies(key)
            self._conn.executemany(
                "INSERT INTO digest_messages (subscriber_id, local_date, part, body) "
                "VALUES (?, ?, ?, ?)",
                [(*key, n, body) for n, body in enumerate(change.bodies)],
            )

    def _posted(self, change: Posted, key: list[object]) -> None:
        last = change.paper_ids is not None
        paper_ids = None if change.paper_ids is None else _ids(change.paper_ids)
        # One statement whether or not it was the last: it is written once per message.
        self._conn.execute(
            "UPDATE deliveries SET sent_parts = ? + 1, sending_at = NULL, "
            "message_ids = json_insert(coalesce(message_ids, '[]'), '$[#]', ?), "
            "status = iif(?, 'sent', status), finished_at = iif(?, ?, finished_at), "
            "message_id = iif(?, coalesce(json_extract(message_ids, '$[0]'), ?), message_id), "
            "paper_ids = coalesce(?, paper_ids), error = iif(?, NULL, error), "
            "retry_at = iif(?, NULL, retry_at) WHERE subscriber_id = ? AND local_date = ?",
            [
                change.part, change.message_id, last, last, utc_iso(change.at), last,
                change.message_id, paper_ids, last, last,
                *key,
            ],
        )  # fmt: skip
        if last and change.part:
            self._drop_bodies(key)
