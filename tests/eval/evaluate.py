"""Measure look-up and digest-match quality on the judged query sets.

    python tests/eval/evaluate.py [devset|holdout|both] [--semantic] [--decoys N] [--verbose]

`--semantic` turns on the semantic extra (it must be installed) and embeds the sample corpus.
`--decoys N` (with the extra and faiss) adds N vectors of no paper near the sample's and reports
the figures twice: searched exactly, then through the vector index (`bot.semantic.ann`), to
show what the approximate index costs.

nDCG@10 uses graded gains (2^grade - 1) against the ideal ordering of every graded paper.
Match F1 compares `matches()` with the papers graded 2 ("wanted in a digest"); papers graded 1
are neutral: returning them is not counted against precision, missing them not against recall.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from bot.importer import import_files  # noqa: E402
from bot.search import matches, search  # noqa: E402
from bot.semantic import Semantic, embed_missing, load_encoder  # noqa: E402
from bot.storage import Store  # noqa: E402

SEED = ROOT / "bot" / "data" / "seed_papers.jsonl"


@dataclass(frozen=True)
class QueryResult:
    query: str
    ndcg: float
    precision: float
    recall: float
    f1: float
    top: list[str]
    missed: list[str]
    extra: list[str]


def load(name: str) -> list[dict[str, object]]:
    with (HERE / f"{name}.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def dcg(gains: list[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def evaluate_query(
    store: Store, query: str, grades: dict[str, int], semantic: Semantic | None = None
) -> QueryResult:
    ranked = [h.paper.id for h in search(store, query, limit=10, semantic=semantic)]
    gains = [2 ** grades.get(pid, 0) - 1 for pid in ranked]
    ideal = sorted((2**g - 1 for g in grades.values()), reverse=True)[:10]
    ndcg = dcg(gains) / dcg(ideal) if ideal else 1.0
    predicted = {h.paper.id for h in matches(store, query, semantic=semantic)}
    wanted = {pid for pid, g in grades.items() if g >= 2}
    neutral = {pid for pid, g in grades.items() if g == 1}
    true_pos = len(predicted & wanted)
    counted = predicted - neutral
    precision = true_pos / len(counted) if counted else (1.0 if not wanted else 0.0)
    recall = true_pos / len(wanted) if wanted else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return QueryResult(
        query,
        ndcg,
        precision,
        recall,
        f1,
        ranked,
        sorted(wanted - predicted),
        sorted(counted - wanted),
    )


def evaluate(
    store: Store, queries: list[dict[str, object]], semantic: Semantic | None = None
) -> list[QueryResult]:
    return [
        evaluate_query(store, str(q["query"]), dict(q["grades"]), semantic)  # type: ignore[call-overload]
        for q in queries
    ]


def seeded_store(path: str = ":memory:") -> Store:
    store = Store.open(path)
    import_files(store, [SEED], datetime(2026, 11, 20, tzinfo=UTC))
    return store


def embedded(store: Store) -> Semantic:
    """The semantic extra, with every paper of `store` embedded."""
    encoder = load_encoder()
    if encoder is None:
        raise SystemExit("the semantic extra is not installed")
    semantic = Semantic(encoder)
    embed_missing(store.papers, semantic)
    return semantic


def crowded(store: Store, semantic: Semantic, count: int, indexed: bool) -> Semantic:
    """The store's vectors among `count` decoys (vectors of no paper, each a blend of two
    sample papers' plus noise, so they crowd the real papers' neighbourhoods), searched
    exactly or, with `indexed`, through the vector index; a fresh `Semantic` to ask."""
    import numpy as np

    from bot.semantic import ann, build_index, pack
    from bot.semantic.vectors import unpack_rows

    model = semantic.encoder.name
    if store.papers.count_vectors(model) < count:
        ints, scales = unpack_rows(b"".join(v for _, v in store.papers.vectors(model)), 384)
        base = ints.astype(np.float32) * scales[:, None]
        rng = np.random.default_rng(11)
        first = 1_000_000
        for start in range(0, count, 20_000):
            n = min(20_000, count - start)
            i, j = rng.integers(0, len(base), n), rng.integers(0, len(base), n)
            a = rng.uniform(0.3, 1.0, n).astype(np.float32)[:, None]
            mix = a * base[i] + (1 - a) * base[j]
            mix /= np.linalg.norm(mix, axis=1, keepdims=True)
            mix += rng.standard_normal(mix.shape).astype(np.float32) * 0.045
            mix /= np.linalg.norm(mix, axis=1, keepdims=True)
            rows = [(first + start + k, pack(v), b"") for k, v in enumerate(mix)]
            store.papers.put_vectors(model, rows)
    if indexed:
        build_index(store.papers, model, semantic.encoder.dim)
    else:
        folder = ann.directory(store.papers.path() or Path())
        for old in folder.glob("*.faiss") if folder.exists() else ():
            old.unlink()
    return Semantic(semantic.encoder)


def summary(results: list[QueryResult]) -> dict[str, float]:
    n = len(results) or 1
    return {
        "queries": len(results),
        "ndcg@10": sum(r.ndcg for r in results) / n,
        "match_f1": sum(r.f1 for r in results) / n,
        "precision": sum(r.precision for r in results) / n,
        "recall": sum(r.recall for r in results) / n,
        "worst_ndcg": min((r.ndcg for r in results), default=1.0),
    }


def main(argv: list[str]) -> None:
    which = argv[0] if argv and not argv[0].startswith("-") else "both"
    verbose = "--verbose" in argv
    decoys = int(argv[argv.index("--decoys") + 1]) if "--decoys" in argv else 0
    with tempfile.TemporaryDirectory() as tmp:
        store = seeded_store(f"{tmp}/eval.db" if decoys else ":memory:")
        semantic = embedded(store) if "--semantic" in argv or decoys else None
        if semantic is None or not decoys:
            report(store, which, verbose, semantic)
            return
        for indexed in (False, True):
            print(f"-- {decoys:,} decoy vectors, {'the vector index' if indexed else 'exact scan'}")
            report(store, which, verbose, crowded(store, semantic, decoys, indexed))


def report(store: Store, which: str, verbose: bool, semantic: Semantic | None) -> None:
    """Print the figures of the judged sets."""
    titles = {
        p.id: p.title
        for p in store.papers.get_many(
            [r[0] for r in store.conn.execute("SELECT id FROM papers")]
        ).values()
    }
    names = ["devset", "holdout"] if which == "both" else [which]
    for name in names:
        results = evaluate(store, load(name), semantic)
        s = summary(results)
        print(
            f"{name}: {s['queries']:.0f} queries  nDCG@10 {s['ndcg@10']:.3f}"
            f"  match F1 {s['match_f1']:.3f}"
            f"  (P {s['precision']:.3f} R {s['recall']:.3f})  worst nDCG {s['worst_ndcg']:.3f}"
        )
        for r in results:
            print(
                f"  {r.ndcg:5.2f} {r.f1:5.2f} (P {r.precision:4.2f} R {r.recall:4.2f})  {r.query}"
            )
            if verbose:
                for pid in r.missed:
                    print(f"        missed: {titles.get(pid, pid)[:90]}")
                for pid in r.extra:
                    print(f"        extra:  {titles.get(pid, pid)[:90]}")


if __name__ == "__main__":
    main(sys.argv[1:])
