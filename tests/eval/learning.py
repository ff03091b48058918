"""Measure topics that learn from their reader, with a simulated reader (docs/learning.md).

    python tests/eval/learning.py [devset|holdout|both] [--semantic] [--verbose]

For each judged topic the corpus is split by a hash of the paper id into halves A (seen
earlier) and B (later). The reader looks at what the bot shows for the topic in A (the top 10
of `search`, then the `match` set, both restricted to A) and, in that order, marks papers
judged 2 relevant and papers judged 0 (or not judged) not relevant, skipping those judged 1,
up to N signals. `match` for the reader's subscription is then scored on B against B's
judgments (digest F1: grade-2 papers must be sent, grade-1 papers count neither way), and
compared with `match` without signals.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from evaluate import embedded, load, seeded_store

from bot.learning import load_profiles
from bot.search import learned_matches, matches, search
from bot.semantic import Semantic
from bot.storage import Store
from bot.subscriptions import Subscriptions

CURVE = (0, 3, 5, 10)
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def half(paper_id: str) -> str:
    """ "A" or "B", by a hash of the paper id (stable across runs and machines)."""
    return "A" if int(hashlib.sha256(paper_id.encode()).hexdigest(), 16) % 2 == 0 else "B"


def digest_f1(predicted: set[str], grades: dict[str, int], pool: set[str]) -> float:
    """F1 of a digest against the grade-2 papers of `pool`; grade-1 papers are neutral."""
    wanted = {p for p, g in grades.items() if g >= 2 and p in pool}
    counted = predicted - {p for p, g in grades.items() if g == 1}
    hits = len(predicted & wanted)
    precision = hits / len(counted) if counted else (1.0 if not wanted else 0.0)
    recall = hits / len(wanted) if wanted else 1.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def reader_signals(
    store: Store, query: str, grades: dict[str, int], seen: set[str], semantic: Semantic | None
) -> list[tuple[str, bool]]:
    """What the simulated reader marks, in the order it was shown: (paper id, relevant)."""
    shown = [h.paper.id for h in search(store, query, limit=500, semantic=semantic)]
    order = [p for p in shown if p in seen][:10]
    order += [h.paper.id for h in matches(store, query, semantic=semantic) if h.paper.id in seen]
    marks: list[tuple[str, bool]] = []
    for paper_id in dict.fromkeys(order):
        grade = grades.get(paper_id, 0)
        if grade != 1:
            marks.append((paper_id, grade == 2))
        if len(marks) == CURVE[-1]:
            break
    return marks


@dataclass(frozen=True)
class TopicCurve:
    query: str
    f1: dict[int, float]  # signals -> F1 on B
    marks: list[tuple[str, bool]]


def learning_curve(
    store: Store, queries: list[dict[str, object]], semantic: Semantic | None = None
) -> list[TopicCurve]:
    """F1 on B at each number of signals in `CURVE`, per judged topic."""
    subs = Subscriptions(store, semantic)
    ids = {p for (p,) in store.conn.execute("SELECT id FROM papers")}
    seen = {p for p in ids if half(p) == "A"}
    later = ids - seen
    results = []
    for number, q in enumerate(queries):
        query, grades = str(q["query"]), dict(q["grades"])  # type: ignore[call-overload]
        marks = reader_signals(store, query, grades, seen, semantic)
        reader = subs.get_or_create("console", "user", f"reader-{number}", "", NOW)
        subs.add_topic(reader.id, query, NOW)
        topic = store.subscribers.topics(reader.id)[-1]
        curve = {}
        for n in CURVE:
            store.signals.forget(topic.id)
            marked = store.papers.get_many([paper_id for paper_id, _ in marks[:n]])
            for paper_id, relevant in marks[:n]:
                subs.record(topic, marked[paper_id], relevant, "reader", NOW)
            profile = load_profiles(store, [topic.id]).get(topic.id)
            found = learned_matches(store, query, profile, semantic=semantic).hits
            curve[n] = digest_f1({h.paper.id for h in found} & later, grades, later)
        results.append(TopicCurve(query, curve, marks))
    return results


def main(argv: list[str]) -> None:
    which = argv[0] if argv and not argv[0].startswith("-") else "both"
    store = seeded_store()
    semantic = embedded(store) if "--semantic" in argv else None
    mode = "with the semantic extra" if semantic else "words only"
    for name in ["devset", "holdout"] if which == "both" else [which]:
        results = learning_curve(store, load(name), semantic)
        n = len(results)
        means = {k: sum(r.f1[k] for r in results) / n for k in CURVE}
        worst = {k: min(r.f1[k] - r.f1[0] for r in results) for k in CURVE}
        print(f"{name}, {mode}: {n} topics, mean digest F1 on B by signals")
        print("  " + "  ".join(f"{k:>2}: {means[k]:.3f} (worst {worst[k]:+.3f})" for k in CURVE))
        if "--verbose" in argv:
            for r in results:
                good = sum(1 for _, ok in r.marks if ok)
                line = " ".join(f"{r.f1[k]:.2f}" for k in CURVE)
                print(f"    {line}  +{good}/-{len(r.marks) - good}  {r.query}")


if __name__ == "__main__":
    main(sys.argv[1:])
