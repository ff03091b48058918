"""Building a digest: its window of new papers, each topic's matches in it, the assembled
sections under the subscriber's cap.

Builds happen inside claim batches on the store thread, which must stay short: `Budget` says
how long one batch may take and in what units its work may stop, and `MatchCache` shares each
window's papers and each topic's hits between the subscribers due at the same moment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from bot.cards import card_from_hit
from bot.digests.schedule import local_date, subscribed_at
from bot.errors import InvalidQuery
from bot.learning import Candidates, Learned, Profile, TermSpace, load_profiles, term_space
from bot.models import (
    Digest,
    DigestSection,
    MatchReason,
    Paper,
    PaperCard,
    SearchHit,
    Subscriber,
    TopicSubscription,
)
from bot.search import match_candidates
from bot.storage import Store, topic_key

if TYPE_CHECKING:
    from bot.semantic import Semantic
from bot.topics import Topic, analyze_paper, fts, parse

log = logging.getLogger(__name__)

# A new subscriber's first digest reaches back this far before they subscribed.
FIRST_DIGEST_LOOKBACK = timedelta(hours=24)


@dataclass(frozen=True)
class Budget:
    """How much store time one claim batch may take, and the units its work may stop between.

    A look-up waits behind at most one batch. Matching a new topic costs ~20 ms per 1,000
    papers; loading a paper and analysing one take about 0.2 ms each.
    """

    seconds: float = 0.04  # one batch's store time
    batch: int = 100  # due subscribers claimed and built per batch, at most
    batch_min: int = 8
    load_chunk: int = 200  # papers loaded per query
    analyze_chunk: int = 16  # papers analysed between two looks at the clock
    # Scoring one analysed candidate (0.03 ms at the median): a topic's scoring, which cannot
    # stop half-way (up to 40 ms for 1,000 candidates), is left to the next batch when it would
    # not fit in what is left of this one.
    score_seconds: float = 0.00003

    def next_batch_size(self, limit: int, examined: int) -> int:
        """The next claim batch's size: a little over what the last one got through in its
        budget. Each batch loads its subscribers, topics and mutes up front; when the budget
        stopped batches of 100 at about 26 (new topics being matched), three quarters of that
        was wasted."""
        grown = 2 * limit if examined >= limit else examined + examined // 4 + 1
        return max(self.batch_min, min(self.batch, grown))


def topic_candidates(store: Store, topic: Topic, papers: dict[int, Paper]) -> list[Paper]:
    """The window's papers worth scoring for a topic: those the full-text index says have at
    least one of its concepts (all of them when a group has no concept, e.g. `author:` only)."""
    if not papers or any(not group.concepts for group in topic.groups):
        return list(papers.values())
    low, high = min(papers), max(papers)
    found: set[int] = set()
    for group in topic.groups:
        found |= store.papers.fts_between(fts.match_any(topic, group), low, high)
    return [paper for rowid, paper in papers.items() if rowid in found]


def assemble(
    subscriber_id: int,
    day: date,
    topics: Sequence[str],
    hits_by_topic: Sequence[Sequence[SearchHit]],
    max_papers: int,
    card: Callable[[SearchHit], PaperCard] = card_from_hit,
) -> Digest:
    """Group ranked hits (each list best first) into sections: each paper once, capped at
    `max_papers` in all.

    A paper goes to the topic where it scores highest (the earlier topic on a tie). The cap is
    shared round-robin over the topics, best paper first, so one busy topic cannot crowd out
    the others; `more` counts what was cut from each topic.
    """
    best: dict[str, tuple[float, int]] = {}
    for index, hits in enumerate(hits_by_topic):
        for hit in hits:
            current = best.get(hit.paper.id)
            if current is None or hit.score > current[0]:
                best[hit.paper.id] = (hit.score, index)
    # Filtering keeps each list's order, so the kept hits stay best first.
    kept: list[list[SearchHit]] = [
        [h for h in hits if best[h.paper.id][1] == index]
        for index, hits in enumerate(hits_by_topic)
    ]
    taken = [0] * len(kept)
    budget = max(max_papers, 0)
    while budget > 0:
        progressed = False
        for index, hits in enumerate(kept):
            if budget > 0 and taken[index] < len(hits):
                taken[index] += 1
                budget -= 1
                progressed = True
        if not progressed:
            break
    sections = tuple(
        DigestSection(
            topic=topic,
            cards=tuple(card(h) for h in hits[:count]),
            more=len(hits) - count,
        )
        for topic, hits, count in zip(topics, kept, taken, strict=True)
        if hits
    )
    return Digest(subscriber_id=subscriber_id, local_date=day.isoformat(), sections=sections)


_WindowKey = tuple[datetime, datetime]
_HitsKey = tuple[str, datetime, datetime, date]
_Matched = tuple[list[SearchHit], list[SearchHit]]  # (matches, near misses)


class OutOfTime(Exception):
    """A claim batch's budget ran out while a digest was being built; nothing was claimed."""


class MatchCache:
    """Within one digest tick: each window's new papers and each topic's hits on them.

    Subscribers due at the same minute share a window, so the matching work grows with the
    number of distinct (topic, window) pairs, not with the number of subscribers.

    With a `deadline` (a `time.perf_counter()` value), loading a window and analysing a
    topic's candidates stop with `OutOfTime` once it has passed, keeping what was done: the
    next claim batch takes it up where it stopped. The first batch of a tick would otherwise
    load and analyse the whole window in one store call (230 ms of CPU for 1,000 papers).
    Scoring a topic's candidates is not started when it would end past the deadline, unless
    nothing else was done since the deadline was set.
    """

    def __init__(
        self,
        budget: Budget | None = None,
        semantic: Semantic | None = None,
        space: TermSpace | None = None,
    ) -> None:
        self.budget = budget or Budget()
        self.semantic = semantic
        self._previous_space = space  # the last tick's, reused while the store is alike
        self._deadline: float | None = None
        self._worked = False  # any unit of work done since the deadline was set
        self._papers: dict[_WindowKey, dict[int, Paper]] = {}
        self._loading: dict[_WindowKey, tuple[list[int], dict[int, Paper]]] = {}
        self._hits: dict[_HitsKey, _Matched | InvalidQuery] = {}
        # A topic's candidates, and how many of them are analysed, while that is under way.
        self._analysing: dict[_HitsKey, tuple[list[Paper], int]] = {}
        self._cards: dict[tuple[str, tuple[MatchReason, ...]], PaperCard] = {}
        self._space: TermSpace | None = None
        self._candidates: dict[_HitsKey, Candidates] = {}
        self.marked: dict[str, Paper] = {}  # papers readers marked, loaded once per tick

    @property
    def deadline(self) -> float | None:
        """When the current claim batch must stop (a `time.perf_counter()` value), or None."""
        return self._deadline

    @deadline.setter
    def deadline(self, value: float | None) -> None:
        self._deadline = value
        self._worked = False

    def _check(self) -> None:
        # Called after a unit of work, never before: every call makes progress.
        self._worked = True
        if self._deadline is not None and time.perf_counter() > self._deadline:
            raise OutOfTime

    def progressed(self) -> None:
        """The batch kept some work of its own (a subscriber handled): what does not fit in
        its budget may now wait for the next batch."""
        self._worked = True

    def _check_room(self, seconds: float) -> None:
        # Before work that cannot stop half-way: leave it to a fresh batch if it would not fit.
        late = self._deadline is not None and time.perf_counter() + seconds > self._deadline
        if late and self._worked:
            raise OutOfTime

    def space(self, store: Store) -> TermSpace:
        """The term space the tick's learned topics share (paper vectors computed once, and
        kept for the next tick: marked papers are old papers)."""
        if self._space is None:
            self._space = term_space(store, self._previous_space)
        return self._space

    @property
    def space_used(self) -> TermSpace | None:
        """The term space this tick made or reused, if it needed one."""
        return self._space or self._previous_space

    def card(self, hit: SearchHit) -> PaperCard:
        """A hit's card, built once however many digests show it."""
        # A card shows the paper and why it matched, not the score (which learning lifts).
        key = (hit.paper.id, hit.reasons)
        found = self._cards.get(key)
        if found is None:
            found = self._cards[key] = card_from_hit(hit)
        return found

    def papers(self, store: Store, start: datetime, end: datetime) -> dict[int, Paper]:
        """Papers first seen in (start, end], by rowid (the window is read at first use)."""
        key = (start, end)
        if key not in self._papers:
            if key not in self._loading:
                self._loading[key] = (store.papers.first_seen_between(start, end), {})
            rowids, found = self._loading[key]
            chunk = self.budget.load_chunk
            for offset in range(len(found), len(rowids), chunk):
                found.update(store.papers.by_rowid(rowids[offset : offset + chunk]))
                self._check()
            del self._loading[key]
            self._papers[key] = {r: found[r] for r in rowids if r in found}
        return self._papers[key]

    def learned(
        self,
        store: Store,
        topic: str,
        start: datetime,
        end: datetime,
        today: date,
        profile: Profile | None,
    ) -> Learned:
        """The window's papers a subscription to `topic` matches, best first, as its reader
        taught it `profile` (`bot.learning`)."""
        hits, near = self._matched(store, topic, start, end, today)
        if profile is None or profile.empty:
            return Learned(hits, [])
        key = (topic_key(topic), start, end, today)
        found = self._candidates.get(key)
        if found is None:
            found = self._candidates[key] = Candidates(hits, near, self.space(store))
        # A marked paper's closeness to the candidates is shared by every subscription that
        # marked it; computing it is the unit this batch may stop after.
        for paper in found.pending(profile.papers):
            found.sims(paper)
            self._check()
        return profile.apply(found)

    def _matched(
        self, store: Store, topic: str, start: datetime, end: datetime, today: date
    ) -> _Matched:
        key = (topic_key(topic), start, end, today)
        if key not in self._hits:
            papers = self.papers(store, start, end)
            try:
                parsed = parse(topic)
                if key not in self._analysing:
                    self._analysing[key] = (topic_candidates(store, parsed, papers), 0)
                candidates, done = self._analysing[key]
                # Analysis is most of a new topic's cost; `analyze_paper` keeps each paper's
                # for the scoring below (and for every other topic).
                chunk = self.budget.analyze_chunk
                for offset in range(done, len(candidates), chunk):
                    for paper in candidates[offset : offset + chunk]:
                        analyze_paper(paper)
                    self._analysing[key] = (candidates, offset + chunk)
                    self._check()
                self._check_room(len(candidates) * self.budget.score_seconds)
                del self._analysing[key]
                # Near misses too: a subscription that learned may admit them.
                self._hits[key] = match_candidates(
                    store,
                    parsed,
                    papers=candidates,
                    today=today,
                    window=papers,
                    semantic=self.semantic,
                    near=True,
                )
                self._worked = True
            except InvalidQuery as error:
                self._hits[key] = error
        found = self._hits[key]
        if isinstance(found, InvalidQuery):
            raise found
        return found


def build_digest(
    store: Store,
    subscriber: Subscriber,
    window_start: datetime,
    window_end: datetime,
    local_date: date,
    today: date | None = None,
    cache: MatchCache | None = None,
    topics: Sequence[TopicSubscription] | None = None,
    muted: set[str] | None = None,
    profiles: dict[int, Profile] | None = None,
    explain: bool = False,
) -> Digest:
    """The digest of papers first seen in the window that match any topic, minus muted ones,
    each topic as its reader taught it.

    `topics`, `muted` and `profiles` (by topic id) may be passed when already loaded (a batch
    loads them together). With `explain`, sections name what learning left out (previews).
    """
    cache = cache or MatchCache()
    topics = store.subscribers.topics(subscriber.id) if topics is None else topics
    muted = store.subscribers.muted(subscriber.id) if muted is None else muted
    if profiles is None:
        profiles = load_profiles(store, [t.id for t in topics], cache.marked)
    hits_by_topic: list[list[SearchHit]] = []
    left_out: list[tuple[str, ...]] = []
    for topic in topics:
        try:
            found = cache.learned(
                store,
                topic.text,
                window_start,
                window_end,
                today or local_date,
                profiles.get(topic.id),
            )
        except InvalidQuery as error:
            # A topic saved under older rules must not cost the subscriber the whole digest.
            log.warning("skipping topic %r of %s: %s", topic.text, subscriber.label, error)
            found = Learned([], [])
        hits = found.hits
        hits_by_topic.append([h for h in hits if h.paper.id not in muted] if muted else hits)
        left_out.append(
            tuple(h.paper.title for h in found.left_out if h.paper.id not in muted)
            if explain
            else ()
        )
    digest = assemble(
        subscriber.id,
        local_date,
        [t.text for t in topics],
        hits_by_topic,
        subscriber.settings.max_papers,
        card=cache.card,
    )
    # In the topics' order: `assemble` left out topics with nothing to show, but a preview
    # also shows a topic whose every match learning left out.
    shown = {section.topic: section for section in digest.sections}
    sections = tuple(
        replace(shown.get(t.text) or DigestSection(t.text, ()), topic_id=t.id, left_out=out)
        for t, out in zip(topics, left_out, strict=True)
        if t.text in shown or out
    )
    return replace(digest, sections=sections)


def window_start(
    store: Store, subscriber: Subscriber, before: date | None, since: datetime
) -> datetime:
    """Where the next digest's window starts: the previous non-failed digest's window end.

    `before` limits the search to digests of earlier local dates; with no previous digest the
    window starts FIRST_DIGEST_LOOKBACK before `since` (when the subscriber subscribed).
    """
    end = store.ledger.last_window_end(subscriber.id, before)
    return since - FIRST_DIGEST_LOOKBACK if end is None else end


def preview(
    store: Store, subscriber: Subscriber, now: datetime, semantic: Semantic | None = None
) -> Digest:
    """The subscriber's next digest as it stands now (`/papers digest`); records nothing."""
    topics = store.subscribers.topics(subscriber.id)
    start = window_start(store, subscriber, None, subscribed_at(subscriber, topics))
    due = subscriber.next_due_at
    day = local_date(subscriber.settings, due if due is not None and due > now else now)
    return build_digest(
        store, subscriber, start, now, day, cache=MatchCache(semantic=semantic), explain=True
    )
