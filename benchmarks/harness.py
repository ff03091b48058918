"""Shared pieces of the benchmarks: timing, percentiles, cached corpora, and the topic mix."""

from __future__ import annotations

import json
import random
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.corpus import synthetic_papers
from bot import lexicon
from bot.storage import Store

CACHE = Path(__file__).resolve().parent / ".cache"
DEVSET = Path(__file__).resolve().parent.parent / "tests" / "eval" / "devset.jsonl"
EPOCH = datetime(2026, 11, 1, tzinfo=UTC)
CHUNK = 5000


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def p50_p99(values: list[float]) -> tuple[float, float]:
    """Median and 99th percentile."""
    return statistics.median(values), percentile(values, 99)


def timed(fn: Callable[[], object]) -> float:
    """Milliseconds one call takes."""
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def queries() -> list[str]:
    """The judged dev-set topics: what people actually look up."""
    with DEVSET.open(encoding="utf-8") as handle:
        return [json.loads(line)["query"] for line in handle if line.strip()]


def topic_pool() -> list[str]:
    """Distinct subscription topics: the dev-set queries, then lexicon labels and acronyms."""
    pool = list(dict.fromkeys(queries()))
    for entry in lexicon.ENTRIES:
        for form in entry.forms[:2]:
            if form.lower() not in {t.lower() for t in pool}:
                pool.append(form)
    return pool


def skewed_topics(count: int, per_subscriber: int, seed: int = 11) -> Iterator[list[str]]:
    """Topic lists drawn from a Zipf-like popularity (a few topics are very popular)."""
    rng = random.Random(seed)
    pool = topic_pool()
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(pool))]
    for _ in range(count):
        chosen: list[str] = []
        while len(chosen) < per_subscriber:
            topic = rng.choices(pool, weights)[0]
            if topic not in chosen:
                chosen.append(topic)
        yield chosen


def fill(store: Store, count: int, seed: int = 7, offset: int = 0, at: datetime = EPOCH) -> None:
    """Add `count` synthetic papers first seen at `at`, in chunks."""
    papers = synthetic_papers(count, seed=seed, id_offset=offset)
    while True:
        chunk = [p for _, p in zip(range(CHUNK), papers, strict=False)]
        if not chunk:
            return
        store.papers.upsert(chunk, at)


@contextmanager
def corpus(count: int, progress: Callable[[str], None]) -> Iterator[Path]:
    """A database with `count` synthetic papers, built once and kept in benchmarks/.cache."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"corpus-{count}.db"
    if not path.exists():
        progress(f"building a {count:,}-paper corpus (once; cached in {CACHE})")
        partial = path.with_suffix(".partial")
        for leftover in CACHE.glob(partial.name + "*"):
            leftover.unlink()
        store = Store.open(partial)
        fill(store, count)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        partial.rename(path)
    yield path


def day_window() -> tuple[datetime, datetime]:
    """The digest window the benchmarks use: one day."""
    return EPOCH + timedelta(days=1), EPOCH + timedelta(days=2)
