"""Topics that learn their reader's scope from one-click signals (docs/learning.md).

A reader marks papers shown under a topic subscription relevant or not relevant. Each paper is
a tf-idf vector over its stemmed words (title counted twice); a subscription's `Profile` holds
its marked papers, and a paper's closeness to them is its cosine with the closest of each kind:

* a paper the topic's words match is left out when it is closer to a paper marked not
  relevant than to any marked relevant (by `MARGIN`) and at least `REJECT_SIMILARITY` close.
  Only papers marked not relevant that the topic's words matched count here: a reader who
  turns down a look-up's loose results says nothing about where the topic's scope ends;
* a paper the words nearly match (a word score of `NEAR_MISS_SCORE` or more, below the match
  bar) is admitted when it is like a paper marked relevant: at least `ADMIT_SIMILARITY` close,
  less `WORD_EVIDENCE` for as much word evidence as a match has, and closer to it than to any
  paper marked not relevant;
* papers like the ones marked relevant rank higher.

Nearest examples rather than a classifier: every decision names the paper behind it, and with
at most `RECENT_SIGNALS` examples there is nothing to fit. The method and its constants were
chosen on tests/eval/devset.jsonl with a simulated reader (tests/eval/learning.py). With no
signals a `Profile` is empty and matching is exactly what it is without learning.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

from bot.models import MatchReason, Paper, SearchHit
from bot.storage import Store
from bot.topics import analyze_paper

ADMIT_SIMILARITY = 0.2
WORD_EVIDENCE = 0.05
NEAR_MISS_SCORE = 0.5
REJECT_SIMILARITY = 0.15
MARGIN = 0.05
# How much closeness to a paper marked relevant lifts a hit (word scores run from ~1 to ~5).
LIKE_BOOST = 2.0
# The bar a word match clears (`bot.search.MATCH_MIN_SCORE`): word evidence is counted up to it.
MATCH_SCORE = 1.3

_FIELD_WEIGHTS = (("title", 2.0), ("keywords", 1.0), ("abstract", 1.0))

TermVector = dict[str, float]


def _counts(paper: Paper) -> dict[str, float]:
    analyzed = analyze_paper(paper)
    counts: dict[str, float] = {}  # weighted: a title word counts twice
    for name, weight in _FIELD_WEIGHTS:
        for term in analyzed.fields[name]:
            # Two-letter stems and numbers are mostly noise ("we", "2", "v1").
            if len(term) > 2 and not term.isdigit():
                counts[term] = counts.get(term, 0.0) + weight
    return counts


class TermSpace:
    """Papers as unit tf-idf vectors, with document frequencies from the store's index.

    `doc_freq(terms)` gives the number of papers holding each term (unknown terms may be left
    out: they count as rare); `total` is the number of papers. Vectors are kept by paper id
    for the papers most recently asked for.
    """

    CACHE = 20_000

    def __init__(self, doc_freq: Callable[[Collection[str]], dict[str, int]], total: int) -> None:
        self._doc_freq = doc_freq
        self._total = max(total, 1)
        self._vectors: OrderedDict[str, TermVector] = OrderedDict()

    def vector(self, paper: Paper) -> TermVector:
        """The paper's unit tf-idf vector."""
        found = self._vectors.get(paper.id)
        if found is not None:
            self._vectors.move_to_end(paper.id)
            return found
        counts = _counts(paper)
        freq = self._doc_freq(counts.keys())
        weights = {
            term: (1.0 + math.log(tf)) * math.log(1.0 + self._total / max(freq.get(term, 1), 1))
            for term, tf in counts.items()
        }
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        vector = {term: w / norm for term, w in weights.items()}
        self._vectors[paper.id] = vector
        if len(self._vectors) > self.CACHE:
            self._vectors.popitem(last=False)
        return vector


def cosine(a: TermVector, b: TermVector) -> float:
    """Cosine similarity of two unit vectors."""
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(term, 0.0) for term, w in a.items())


@dataclass(frozen=True)
class Example:
    """A paper a reader marked, and how."""

    paper: Paper
    relevant: bool
    matched: bool = True  # whether the topic's words matched it when it was marked


@dataclass(frozen=True)
class Closeness:
    """How close a paper is to a profile's examples of each kind."""

    relevant: float
    like: Paper | None  # the closest paper marked relevant
    not_relevant: float
    out_of_scope: float  # to the closest paper marked not relevant that the words matched


@dataclass(frozen=True)
class Learned:
    """A subscription's matches after learning, and what learning left out."""

    hits: list[SearchHit]
    left_out: list[SearchHit]


def _short(title: str) -> str:
    return title if len(title) <= 60 else title[:59] + "…"


def liked_reason(paper: Paper, similarity: float) -> MatchReason:
    """Why-matched for a paper admitted for being like one the reader marked relevant."""
    return MatchReason(_short(paper.title), "", "feedback", similarity=round(similarity, 2))


class Profile:
    """What one topic subscription learned from its signals."""

    def __init__(self, examples: Sequence[Example], space: TermSpace) -> None:
        self.space = space
        self._relevant = [(e.paper, space.vector(e.paper)) for e in examples if e.relevant]
        self._not_relevant = [space.vector(e.paper) for e in examples if not e.relevant]
        # Those that narrow the topic's scope (see the module docstring).
        self._out_of_scope = [
            space.vector(e.paper) for e in examples if not e.relevant and e.matched
        ]
        self.marked = frozenset(e.paper.id for e in examples)

    @property
    def empty(self) -> bool:
        """Whether there is nothing to learn from (matching is then unchanged)."""
        return not self._relevant and not self._not_relevant

    @property
    def admits_new(self) -> bool:
        """Whether papers the words miss may be admitted (some paper was marked relevant)."""
        return bool(self._relevant)

    def closeness(self, paper: Paper) -> Closeness:
        """The paper's closeness to the examples of each kind."""
        vector = self.space.vector(paper)
        best, like = 0.0, None
        for example, example_vector in self._relevant:
            similarity = cosine(vector, example_vector)
            if similarity > best:
                best, like = similarity, example
        worst = max((cosine(vector, v) for v in self._not_relevant), default=0.0)
        scope = max((cosine(vector, v) for v in self._out_of_scope), default=0.0)
        return Closeness(best, like, worst, scope)

    def rejects(self, close: Closeness) -> bool:
        """Whether a matched paper is more like the papers marked not relevant."""
        return (
            close.out_of_scope >= REJECT_SIMILARITY and close.out_of_scope > close.relevant + MARGIN
        )

    def admits(self, close: Closeness, word_score: float) -> bool:
        """Whether a paper the words nearly match is like a paper marked relevant."""
        evidence = WORD_EVIDENCE * min(word_score / MATCH_SCORE, 1.0)
        return (
            close.like is not None
            and word_score >= NEAR_MISS_SCORE
            and close.relevant + evidence >= ADMIT_SIMILARITY
            and close.relevant > close.not_relevant + MARGIN
        )

    def apply(self, hits: Sequence[SearchHit], near: Sequence[SearchHit]) -> Learned:
        """Matches (`hits`) and near misses (`near`: scored, below the bar) after learning,
        best first."""
        kept: list[SearchHit] = []
        left_out: list[SearchHit] = []
        for hit in hits:
            close = self.closeness(hit.paper)
            if self.rejects(close):
                left_out.append(hit)
            else:
                kept.append(self._boosted(hit, close))
        if self._relevant:
            for hit in near:
                close = self.closeness(hit.paper)
                if close.like is not None and self.admits(close, hit.score):
                    boosted = self._boosted(hit, close)
                    reasons = (liked_reason(close.like, close.relevant), *hit.reasons)
                    kept.append(replace(boosted, reasons=reasons))
        kept.sort(key=lambda h: (-h.score, h.paper.id))
        return Learned(kept, left_out)

    def rerank(self, hits: Sequence[SearchHit]) -> Learned:
        """A look-up's hits after learning: the rejected left out, the liked lifted."""
        return self.apply(hits, ())

    @staticmethod
    def _boosted(hit: SearchHit, close: Closeness) -> SearchHit:
        return replace(hit, score=round(hit.score + LIKE_BOOST * close.relevant, 4))


def term_space(store: Store) -> TermSpace:
    """A `TermSpace` over the store's papers."""
    return TermSpace(store.papers.doc_freq, store.papers.count())


def load_profiles(
    store: Store, topic_ids: Sequence[int], space: TermSpace | None = None
) -> dict[int, Profile]:
    """The profiles of the topics that have signals (papers no longer stored are skipped)."""
    signals = store.signals.of_topics(topic_ids)
    if not signals:
        return {}
    papers = store.papers.get_many(
        sorted({s.paper_id for found in signals.values() for s in found})
    )
    space = space or term_space(store)
    return {
        topic_id: Profile(
            [
                Example(papers[s.paper_id], s.relevant, s.matched)
                for s in found
                if s.paper_id in papers
            ],
            space,
        )
        for topic_id, found in signals.items()
    }
