"""Look-up latency beside the raw FTS5 query for the same terms (the floor)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import p50_p99, queries, timed
from bot.search import search
from bot.storage import Store
from bot.topics import fts, parse

LIMIT = 5
BM25 = "bm25(papers_fts, 4.0, 1.0, 0.5, 2.0)"


def raw_fts(store: Store, query: str) -> None:
    """The floor: a bare FTS5 MATCH for the topic's terms, as many rows as a look-up scores."""
    topic = parse(query)
    for group in topic.groups:
        if group.concepts:
            store.conn.execute(
                "SELECT rowid FROM papers_fts WHERE papers_fts MATCH ? LIMIT ?",
                [fts.match_all(topic, group), 50],
            ).fetchall()


def ranked_fts(store: Store, query: str) -> None:
    """For context: ranking every match with bm25 in SQLite (the earlier design)."""
    topic = parse(query)
    for group in topic.groups:
        if group.concepts:
            store.conn.execute(
                f"SELECT rowid, {BM25} AS s FROM papers_fts WHERE papers_fts MATCH ? "
                "ORDER BY s LIMIT 100",
                [fts.match_all(topic, group)],
            ).fetchall()


def run(path: Path, rounds: int = 3) -> dict[str, float]:
    """p50/p99 in ms of `search` and of the raw query, over the dev-set topics, warm."""
    store = Store.open(path)
    topics = queries()
    for q in topics:  # warm the page cache and the concept counts, as a running bot has them
        search(store, q, LIMIT)
        raw_fts(store, q)
    ours: list[float] = []
    floor: list[float] = []
    ranked: list[float] = []
    for _ in range(rounds):
        for q in topics:
            floor.append(timed(lambda q=q: raw_fts(store, q)))  # type: ignore[misc]
            ours.append(timed(lambda q=q: search(store, q, LIMIT)))  # type: ignore[misc]
            ranked.append(timed(lambda q=q: ranked_fts(store, q)))  # type: ignore[misc]
    store.close()
    (o50, o99), (f50, f99), (r50, r99) = p50_p99(ours), p50_p99(floor), p50_p99(ranked)
    return {
        "p50": o50,
        "p99": o99,
        "raw_p50": f50,
        "raw_p99": f99,
        "bm25_p50": r50,
        "bm25_p99": r99,
    }
