"""A digest run for many subscribers with skewed topics, beside the naive loop."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from benchmarks.harness import EPOCH, fill, skewed_topics
from bot.digests import DigestRunner
from bot.models import Digest, Subscriber
from bot.runtime import StoreRunner
from bot.search import matches
from bot.storage import Store, topic_key, utc_iso

OLD_PAPERS = 20_000
NEW_PAPERS = 1_000
SUBSCRIBED = EPOCH + timedelta(days=10)  # everyone followed their topics at midnight UTC
DUE = SUBSCRIBED + timedelta(hours=9)  # and gets the digest at 09:00 UTC


class Counting:
    """A destination that only counts what it is given (the platform is not measured here)."""

    platform = "console"

    def __init__(self) -> None:
        self.sent = 0

    def render(self, digest: Digest, key: str) -> list[str]:
        """One message per digest, holding its key."""
        return [key]

    async def post(self, subscriber: Subscriber, body: str) -> str:
        """Count the digest."""
        self.sent += 1
        return str(self.sent)

    async def find_posted(
        self, subscriber: Subscriber, key: str, part: int, since: datetime, until: datetime
    ) -> str | None:
        """Never asked in this benchmark (nothing crashes)."""
        return None


def build(path: Path, subscribers: int) -> int:
    """A store with old papers, a day of new ones, and subscribers; returns distinct topics."""
    store = Store.open(path)
    fill(store, OLD_PAPERS, seed=21, at=EPOCH)
    fill(store, NEW_PAPERS, seed=22, offset=OLD_PAPERS, at=SUBSCRIBED + timedelta(hours=3))
    created, due = utc_iso(SUBSCRIBED), utc_iso(DUE)
    rows = [
        ("console", "user", f"u{n}", "", "UTC", "09:00", "0,1,2,3,4,5,6", 10, 0, created, due)
        for n in range(subscribers)
    ]
    distinct: set[str] = set()
    with store.conn:
        store.conn.executemany(
            "INSERT INTO subscribers (platform, kind, address, workspace, tz, digest_time, days, "
            "max_papers, paused, created_at, next_due_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        topic_rows = []
        for n, topics in enumerate(skewed_topics(subscribers, 3)):
            distinct.update(topic_key(t) for t in topics)
            topic_rows += [(n + 1, t, topic_key(t), created) for t in topics]
        store.conn.executemany(
            "INSERT INTO topics (subscriber_id, text, key, created_at) VALUES (?,?,?,?)",
            topic_rows,
        )
    store.close()
    return len(distinct)


async def _tick(path: Path) -> tuple[float, int]:
    runner = StoreRunner(Store.open(path))
    destination = Counting()
    digests = DigestRunner(runner, {"console": destination}, clock=lambda: DUE)
    started = time.perf_counter()
    report = await digests.tick()
    elapsed = time.perf_counter() - started
    await runner.close()
    assert report.sent + report.empty == destination.sent + report.empty
    return elapsed, destination.sent


def naive(path: Path, limit: int) -> float:
    """The loop a simple bot runs: per subscriber, per topic, query the window and match."""
    store = Store.open(path)
    start, end = SUBSCRIBED - timedelta(hours=24), DUE
    subscribers = store.conn.execute("SELECT id FROM subscribers LIMIT ?", [limit]).fetchall()
    started = time.perf_counter()
    for (subscriber_id,) in subscribers:
        topics = store.conn.execute(
            "SELECT text FROM topics WHERE subscriber_id = ?", [subscriber_id]
        ).fetchall()
        for (topic,) in topics:
            window = store.papers.first_seen_between(start, end)
            papers = list(store.papers.by_rowid(window).values())
            matches(store, topic, papers=papers, today=DUE.date())
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def run(subscribers: int, naive_limit: int) -> dict[str, float]:
    """Seconds for one digest tick over `subscribers`, and the naive loop (extrapolated
    linearly from `naive_limit` subscribers when that is fewer)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digest.db"
        distinct = build(path, subscribers)
        seconds, sent = asyncio.run(_tick(path))
        measured = min(subscribers, naive_limit)
        naive_seconds = naive(path, measured) * subscribers / measured
    return {
        "seconds": seconds,
        "sent": sent,
        "distinct_topics": distinct,
        "naive_seconds": naive_seconds,
        "naive_extrapolated": float(measured < subscribers),
    }


if __name__ == "__main__":
    print(datetime.now(), run(1000, 1000))
