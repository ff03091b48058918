"""Look-ups and topic matching over the store: FTS5 finds candidates, `bot.topics` ranks them.

* `search` is what `/papers QUERY` shows: relevance first (title over abstract, phrase over
  scattered words, rare words over common ones), Hugging Face upvotes and recency break near-ties.
* `matches` decides what a subscription to a topic puts in a digest: precise, since a noisy
  digest gets muted, and complete.

With the semantic extra (a `bot.semantic.Semantic` passed in), look-ups fuse the word ranking
with the papers closest in meaning, and subscriptions add papers above a calibrated similarity,
each shown as "related" so a reader can tell them from word matches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from bot.errors import InvalidQuery
from bot.learning import NEAR_MISS_SCORE, Candidates, Learned, Profile, term_space
from bot.models import MatchReason, Paper, SearchHit
from bot.storage import Store
from bot.topics import (
    Concept,
    GroupScore,
    Topic,
    analyze_paper,
    fts,
    idf,
    is_excluded,
    parse,
    score_group,
)

if TYPE_CHECKING:
    from bot.semantic import Semantic

# A look-up fully scores this many candidates per result it shows (the newest matching papers):
# enough for ranking quality on the judged sets, few enough to stay fast at 1M papers.
CANDIDATES_PER_RESULT = 10
# A digest match needs at least this relevance: a title or keyword hit, or a concept the
# abstract comes back to; a single passing mention in the abstract is not enough.
MATCH_MIN_SCORE = 1.3
# Long topics: the share (idf-weighted) of their concepts a paper must have.
MATCH_MIN_COVERAGE = 0.6
MATCH_ALL_UP_TO = 2  # topics with this many concepts or fewer need every one

# Semantic extra, calibrated on tests/eval/devset.jsonl (see docs/semantic.md).
# A look-up considers this many of the papers closest in meaning ...
SEMANTIC_CANDIDATES = 50
# ... and adds this much per unit of cosine similarity to the word score, whose top is scaled to 1.
SEMANTIC_WEIGHT = 0.5
# A subscription adds papers at least this similar to the topic that its words did not match.
RELATED_MIN_SIMILARITY = 0.55


@dataclass(frozen=True)
class Scored:
    """A paper's best group score for a topic."""

    paper: Paper
    best: GroupScore
    matches: bool


class Matcher:
    """A topic bound to the store's term statistics, ready to score papers."""

    def __init__(self, topic: Topic, doc_freq: Callable[[Concept], int], total: int) -> None:
        self.topic = topic
        self.weights = [[idf(doc_freq(c), max(total, 1)) for c in g.concepts] for g in topic.groups]

    @classmethod
    def for_store(cls, topic: Topic, store: Store) -> Matcher:
        """Build a matcher with document frequencies from the store."""
        total = store.papers.count()
        return cls(
            topic, lambda concept: store.papers.count_matches(fts.concept(concept), DF_CAP), total
        )

    def score(self, paper: Paper) -> Scored | None:
        """Score a paper; None when it is excluded or has none of the topic's concepts."""
        analyzed = analyze_paper(paper)
        if is_excluded(self.topic, analyzed):
            return None
        best: GroupScore | None = None
        matches = False
        for group, weights in zip(self.topic.groups, self.weights, strict=True):
            result = score_group(group, weights, analyzed)
            if not group.concepts or result.present:
                if best is None or result.score > best.score:
                    best = result
                matches = matches or _group_matches(len(group.concepts), result)
        if best is None:
            return None
        return Scored(paper, best, matches)


def topic_matches(
    store: Store, query: str | Topic, paper: Paper, semantic: Semantic | None = None
) -> bool:
    """Whether a subscription to the topic matches the paper, as a digest would have it: by
    its words, or (with the semantic extra) by meaning."""
    topic = parse(query) if isinstance(query, str) else query
    scored = Matcher.for_store(topic, store).score(paper)
    if scored is not None and scored.matches:
        return True
    rowid = store.papers.rowid_of(paper.id)
    if semantic is None or rowid is None or not _semantic_applies(topic):
        return False
    if is_excluded(topic, analyze_paper(paper)):
        return False
    similarity = semantic.similar(store.papers, topic, [rowid]).get(rowid, 0.0)
    return similarity >= RELATED_MIN_SIMILARITY


# Counting stops here: beyond it a concept is common whatever the exact number, and the cap
# bounds the cost of counting a frequent phrase in a large store.
DF_CAP = 1000


def _group_matches(n_concepts: int, result: GroupScore) -> bool:
    if n_concepts == 0:
        return True
    if n_concepts <= MATCH_ALL_UP_TO:
        return result.present == n_concepts and result.score >= MATCH_MIN_SCORE
    return (
        result.coverage >= MATCH_MIN_COVERAGE
        and result.present >= 2
        and result.score >= MATCH_MIN_SCORE
    )


def _tiebreak(paper: Paper, today: date) -> float:
    # Small enough never to lift a weaker match over a clearly better one.
    upvotes = math.log1p(max(paper.upvotes or 0, 0)) / math.log1p(1000)
    recency = 0.0
    if paper.published:
        try:
            age = (today - date.fromisoformat(paper.published)).days
            recency = max(0.0, 1.0 - age / 365)
        except ValueError:
            pass
    return 0.05 * min(upvotes, 1.0) + 0.03 * recency


def candidate_rowids(store: Store, topic: Topic, keep: int) -> list[int]:
    """Rowids worth scoring, at most `keep` per group: the newest papers with all of a group's
    concepts, then (if too few) the newest with any of them. The scorer then ranks them (title
    hits first); a title-only tier was tried and cost 50 ms at 1M papers for no measured gain."""
    seen: dict[int, None] = {}

    def take(expr: str, room: int) -> int:
        if room <= 0:
            return 0
        rows = store.papers.fts_newest(expr, limit=room + len(seen), categories=topic.categories)
        fresh = [r for r in rows if r not in seen][:room]
        seen.update((r, None) for r in fresh)
        return len(fresh)

    for group in topic.groups:
        if not group.concepts:
            if topic.authors:
                take(fts.match_all(topic, group), keep)
            else:
                recent = store.papers.recent_rowids(limit=keep, categories=topic.categories)
                seen.update((r, None) for r in recent)
            continue
        found = take(fts.match_all(topic, group), keep)
        if len(group.concepts) > 1:
            take(fts.match_any(topic, group), keep - found)
    return list(seen)


def rank(
    matcher: Matcher, papers: Iterable[Paper], today: date, only_matches: bool
) -> list[SearchHit]:
    """Score and order papers for a topic, best first."""
    hits, _ = _ranked(matcher, papers, today, only_matches, near=None)
    return hits


def _ranked(
    matcher: Matcher,
    papers: Iterable[Paper],
    today: date,
    only_matches: bool,
    near: float | None,
) -> tuple[list[SearchHit], list[SearchHit]]:
    """(hits, near misses), each best first: with `only_matches`, papers scoring `near` or
    more that miss the match bar are the near misses (none when `near` is None)."""
    hits: list[SearchHit] = []
    missed: list[SearchHit] = []
    for paper in papers:
        scored = matcher.score(paper)
        if scored is None:
            continue
        if only_matches and not scored.matches:
            if near is None or scored.best.score < near:
                continue
            missed.append(SearchHit(paper, round(scored.best.score, 4), scored.best.reasons))
            continue
        hits.append(
            SearchHit(
                paper, round(scored.best.score + _tiebreak(paper, today), 4), scored.best.reasons
            )
        )
    hits.sort(key=lambda h: (-h.score, h.paper.id))
    missed.sort(key=lambda h: (-h.score, h.paper.id))
    return hits, missed


def search(
    store: Store,
    query: str | Topic,
    limit: int = 10,
    today: date | None = None,
    semantic: Semantic | None = None,
    profile: Profile | None = None,
) -> list[SearchHit]:
    """The ranked look-up `/papers QUERY` shows (raises `InvalidQuery` for unusable text);
    with `semantic`, meaning is fused into the ranking; with a subscription's `profile`, what
    its reader taught it reorders and filters the hits."""
    topic = parse(query) if isinstance(query, str) else query
    today = today or datetime.now(UTC).date()
    rowids = candidate_rowids(store, topic, keep=max(CANDIDATES_PER_RESULT * limit, 50))
    papers = store.papers.by_rowid(rowids)
    hits = rank(Matcher.for_store(topic, store), papers.values(), today, only_matches=False)
    if semantic is not None and _semantic_applies(topic):
        hits = _fuse(store, semantic, topic, hits, papers, today)
    if profile is not None and not profile.empty:
        hits = profile.apply(Candidates(hits, [], term_space(store))).hits
    return hits[:limit]


def _semantic_applies(topic: Topic) -> bool:
    # `title:` asks for a word in the title: meaning cannot stand in for that.
    return topic.has_text and not any(
        c.fields == ("title",) for g in topic.groups for c in g.concepts
    )


def _related_reason(close_to: str, similarity: float) -> MatchReason:
    return MatchReason(close_to, "", "meaning", related=True, similarity=round(similarity, 2))


def _related_hits(
    store: Store, topic: Topic, near: dict[int, float], known: dict[int, Paper], skip: set[str]
) -> list[tuple[Paper, float]]:
    """The papers found by meaning (rowid -> similarity) that are not among `skip` (ids) and
    pass the topic's exclusions and filters, with their similarity."""
    missing = [rowid for rowid in near if rowid not in known]
    papers = {**known, **store.papers.by_rowid(missing)} if missing else known
    found = []
    for rowid, similarity in near.items():
        paper = papers.get(rowid)
        if paper is None or paper.id in skip or is_excluded(topic, analyze_paper(paper)):
            continue
        found.append((paper, similarity))
    return found


def _fuse(
    store: Store,
    semantic: Semantic,
    topic: Topic,
    hits: list[SearchHit],
    papers: dict[int, Paper],
    today: date,
) -> list[SearchHit]:
    """Word hits and the papers closest in meaning in one ranking: the word score (the best
    scaled to 1) plus `SEMANTIC_WEIGHT` times the cosine similarity."""
    # One pass: the papers nearest in meaning and the word candidates are scored together.
    nearest, similarity = semantic.around(store.papers, topic, SEMANTIC_CANDIDATES, papers)
    near = dict(nearest)
    similarity.update(near)
    rowid_of = {paper.id: rowid for rowid, paper in papers.items()}
    top = max((h.score for h in hits), default=1.0) or 1.0
    fused = [
        replace(
            hit,
            score=round(
                hit.score / top + SEMANTIC_WEIGHT * similarity.get(rowid_of[hit.paper.id], 0.0), 4
            ),
        )
        for hit in hits
    ]
    for paper, sim in _related_hits(store, topic, near, papers, {h.paper.id for h in hits}):
        score = SEMANTIC_WEIGHT * sim + _tiebreak(paper, today) / top
        fused.append(SearchHit(paper, round(score, 4), (_related_reason(topic.text, sim),)))
    fused.sort(key=lambda h: (-h.score, h.paper.id))
    return fused


def like_paper(
    store: Store, paper: Paper, limit: int, today: date, semantic: Semantic | None = None
) -> list[SearchHit]:
    """ "More like this": with the semantic extra, the papers closest in meaning to the paper's
    title and abstract; otherwise (or before its vector is computed) a look-up of its title's
    words. The paper itself is left out."""
    rowid = store.papers.rowid_of(paper.id)
    near = (
        semantic.like(store.papers, rowid, limit)
        if semantic is not None and rowid is not None
        else []
    )
    if near:
        papers = store.papers.by_rowid([r for r, _ in near])
        label = paper.title if len(paper.title) <= 60 else paper.title[:59] + "…"
        return [
            SearchHit(papers[r], round(sim, 4), (_related_reason(label, sim),))
            for r, sim in near
            if r in papers
        ]
    words = [w for w in paper.title.replace(":", " ").split() if len(w) > 3][:8]
    try:
        hits = search(store, " ".join(words) or paper.title[:100], limit=limit + 1, today=today)
    except InvalidQuery:
        return []
    return [h for h in hits if h.paper.id != paper.id][:limit]


def match_candidates(
    store: Store,
    topic: Topic,
    papers: Sequence[Paper] | None = None,
    today: date | None = None,
    cap: int = 5000,
    window: dict[int, Paper] | None = None,
    semantic: Semantic | None = None,
    near: bool = False,
) -> tuple[list[SearchHit], list[SearchHit]]:
    """(matches, near misses) of a topic, each best first; near misses (papers with some of
    the topic's words, scoring `NEAR_MISS_SCORE` or more) only with `near`. Arguments as for
    `matches`."""
    today = today or datetime.now(UTC).date()
    if papers is None:
        papers = list(store.papers.by_rowid(candidate_rowids(store, topic, keep=cap)).values())
    hits, missed = _ranked(
        Matcher.for_store(topic, store),
        papers,
        today,
        only_matches=True,
        near=NEAR_MISS_SCORE if near else None,
    )
    if semantic is None or not _semantic_applies(topic):
        return hits, missed
    similar = semantic.similar(store.papers, topic, window, keep=cap)
    close = {r: sim for r, sim in similar.items() if sim >= RELATED_MIN_SIMILARITY}
    related = _related_hits(store, topic, close, window or {}, {h.paper.id for h in hits})
    # Below every word match: a match by meaning is the less certain kind.
    floor = min((h.score for h in hits), default=MATCH_MIN_SCORE)
    related_ids = set()
    for paper, sim in sorted(related, key=lambda item: -item[1]):
        score = floor * sim / (1.0 + RELATED_MIN_SIMILARITY)
        hits.append(SearchHit(paper, round(score, 4), (_related_reason(topic.text, sim),)))
        related_ids.add(paper.id)
    return hits, [h for h in missed if h.paper.id not in related_ids]


def matches(
    store: Store,
    query: str | Topic,
    papers: Sequence[Paper] | None = None,
    today: date | None = None,
    cap: int = 5000,
    window: dict[int, Paper] | None = None,
    semantic: Semantic | None = None,
    profile: Profile | None = None,
) -> list[SearchHit]:
    """Papers a subscription to the topic would put in a digest, best first.

    With `papers`, only those are considered (a digest's new papers, already narrowed to those
    with the topic's words); otherwise the whole store, through the index, up to `cap`
    candidates per group. With the semantic extra, papers at least `RELATED_MIN_SIMILARITY`
    close in meaning are added from `window` (rowid -> paper; a digest's new papers), or from
    the whole store without one. With the subscription's `profile`, what its reader taught it
    (`bot.learning`) is applied.
    """
    return learned_matches(store, query, profile, papers, today, cap, window, semantic).hits


def learned_matches(
    store: Store,
    query: str | Topic,
    profile: Profile | None,
    papers: Sequence[Paper] | None = None,
    today: date | None = None,
    cap: int = 5000,
    window: dict[int, Paper] | None = None,
    semantic: Semantic | None = None,
) -> Learned:
    """`matches`, with what learning left out beside them."""
    topic = parse(query) if isinstance(query, str) else query
    if profile is None or profile.empty:
        return Learned(match_candidates(store, topic, papers, today, cap, window, semantic)[0], [])
    hits, near = match_candidates(
        store, topic, papers, today, cap, window, semantic, near=profile.admits_new
    )
    # The scorer already dropped the near misses the topic excludes.
    return profile.apply(Candidates(hits, near, term_space(store)))
