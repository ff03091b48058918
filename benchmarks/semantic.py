"""What the semantic extra costs: model load, papers embedded per second, look-up latency with
and without it at 10k and 100k papers, and the memory of the model and the vectors.

    python -m benchmarks.semantic

Paper and passage vectors for the large stores are random unit vectors (embedding 100k papers
would take hours and measure the same brute-force scan); topic vectors come from the real model.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click

from benchmarks.harness import EPOCH, fill, p50_p99, peak_rss_mb, queries, timed
from bot.search import search
from bot.semantic import MODEL_NAME, Semantic, load_encoder, pack
from bot.storage import Store

SEED = Path(__file__).resolve().parent.parent / "bot" / "data" / "seed_papers.jsonl"
LIMIT = 5
# Passages per paper: the sample corpus's abstracts average 5.1 (two sentences each).
PASSAGES = 5


def _throughput(semantic: Semantic, rounds: int = 2) -> float:
    rows = [json.loads(line) for line in SEED.open(encoding="utf-8")][:64]
    papers = [(i, r["title"], r.get("summary")) for i, r in enumerate(rows)]
    semantic.embed(papers[:4])
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        semantic.embed(papers)
        best = max(best, len(papers) / (time.perf_counter() - started))
    return best


def _random_vectors(store: Store) -> None:
    import numpy as np

    rng = np.random.default_rng(5)
    rowids = [int(r[0]) for r in store.conn.execute("SELECT rowid FROM papers")]
    for start in range(0, len(rowids), 10_000):
        chunk = rowids[start : start + 10_000]
        vectors = rng.standard_normal((len(chunk) * (1 + PASSAGES), 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        packed = [pack(v) for v in vectors]
        rows = [
            (
                r,
                packed[i],
                b"".join(packed[len(chunk) + i * PASSAGES : len(chunk) + (i + 1) * PASSAGES]),
            )
            for i, r in enumerate(chunk)
        ]
        store.papers.put_vectors(MODEL_NAME, rows)


def _lookups(
    store: Store, semantic: Semantic | None = None, rounds: int = 3
) -> tuple[float, float]:
    topics = queries()
    for q in topics:
        search(store, q, LIMIT, semantic=semantic)
    times = [
        timed(lambda q=q: search(store, q, LIMIT, semantic=semantic))  # type: ignore[misc]
        for _ in range(rounds)
        for q in topics
    ]
    return p50_p99(times)


def run(sizes: tuple[int, ...] = (10_000, 100_000)) -> list[tuple[str, str]]:
    """(what, result) rows."""
    rss_before = peak_rss_mb()
    started = time.perf_counter()
    encoder = load_encoder()
    if encoder is None:
        raise click.ClickException("the semantic extra is not installed")
    semantic = Semantic(encoder)
    load = time.perf_counter() - started
    rows = [
        ("model load (in process)", f"{load:.2f} s, peak RSS +{peak_rss_mb() - rss_before:.0f} MB"),
        ("embedding (whole text and passages)", f"{_throughput(semantic):.1f} papers/s"),
    ]
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(Path(tmp) / "semantic.db")
            fill(store, size, seed=7, at=EPOCH)
            _random_vectors(store)
            w50, w99 = _lookups(store)
            semantic = Semantic(encoder)
            index_mb = semantic.sync(store.papers).nbytes / 1e6
            s50, s99 = _lookups(store, semantic)
            store.close()
            rows.append(
                (
                    f"look-up, {size:,} papers",
                    f"words only p50 {w50:.1f} / p99 {w99:.1f} ms; with semantic p50 {s50:.1f}"
                    f" / p99 {s99:.1f} ms; vectors in memory ~{index_mb:.0f} MB",
                )
            )
    return rows


@click.command()
def main() -> None:
    """Print the semantic extra's costs."""
    for what, result in run():
        click.echo(f"{what:<42} {result}")


if __name__ == "__main__":
    main()
