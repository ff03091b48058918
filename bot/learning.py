"""Topics that learn their reader's scope from one-click signals (docs/learning.md).

A reader marks papers shown under a topic subscription relevant or not relevant. Each paper is
a tf-idf vector over its stemmed words (title counted twice); a subscription's `Profile` holds
its marked papers, and a paper's closeness to them is its cosine with the closest of each kind:

* a paper the topic's words match is left out when it is closer to a paper marked not
  relevant than to any marked relevant (by `MARGIN`) and at least `REJECT_SIMILARITY` close.
  Until some paper is marked relevant, only papers marked not relevant that the topic matched
  (by its words, or by meaning with the semantic extra) count here: with nothing to compare
  them with, a reader's turning down a look-up's loose results says nothing about where the
  topic's scope ends;
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
from collections import Counter, OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from bot.models import MatchReason, Paper, SearchHit
from bot.storage import Store
from bot.topics import analyze_paper

ADMIT_SIMILARITY = 0.2
WORD_EVIDENCE = 0.05
NEAR_MISS_SCORE = 0.5
REJECT_SIMILARITY = 0.15
MARGIN = 0.05
# How much closeness to a paper marked relevant lifts a hit (word scores run from ~1 to ~5),
# from LIFT_MIN on (below it papers share only a word or two).
LIKE_BOOST = 2.0
LIFT_MIN = 0.05
# The bar a word match clears (`bot.search.MATCH_MIN_SCORE`): word evidence is counted up to it.
MATCH_SCORE = 1.3

TermVector = dict[str, float]


def _counts(paper: Paper) -> dict[str, float]:
    analyzed = analyze_paper(paper)
    # Counted in C (`Counter`), then the distinct terms filtered: a paper is analysed once
    # per tick, but a tick may see thousands of them.
    counts: Counter[str] = Counter(analyzed.fields["abstract"])
    counts.update(analyzed.fields["keywords"])
    title = Counter(analyzed.fields["title"])
    counts.update(title)
    counts.update(title)  # a title word counts twice
    # Two-letter stems and numbers are mostly noise ("we", "2", "v1").
    return {t: float(n) for t, n in counts.items() if len(t) > 2 and not t.isdigit()}


class TermSpace:
    """Papers as unit tf-idf vectors, with document frequencies from the store's index.

    `doc_freq(terms)` gives the number of papers holding each term (unknown terms may be left
    out: they count as rare), counted up to `common`: terms that common are left out of the
    vectors (they say little about a topic's scope, and in a large store they are most of
    the cost of comparing papers). `total` is the number of papers. Vectors are kept by paper
    id for the papers most recently asked for.
    """

    CACHE = 20_000

    def __init__(
        self,
        doc_freq: Callable[[Collection[str]], dict[str, int]],
        total: int,
        common: int | None = None,
    ) -> None:
        self._doc_freq = doc_freq
        self.total = total
        self._common = common
        # By id and text: a paper whose text changes gets a new vector.
        self._vectors: OrderedDict[tuple[str, str, str], TermVector] = OrderedDict()

    def vector(self, paper: Paper) -> TermVector:
        """The paper's unit tf-idf vector."""
        key = (paper.id, paper.title, paper.summary)
        found = self._vectors.get(key)
        if found is not None:
            self._vectors.move_to_end(key)
            return found
        counts = _counts(paper)
        freq = self._doc_freq(counts.keys())
        common = self._common
        weights = {
            term: (1.0 + math.log(tf))
            * math.log(1.0 + max(self.total, 1) / max(freq.get(term, 1), 1))
            for term, tf in counts.items()
            if common is None or freq.get(term, 0) < common
        }
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        vector = {term: w / norm for term, w in weights.items()}
        self._vectors[key] = vector
        if len(self._vectors) > self.CACHE:
            self._vectors.popitem(last=False)
        return vector


class Example(NamedTuple):
    """A paper a reader marked, and how (a tuple: a digest batch makes hundreds)."""

    paper: Paper
    relevant: bool
    matched: bool = True  # whether the topic matched it when it was marked


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


class Candidates:
    """A topic's matches and near misses (each best first), and their closeness to papers.

    Readers of a topic mark the papers it showed them, so in a digest tick the same marked
    papers come up for many subscriptions: a marked paper's cosines with every candidate are
    computed once, and each subscription takes the maximum over its own marked papers.
    """

    def __init__(
        self, hits: Sequence[SearchHit], near: Sequence[SearchHit], space: TermSpace
    ) -> None:
        self.hits = list(hits)
        self.near = list(near)
        self.space = space
        self._size = len(self.hits) + len(self.near)
        # Each term's weight in each candidate: a marked paper's cosines with all of them in
        # one pass over its own terms (a cosine per candidate was five times slower).
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for at, hit in enumerate((*self.hits, *self.near)):
            for term, weight in space.vector(hit.paper).items():
                self._postings.setdefault(term, []).append((at, weight))
        self._sims: dict[str, list[float]] = {}
        # How much each near miss's words count towards admitting it (below the match bar;
        # those under `NEAR_MISS_SCORE` never qualify).
        self.evidence = [
            WORD_EVIDENCE * min(h.score / MATCH_SCORE, 1.0) if h.score >= NEAR_MISS_SCORE else -1.0
            for h in self.near
        ]

    def sims(self, paper: Paper) -> list[float]:
        """The cosine of every candidate (matches, then near misses) with `paper`."""
        found = self._sims.get(paper.id)
        if found is None:
            found = self._sims[paper.id] = [0.0] * self._size
            postings = self._postings
            for term, weight in self.space.vector(paper).items():
                for at, other in postings.get(term, ()):
                    found[at] += weight * other
        return found

    def pending(self, papers: Iterable[Paper]) -> list[Paper]:
        """Those of `papers` whose cosines are not computed yet."""
        return [p for p in papers if p.id not in self._sims]


def _closest(lists: list[list[float]], size: int) -> list[float]:
    return list(map(max, *lists)) if len(lists) > 1 else lists[0] if lists else [0.0] * size


class Profile:
    """What one topic subscription learned from its signals."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)
        self._relevant = [e.paper for e in self.examples if e.relevant]
        self._not_relevant = [e.paper for e in self.examples if not e.relevant]
        self._out_of_scope = [e.paper for e in self.examples if not e.relevant and e.matched]

    @property
    def empty(self) -> bool:
        """Whether there is nothing to learn from (matching is then unchanged)."""
        return not self.examples

    @property
    def admits_new(self) -> bool:
        """Whether papers the words miss may be admitted (some paper was marked relevant)."""
        return bool(self._relevant)

    @property
    def papers(self) -> list[Paper]:
        """The marked papers."""
        return [e.paper for e in self.examples]

    def apply(self, found: Candidates) -> Learned:
        """A topic's matches and near misses after learning, best first."""
        # List comprehensions over the precomputed cosines: this runs for every subscription
        # that learned, in every digest tick.
        matched = len(found.hits)
        relevant = [found.sims(p) for p in self._relevant]
        like = _closest(relevant, matched + len(found.near))
        left: set[int] = set()
        against = self._not_relevant if relevant else self._out_of_scope
        if against:
            scope = _closest([found.sims(p) for p in against], matched)
            left = {
                at
                for at, (out, near) in enumerate(zip(scope[:matched], like, strict=False))
                if out >= REJECT_SIMILARITY and out > near + MARGIN
            }
        kept = [_lifted(hit, like[at]) for at, hit in enumerate(found.hits) if at not in left]
        if relevant and found.near:
            unlike = _closest([found.sims(p) for p in self._not_relevant], len(like))
            for at in range(matched, len(like)):
                hit = found.near[at - matched]
                if (
                    like[at] + found.evidence[at - matched] >= ADMIT_SIMILARITY
                    and like[at] > unlike[at] + MARGIN
                ):
                    # The first marked paper as close as the closest says why.
                    example = next(
                        p
                        for p, sims in zip(self._relevant, relevant, strict=True)
                        if sims[at] == like[at]
                    )
                    reasons = (liked_reason(example, like[at]), *hit.reasons)
                    kept.append(_lifted(hit, like[at], reasons))
        kept.sort(key=lambda h: (-h.score, h.paper.id))
        return Learned(kept, [found.hits[at] for at in sorted(left)])


def _lifted(
    hit: SearchHit, like: float, reasons: tuple[MatchReason, ...] | None = None
) -> SearchHit:
    # This runs for every match of every subscription that learned, in each digest tick: a hit
    # barely like any marked paper keeps its object (and its card), unlifted.
    if like < LIFT_MIN and reasons is None:
        return hit
    score = round(hit.score + LIKE_BOOST * like, 4)
    return SearchHit(hit.paper, score, hit.reasons if reasons is None else reasons)


# A word in this share of the papers, or in at least COMMON_MIN of them, is common: left out of
# the vectors. (No word of the 315-paper sample is: learning was tuned there with all words.)
COMMON_SHARE = 0.02
COMMON_MIN = 1000


def term_space(store: Store, previous: TermSpace | None = None) -> TermSpace:
    """A `TermSpace` over the store's papers: `previous` (and the vectors it holds) while the
    store has grown or shrunk by less than a tenth since it was made."""
    total = store.papers.count()
    if previous is not None and abs(total - previous.total) < max(1, previous.total // 10):
        return previous
    common = max(COMMON_MIN, int(total * COMMON_SHARE))
    return TermSpace(lambda terms: store.papers.doc_freq(terms, common), total, common)


def load_profiles(
    store: Store, topic_ids: Sequence[int], papers: dict[str, Paper] | None = None
) -> dict[int, Profile]:
    """The profiles of the topics that have signals (papers no longer stored are skipped).

    `papers` keeps marked papers by id between calls (a digest tick loads them once): the
    ones it lacks are read and added to it."""
    signals = store.signals.of_topics(topic_ids)
    if not signals:
        return {}
    papers = {} if papers is None else papers
    wanted = {s.paper_id for found in signals.values() for s in found}
    papers.update(store.papers.get_many(sorted(wanted - papers.keys())))
    return {
        topic_id: Profile(
            [
                Example(papers[s.paper_id], s.relevant, s.matched)
                for s in found
                if s.paper_id in papers
            ]
        )
        for topic_id, found in signals.items()
    }
