"""A digest run for many subscribers with skewed topics, beside the naive loop."""

from __future__ import annotations

import asyncio
import random
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


def build(path: Path, subscribers: int, learners: float = 0.0) -> int:
    """A store with old papers, a day of new ones, and subscribers; returns distinct topics.

    A `learners` share of the subscribers taught each of their topics `SIGNALS` signals, half
    relevant and half not: papers drawn from the topic's first `SHOWN` old matches (what its
    digests showed its readers, so readers of a topic mark overlapping papers), made up with
    random old papers when a topic has too few matches."""
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
        if learners:
            _teach(store, subscribers, learners)
    store.close()
    return len(distinct)


SIGNALS = 10
SHOWN = 30


def _teach(store: Store, subscribers: int, learners: float) -> None:
    every = max(1, round(1 / learners))
    rows = store.conn.execute(
        "SELECT id, text FROM topics WHERE (subscriber_id - 1) % ? = 0", [every]
    ).fetchall()
    shown: dict[str, list[str]] = {}
    rng = random.Random(23)
    signals = []
    for topic_id, text in rows:
        if text not in shown:
            found = [h.paper.id for h in matches(store, text, today=DUE.date(), cap=200)]
            shown[text] = found[:SHOWN]
        ids = rng.sample(shown[text], min(SIGNALS, len(shown[text])))
        matched = [1] * len(ids)
        while len(ids) < SIGNALS:
            number = rng.randrange(OLD_PAPERS)  # the ids `synthetic_papers` gives
            ids.append(f"{2000 + number // 100000:04d}.{number % 100000:05d}")
            matched.append(0)
        for n, (paper_id, was_matched) in enumerate(zip(ids, matched, strict=True)):
            relevant = int(n < SIGNALS // 2)
            signals.append((topic_id, paper_id, relevant, was_matched, "bench", utc_iso(DUE)))
    store.conn.executemany(
        "INSERT OR IGNORE INTO signals (topic_id, paper_id, relevant, matched, by_user, "
        "created_at) VALUES (?,?,?,?,?,?)",
        signals,
    )


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


def run(subscribers: int, naive_limit: int, learners: float = 0.0) -> dict[str, float]:
    """Seconds for one digest tick over `subscribers` (a `learners` share of them with signals
    on every topic), and the naive loop (extrapolated linearly from `naive_limit` subscribers
    when that is fewer; 0 for no naive loop)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "digest.db"
        distinct = build(path, subscribers, learners)
        seconds, sent = asyncio.run(_tick(path))
        measured = min(subscribers, naive_limit)
        naive_seconds = naive(path, measured) * subscribers / measured if measured else 0.0
    return {
        "seconds": seconds,
        "sent": sent,
        "distinct_topics": distinct,
        "naive_seconds": naive_seconds,
        "naive_extrapolated": float(measured < subscribers),
    }


if __name__ == "__main__":
    print(datetime.now(), run(1000, 1000))
    print(datetime.now(), run(1000, 0, learners=0.1))
