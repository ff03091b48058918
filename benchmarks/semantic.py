"""What the semantic extra costs: model load, papers embedded per second, look-ups with it over
100k and 1M papers (exact scan and the vector index), the index's recall and build time, and
the peak RSS of `paperbot console` with the extra over the largest store.

    python -m benchmarks.semantic [--quick]

Embedding a large store would take hours and measure the same scan, so its vectors are made:
each synthetic paper's is a blend of two sample papers' real embeddings plus noise (its
passages lean to one or the other), which gives the clustered neighbourhoods real embeddings
have; uniform random vectors would flatter neither the scan nor the index. Topic vectors come
from the real model. The stores with vectors and their index are cached in benchmarks/.cache.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from benchmarks import memory
from benchmarks.harness import CACHE, corpus, p50_p99, peak_rss_mb, queries, timed
from bot.search import search
from bot.semantic import MODEL_NAME, Semantic, build_index, load_encoder
from bot.semantic.model import Encoder
from bot.storage import Store
from bot.topics import parse

SEED = Path(__file__).resolve().parent.parent / "bot" / "data" / "seed_papers.jsonl"
LIMIT = 5
# Passages per paper: the sample corpus's abstracts average 5.1 (two sentences each).
PASSAGES = 5
NEAREST = 50


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


def _sample_vectors(encoder: Encoder) -> Any:
    """The whole-text embeddings of the sample papers (computed once, cached)."""
    import numpy as np

    path = CACHE / f"sample-vectors-{encoder.name}.npy"
    if not path.exists():
        rows = [json.loads(line) for line in SEED.open(encoding="utf-8")]
        texts = [f"{r['title']}. {r.get('summary') or ''}" for r in rows]
        np.save(path, encoder.encode(texts))
    return np.load(path)


def _unit(x: Any) -> Any:
    import numpy as np

    out: Any = x / np.linalg.norm(x, axis=-1, keepdims=True)
    return out


def _packed(vectors: Any) -> list[bytes]:
    """`pack` for a matrix at once (the same bytes, without a Python loop per number)."""
    import numpy as np

    scales = (np.abs(vectors).max(axis=1) / 127.0).astype(np.float32)
    scales[scales == 0] = 1.0 / 127.0
    quantized = np.clip(np.rint(vectors / scales[:, None]), -127, 127).astype(np.int8)
    return [s.tobytes() + q.tobytes() for s, q in zip(scales, quantized, strict=True)]


def _fill_vectors(store: Store, sample: Any, say: Callable[[str], None]) -> None:
    import numpy as np

    rng = np.random.default_rng(5)
    rowids = [int(r[0]) for r in store.conn.execute("SELECT rowid FROM papers ORDER BY rowid")]
    say(f"making vectors for {len(rowids):,} papers")
    for start in range(0, len(rowids), 20_000):
        chunk = rowids[start : start + 20_000]
        n = len(chunk)
        i, j = rng.integers(0, len(sample), n), rng.integers(0, len(sample), n)
        a = rng.uniform(0.3, 1.0, n).astype(np.float32)[:, None]
        noise = 0.045
        blend = _unit(a * sample[i] + (1 - a) * sample[j])
        whole = _unit(blend + noise * rng.standard_normal((n, 384)))
        sides = np.where(rng.random((n, PASSAGES)) < a, i[:, None], j[:, None])
        passages = _unit(sample[sides] + 2 * noise * rng.standard_normal((n, PASSAGES, 384)))
        w = _packed(whole.astype(np.float32))
        p = _packed(passages.reshape(-1, 384).astype(np.float32))
        rows = [
            (r, w[k], b"".join(p[k * PASSAGES : (k + 1) * PASSAGES])) for k, r in enumerate(chunk)
        ]
        store.papers.put_vectors(MODEL_NAME, rows)


def _semantic_store(size: int, encoder: Encoder, say: Callable[[str], None]) -> Path:
    """The `size`-paper corpus with made vectors and their index (built once, cached)."""
    path = CACHE / f"corpus-{size}-vectors.db"
    if not path.exists():
        with corpus(size, say) as words:
            partial = path.with_suffix(".partial")
            shutil.copyfile(words, partial)
        store = Store.open(partial)
        _fill_vectors(store, _sample_vectors(encoder), say)
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        partial.rename(path)
    return path


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


def _recall(store: Store, exact: Semantic, indexed: Semantic) -> tuple[float, float, float]:
    """Over the dev-set topics: the share of the exact scan's `NEAREST` papers the index also
    finds (mean, worst), and the mean similarity lost at rank `NEAREST`."""
    shares, lost = [], []
    for q in queries():
        topic = parse(q)
        truth = exact.nearest(store.papers, topic, NEAREST)
        found = indexed.nearest(store.papers, topic, NEAREST)
        if not truth:
            continue
        shares.append(len({r for r, _ in truth} & {r for r, _ in found}) / len(truth))
        lost.append(truth[-1][1] - (found[-1][1] if found else 0.0))
    return sum(shares) / len(shares), min(shares), sum(lost) / len(lost)


def run(
    sizes: tuple[int, ...] = (100_000, 1_000_000), say: Callable[[str], None] = print
) -> list[tuple[str, str]]:
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
        path = _semantic_store(size, encoder, say)
        folder = path.with_name(path.name + ".ann")
        shutil.rmtree(folder, ignore_errors=True)
        store = Store.open(path)
        say(f"look-ups over {size:,} papers: words, then the exact scan")
        w50, w99 = _lookups(store)
        exact = Semantic(encoder, use_index=False)
        e50, e99 = _lookups(store, exact)
        say(f"building the vector index of {size:,} papers")
        built = time.perf_counter()
        index = build_index(store.papers, encoder.name, encoder.dim)
        build_s = time.perf_counter() - built
        assert index is not None
        indexed = Semantic(encoder)
        i50, i99 = _lookups(store, indexed)
        share, worst, lost = _recall(store, exact, indexed)
        mb = indexed.nbytes / 1e6
        disk = sum(f.stat().st_size for f in index.iterdir()) / 1e6
        store.close()
        rows += [
            (
                f"look-up, {size:,} papers",
                f"words only p50 {w50:.1f} / p99 {w99:.1f} ms; with the extra, exact scan p50"
                f" {e50:.1f} / p99 {e99:.1f} ms; with the index p50 {i50:.1f} / p99 {i99:.1f} ms",
            ),
            (
                f"vector index, {size:,} papers",
                f"built in {build_s:.0f} s, {disk:.0f} MB on disk, ~{mb:.0f}"
                f" MB in memory; finds {share:.3f} of the exact {NEAREST} nearest (worst topic"
                f" {worst:.2f}), similarity at rank {NEAREST} {lost:+.4f} lower",
            ),
        ]
        if size == sizes[-1]:
            say(f"peak RSS of paperbot console with the extra over {size:,} papers")
            lines = [f"/papers search {q}" for q in queries()] * 2
            lines += ["/papers subscribe MoE", "/papers subscribe KV cache", "/papers digest"]
            env = {"PAPERBOT_DB": str(path), "PAPERBOT_LOG_LEVEL": "WARNING"}
            peak = memory.peak_mb("\n".join(lines) + "\n", {**env, "PAPERBOT_SEMANTIC": "auto"})
            rows.append((f"peak RSS, {size:,} papers, the extra", f"{peak:.0f} MB"))
    return rows


@click.command()
@click.option("--quick", is_flag=True, help="Stop at 100k papers.")
def main(quick: bool) -> None:
    """Print the semantic extra's costs."""
    say = lambda text: click.echo(text, err=True)  # noqa: E731
    for what, result in run((100_000,) if quick else (100_000, 1_000_000), say):
        click.echo(f"{what:<42} {result}")


if __name__ == "__main__":
    main()
