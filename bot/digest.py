"""Daily digests: who is due, what is new for them, and claim -> send -> record in a ledger.

The database decides everything: `subscribers.next_due_at` says who is due and the
`deliveries` ledger (one row per subscriber and local digest date) says what happened to each
digest. A row is inserted ("claimed") before anything is sent and finished after, so a restart
neither repeats nor loses a digest. docs/digests.md states the rules for users and operators.

Database work runs on the `StoreRunner` thread; sending runs on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from bot.cards import card_from_hit
from bot.errors import DestinationGone, InvalidQuery, LookupUnavailable, PostRejected
from bot.metrics import DIGESTS_FAILED, DIGESTS_SENT
from bot.models import (
    Digest,
    DigestSection,
    Paper,
    PaperCard,
    SearchHit,
    Subscriber,
    TopicSubscription,
)
from bot.runtime import StoreRunner
from bot.search import analyze_paper, matches
from bot.store import Store, parse_utc, utc_iso
from bot.subscriptions import (
    Subscriptions,
    dumps_ids,
    local_date,
    next_due,
    next_send,
    subscribed_at,
    topic_key,
)
from bot.topics import Topic, parse

log = logging.getLogger(__name__)

# A new subscriber's first digest reaches back this far before they subscribed.
FIRST_DIGEST_LOOKBACK = timedelta(hours=24)
# Failed sends per digest before it is given up (its papers then roll into the next digest).
MAX_ATTEMPTS = 6
# Sends started without any outcome (the process died during them) before a digest is given
# up: enough that restarts and deploys never cost a digest (50 random SIGKILLs in the tests
# needed 6), few enough that a digest which itself crashes the bot stops within minutes.
MAX_SENDS = 30
# A hung platform call must not hold up every other digest.
DELIVER_TIMEOUT_SECONDS = 120.0
CONCURRENCY = 8


def utcnow() -> datetime:
    """The current aware UTC time."""
    return datetime.now(UTC)


def ledger_key(subscriber_id: int, day: date) -> str:
    """The idempotency key of one subscriber's digest for one local date."""
    return f"{subscriber_id}:{day.isoformat()}"


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed send: 1, 2, 4, 8, 16 minutes, at most 30."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 30))


class Destination(Protocol):
    """Where one platform's digests go; each adapter implements it.

    A digest is posted as a sequence of messages. `render` turns it into their bodies (text the
    ledger keeps, so a digest cut by a crash resumes with the very same messages); each body
    carries the ledger key `"{subscriber_id}:{local_date}"` and its part number where
    `find_posted` can see them (Slack message metadata, a Discord embed footer).

    `post` sends one body and returns the platform's message id. It raises `DestinationGone`
    when the destination will never accept messages, and `PostRejected` when the platform
    answered with an error (so the message is certainly not posted); any other exception
    leaves it uncertain whether the message went out.

    `find_posted` settles an uncertain message (its post began between `since` and `until`):
    the message id when the platform holds it, None when it does not. It raises
    `LookupUnavailable` when the platform cannot tell (a scope missing, no history), and the
    runner then resends: at least once instead of exactly once.
    """

    platform: str

    def render(self, digest: Digest, key: str) -> list[str]:
        """The digest's messages, in order, each carrying `key` and its part number."""
        ...

    async def post(self, subscriber: Subscriber, body: str) -> str:
        """Post one rendered message; return the platform message id."""
        ...

    async def find_posted(
        self, subscriber: Subscriber, key: str, part: int, since: datetime, until: datetime
    ) -> str | None:
        """The id of part `part` of digest `key` if the platform holds it, else None."""
        ...


# -- building a digest ---------------------------------------------------------------------------


def window_rowids(store: Store, window_start: datetime, window_end: datetime) -> list[int]:
    """Rowids of the papers this store first saw in (window_start, window_end], oldest first."""
    return [
        int(r[0])
        for r in store.conn.execute(
            "SELECT rowid FROM papers WHERE first_seen_at > ? AND first_seen_at <= ? "
            "ORDER BY first_seen_at",
            [utc_iso(window_start), utc_iso(window_end)],
        )
    ]


def new_papers(store: Store, window_start: datetime, window_end: datetime) -> dict[int, Paper]:
    """Papers this store first saw in (window_start, window_end], by rowid, oldest first."""
    rowids = window_rowids(store, window_start, window_end)
    found = store.papers_by_rowid(rowids) if rowids else {}
    return {r: found[r] for r in rowids if r in found}


def topic_candidates(store: Store, topic: Topic, papers: dict[int, Paper]) -> list[Paper]:
    """The window's papers worth scoring for a topic: those the full-text index says have at
    least one of its concepts (all of them when a group has no concept, e.g. `author:` only)."""
    if not papers or any(not group.concepts for group in topic.groups):
        return list(papers.values())
    low, high = min(papers), max(papers)
    found: set[int] = set()
    for group in topic.groups:
        found |= store.fts_between(topic.fts_any(group), low, high)
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


# Due subscribers claimed and built per store call, and the time one call may take: a
# look-up waits behind at most one such call. Matching a new topic costs ~20 ms per 1,000 papers.
CLAIM_BATCH = 100
CLAIM_BUDGET_SECONDS = 0.04
CLAIM_BATCH_MIN = 8


def next_batch_size(limit: int, examined: int) -> int:
    """The next claim batch's size: a little over what the last one got through in its budget.
    Each batch loads its subscribers, topics and mutes up front; when the budget stopped
    batches of 100 at about 26 (new topics being matched), three quarters of that was wasted."""
    grown = 2 * limit if examined >= limit else examined + examined // 4 + 1
    return max(CLAIM_BATCH_MIN, min(CLAIM_BATCH, grown))


# Units of the work a claim batch may stop between: papers loaded per query, and papers
# analysed between two looks at the clock (0.2 ms each).
LOAD_CHUNK = 200
ANALYZE_CHUNK = 16
# Scoring one analysed candidate (0.03 ms at the median): a topic's scoring, which cannot stop
# half-way (up to 40 ms for 1,000 candidates), is left to the next batch when it would not fit
# in what is left of this one.
SCORE_SECONDS = 0.00003

_WindowKey = tuple[datetime, datetime]
_HitsKey = tuple[str, datetime, datetime, date]


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

    def __init__(self) -> None:
        self._deadline: float | None = None
        self._worked = False  # any unit of work done since the deadline was set
        self._papers: dict[_WindowKey, dict[int, Paper]] = {}
        self._loading: dict[_WindowKey, tuple[list[int], dict[int, Paper]]] = {}
        self._hits: dict[_HitsKey, list[SearchHit] | InvalidQuery] = {}
        # A topic's candidates, and how many of them are analysed, while that is under way.
        self._analysing: dict[_HitsKey, tuple[list[Paper], int]] = {}
        self._cards: dict[int, PaperCard] = {}

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

    def card(self, hit: SearchHit) -> PaperCard:
        """The card of a hit this cache holds, built once however many digests show it."""
        # By identity: the hits live in this cache for the whole tick, so ids stay unique.
        found = self._cards.get(id(hit))
        if found is None:
            found = self._cards[id(hit)] = card_from_hit(hit)
        return found

    def papers(self, store: Store, start: datetime, end: datetime) -> dict[int, Paper]:
        """Papers first seen in (start, end], by rowid (the window is read at first use)."""
        key = (start, end)
        if key not in self._papers:
            if key not in self._loading:
                self._loading[key] = (window_rowids(store, start, end), {})
            rowids, found = self._loading[key]
            for offset in range(len(found), len(rowids), LOAD_CHUNK):
                found.update(store.papers_by_rowid(rowids[offset : offset + LOAD_CHUNK]))
                self._check()
            del self._loading[key]
            self._papers[key] = {r: found[r] for r in rowids if r in found}
        return self._papers[key]

    def hits(
        self, store: Store, topic: str, start: datetime, end: datetime, today: date
    ) -> list[SearchHit]:
        """The window's papers a subscription to `topic` matches, best first."""
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
                for offset in range(done, len(candidates), ANALYZE_CHUNK):
                    for paper in candidates[offset : offset + ANALYZE_CHUNK]:
                        analyze_paper(paper)
                    self._analysing[key] = (candidates, offset + ANALYZE_CHUNK)
                    self._check()
                self._check_room(len(candidates) * SCORE_SECONDS)
                del self._analysing[key]
                self._hits[key] = matches(
                    store, parsed, papers=candidates, today=today, window=papers
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
) -> Digest:
    """The digest of papers first seen in the window that match any topic, minus muted ones.

    `topics` and `muted` may be passed when already loaded (a batch loads them together).
    """
    cache = cache or MatchCache()
    subs = Subscriptions(store)
    topics = subs.topics(subscriber.id) if topics is None else topics
    muted = subs.muted(subscriber.id) if muted is None else muted
    hits_by_topic: list[list[SearchHit]] = []
    for topic in topics:
        try:
            hits = cache.hits(store, topic.text, window_start, window_end, today or local_date)
        except InvalidQuery as error:
            # A topic saved under older rules must not cost the subscriber the whole digest.
            log.warning("skipping topic %r of %s: %s", topic.text, subscriber.label, error)
            hits = []
        hits_by_topic.append([h for h in hits if h.paper.id not in muted] if muted else hits)
    return assemble(
        subscriber.id,
        local_date,
        [t.text for t in topics],
        hits_by_topic,
        subscriber.settings.max_papers,
        card=cache.card,
    )


def window_start(
    store: Store, subscriber: Subscriber, before: date | None, since: datetime
) -> datetime:
    """Where the next digest's window starts: the previous non-failed digest's window end.

    `before` limits the search to digests of earlier local dates; with no previous digest the
    window starts FIRST_DIGEST_LOOKBACK before `since` (when the subscriber subscribed).
    """
    sql = "SELECT window_end FROM deliveries WHERE subscriber_id = ? AND status != 'failed'"
    params: list[object] = [subscriber.id]
    if before is not None:
        sql += " AND local_date < ?"
        params.append(before.isoformat())
    row = store.conn.execute(sql + " ORDER BY local_date DESC LIMIT 1", params).fetchone()
    return parse_utc(str(row[0])) if row else since - FIRST_DIGEST_LOOKBACK


def preview(store: Store, subscriber: Subscriber, now: datetime) -> Digest:
    """The subscriber's next digest as it stands now (`/papers digest`); records nothing."""
    topics = Subscriptions(store).topics(subscriber.id)
    start = window_start(store, subscriber, None, subscribed_at(subscriber, topics))
    due = subscriber.next_due_at
    day = local_date(subscriber.settings, due if due is not None and due > now else now)
    return build_digest(store, subscriber, start, now, day)


# -- the ledger ------------------------------------------------------------------------------------


@dataclass
class _Progress:
    """How far a digest's messages got, as the ledger row records it.

    Messages go out in order: `sent` of them are posted (their ids in `ids`); with `sending_at`
    set, message number `sent` was being posted since then and its outcome is unknown.
    `bodies` holds every message of a digest of several (kept until it is complete, so one cut
    by a crash resumes with the very same messages); a one-message digest keeps none, since a
    message that never arrived is simply rebuilt from the digest's window.
    """

    parts: int | None = None  # None until the digest is rendered
    sent: int = 0
    ids: list[str] = field(default_factory=list)
    sending_at: datetime | None = None
    bodies: list[str] = field(default_factory=list)


@dataclass
class Claim:
    """A ledger row still `claimed`: a digest whose send has not finished."""

    subscriber: Subscriber
    local_date: date
    window_start: datetime
    window_end: datetime
    attempts: int
    paper_ids: tuple[str, ...]
    progress: _Progress = field(default_factory=_Progress)


@dataclass
class _Job:
    subscriber: Subscriber
    day: date
    paper_ids: tuple[str, ...]
    digest: Digest | None = None  # to render, when it has no messages yet
    progress: _Progress = field(default_factory=_Progress)


@dataclass
class TickReport:
    """What one tick did.

    `sent`: digests posted. `empty`: digests with nothing new (recorded, not posted).
    `failed`: digests given up (destination gone, or too many transient failures).
    `retrying`: sends that failed transiently and will be retried. `skipped_stale`: overdue
    digests not sent because their local day had passed (their papers roll into the next one);
    a subscriber down for several days counts once, as the skip goes straight to today.
    `recovered`: ledger rows left `claimed` by a crash or an earlier failure that this tick
    took up again (whatever their outcome, which is also counted above). `looked_up`:
    messages of a crashed send whose outcome was asked of the platform (in the background).
    """

    sent: int = 0
    empty: int = 0
    failed: int = 0
    retrying: int = 0
    skipped_stale: int = 0
    recovered: int = 0
    looked_up: int = 0

    def add(self, other: TickReport) -> None:
        """Count `other`'s outcomes in this report too."""
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class _Plan:
    jobs: list[_Job] = field(default_factory=list)
    empty: int = 0
    skipped_stale: int = 0
    examined: int = 0
    more: bool = False


def _finish(
    store: Store,
    subscriber_id: int,
    day: date,
    status: str,
    now: datetime,
    *,
    message_id: str | None = None,
    paper_ids: Sequence[str] | None = None,
    error: str | None = None,
) -> None:
    with store.conn:
        store.conn.execute(
            "UPDATE deliveries SET status = ?, finished_at = ?, message_id = ?, "
            "paper_ids = coalesce(?, paper_ids), error = ?, retry_at = NULL "
            "WHERE subscriber_id = ? AND local_date = ?",
            [
                status,
                utc_iso(now),
                message_id,
                dumps_ids(list(paper_ids)) if paper_ids is not None else None,
                error,
                subscriber_id,
                day.isoformat(),
            ],
        )
        # What was never sent will not be: its bodies need not be kept.
        _drop_bodies(store.conn, [subscriber_id, day.isoformat()])


def _drop_bodies(conn: sqlite3.Connection, key: Sequence[object]) -> None:
    """Forget the stored messages of one digest (subscriber id, local date)."""
    conn.execute("DELETE FROM digest_messages WHERE subscriber_id = ? AND local_date = ?", key)


@dataclass(frozen=True)
class _Start:
    """Message `part`'s post is about to begin; the first of a digest brings its message count
    (and, for a digest of several, their bodies)."""

    subscriber_id: int
    day: date
    part: int
    at: datetime
    parts: int | None = None
    bodies: tuple[str, ...] = ()

    def apply(self, conn: sqlite3.Connection) -> None:
        key = [self.subscriber_id, self.day.isoformat()]
        conn.execute(
            "UPDATE deliveries SET sending_at = ?, parts = coalesce(?, parts) "
            "WHERE subscriber_id = ? AND local_date = ?",
            [utc_iso(self.at), self.parts, *key],
        )
        if self.bodies:
            _drop_bodies(conn, key)
            conn.executemany(
                "INSERT INTO digest_messages (subscriber_id, local_date, part, body) "
                "VALUES (?, ?, ?, ?)",
                [(*key, n, body) for n, body in enumerate(self.bodies)],
            )


@dataclass(frozen=True)
class _Posted:
    """The platform accepted message `part` (`message_id`); with `paper_ids`, it was the last."""

    subscriber_id: int
    day: date
    part: int
    message_id: str
    at: datetime
    paper_ids: tuple[str, ...] | None = None

    def apply(self, conn: sqlite3.Connection) -> None:
        key = [self.subscriber_id, self.day.isoformat()]
        last = self.paper_ids is not None
        paper_ids = None if self.paper_ids is None else dumps_ids(list(self.paper_ids))
        # One statement whether or not it was the last: it is written once per message.
        conn.execute(
            "UPDATE deliveries SET sent_parts = ? + 1, sending_at = NULL, "
            "message_ids = json_insert(coalesce(message_ids, '[]'), '$[#]', ?), "
            "status = iif(?, 'sent', status), finished_at = iif(?, ?, finished_at), "
            "message_id = iif(?, coalesce(json_extract(message_ids, '$[0]'), ?), message_id), "
            "paper_ids = coalesce(?, paper_ids), error = iif(?, NULL, error), "
            "retry_at = iif(?, NULL, retry_at) WHERE subscriber_id = ? AND local_date = ?",
            [
                self.part, self.message_id, last, last, utc_iso(self.at), last,
                self.message_id, paper_ids, last, last,
                *key,
            ],
        )  # fmt: skip
        if last and self.part:
            _drop_bodies(conn, key)


@dataclass(frozen=True)
class _NotPosted:
    """The message in flight certainly did not go out (refused, or not found by a look-up)."""

    subscriber_id: int
    day: date

    def apply(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE deliveries SET sending_at = NULL WHERE subscriber_id = ? AND local_date = ?",
            [self.subscriber_id, self.day.isoformat()],
        )


@dataclass(frozen=True)
class _Retaken:
    """An unfinished digest is taken up again: one more send attempt (counted before it, so a
    digest whose send kills the process every time is given up after MAX_SENDS)."""

    subscriber_id: int
    day: date

    def apply(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE deliveries SET attempts = attempts + 1 "
            "WHERE subscriber_id = ? AND local_date = ?",
            [self.subscriber_id, self.day.isoformat()],
        )


_Op = _Start | _Posted | _NotPosted | _Retaken


def _apply_ops(store: Store, ops: Sequence[_Op]) -> None:
    with store.conn:
        for op in ops:
            op.apply(store.conn)


def _seen(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()  # read, so an error reported elsewhere is not logged as lost


class _LedgerWriter:
    """Records messages' outcomes durably, in groups: the changes that queue up while one store
    call runs share the next one (a commit per message cost a store call each)."""

    def __init__(self, runner: StoreRunner) -> None:
        self.runner = runner
        self._queue: list[tuple[_Op, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    def queue(self, op: _Op) -> asyncio.Future[None]:
        """Queue `op`; the future is done once it is committed. Writes commit in queue order,
        so whatever is queued later commits with it or after it."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((op, done))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="paperbot-ledger")
        return done

    async def write(self, op: _Op) -> None:
        """Return once `op` is committed."""
        await asyncio.shield(self.queue(op))

    async def _flush(self) -> None:
        while self._queue:
            # One turn of the event loop first: the sends that are about to ask join this call.
            await asyncio.sleep(0)
            batch, self._queue = self._queue, []
            try:
                # Ahead of bulk work, as a command is: a flush takes about a millisecond and
                # every send in flight waits for it; behind a busy ingest and 100 look-ups a
                # second, digests crawled (50 in 30 s, against 320 before messages were
                # recorded). One flush at a time, so a look-up waits for one at most.
                await self.runner.call(_apply_ops, [op for op, _ in batch])
            except Exception as error:
                for _, done in batch:
                    done.set_exception(error)
            else:
                for _, done in batch:
                    done.set_result(None)

    async def drain(self) -> None:
        """Wait until everything queued is written."""
        if self._flushing is not None:
            await self._flushing


def _claim_due(
    store: Store,
    platforms: Sequence[str],
    now: datetime,
    cache: MatchCache,
    limit: int,
    budget: float | None = None,
) -> _Plan:
    """Claim and build up to `limit` due digests (the catch-up and first-digest rules live here).

    It stops early once `budget` seconds (CLAIM_BUDGET_SECONDS by default) have gone, even in
    the middle of building a digest, so the store thread is never held long.
    Every subscriber it looks at leaves the due set (claimed, or `next_due_at` moved on), so
    calling it again takes up the next ones; `plan.more` says whether there may be more.
    """
    subs = Subscriptions(store)
    plan = _Plan()
    deadline = time.perf_counter() + (CLAIM_BUDGET_SECONDS if budget is None else budget)
    candidates = subs.due(now, platforms, limit)
    plan.more = len(candidates) == limit
    ids = [s.id for s in candidates]
    topics_of, muted_of = subs.topics_of(ids), subs.muted_of(ids)
    # One transaction for the batch's claims: a commit per subscriber was a third of the cost.
    # A crash before the commit loses only claims, never a send (sends happen after).
    cache.deadline = deadline
    try:
        with store.conn:
            _claim_batch(store, subs, candidates, topics_of, muted_of, now, cache, deadline, plan)
    finally:
        cache.deadline = None
    return plan


def _claim_batch(
    store: Store,
    subs: Subscriptions,
    candidates: list[Subscriber],
    topics_of: dict[int, list[TopicSubscription]],
    muted_of: dict[int, set[str]],
    now: datetime,
    cache: MatchCache,
    deadline: float,
    plan: _Plan,
) -> None:
    for subscriber in candidates:
        if plan.examined:
            cache.progressed()
            if time.perf_counter() > deadline:
                plan.more = True
                break
        plan.examined += 1
        settings = subscriber.settings
        topics = topics_of.get(subscriber.id, [])
        since = subscribed_at(subscriber, topics)
        assert subscriber.next_due_at is not None  # the due query only returns rows with one
        due, stale = next_send(settings, subscriber.next_due_at, since, now)
        for day in stale:
            plan.skipped_stale += 1
            log.info("digest %s skipped: its local day is over", ledger_key(subscriber.id, day))
        day = local_date(settings, due)
        if due > now:
            subs.set_next_due(subscriber.id, due)
            continue
        start = window_start(store, subscriber, day, since)
        # Built before claiming so the claim, its planned content (kept so a recovered claim
        # knows what it was about to send) and the next due time are one transaction.
        muted = muted_of.get(subscriber.id, set())
        try:
            digest = build_digest(
                store, subscriber, start, now, day, cache=cache, topics=topics, muted=muted
            )
        except OutOfTime:
            # Nothing of this subscriber's is written yet: the next batch starts with them.
            plan.more = True
            break
        empty = digest.is_empty
        try:
            store.conn.execute(
                "INSERT INTO deliveries (subscriber_id, local_date, status, window_start, "
                "window_end, claimed_at, finished_at, paper_ids, attempts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1)",
                [
                    subscriber.id,
                    day.isoformat(),
                    "empty" if empty else "claimed",
                    utc_iso(start),
                    utc_iso(now),
                    utc_iso(now),
                    utc_iso(now) if empty else None,
                    dumps_ids(digest.paper_ids),
                ],
            )
            # Advanced in the same transaction: from here on the ledger row owns this day.
            store.conn.execute(
                "UPDATE subscribers SET next_due_at = ? WHERE id = ?",
                [utc_iso(next_due(settings, day, now)), subscriber.id],
            )
        except sqlite3.IntegrityError:
            # Already claimed: by another run, or before a stop that left next_due_at behind.
            subs.set_next_due(subscriber.id, next_due(settings, day, now))
            continue
        if empty:
            plan.empty += 1
        else:
            plan.jobs.append(_Job(subscriber, day, digest.paper_ids, digest=digest))


def _open_claims(store: Store, platforms: Sequence[str], now: datetime) -> list[Claim]:
    """Claimed rows whose retry time has come, on platforms this process can deliver to, each
    with how far its messages got."""
    if not platforms:
        return []
    subs = Subscriptions(store)
    marks = ", ".join("?" for _ in platforms)
    rows = store.conn.execute(
        "SELECT d.subscriber_id, d.local_date, d.window_start, d.window_end, d.attempts, "
        "d.paper_ids, d.parts, d.sent_parts, d.message_ids, d.sending_at "
        "FROM deliveries AS d JOIN subscribers AS s ON s.id = d.subscriber_id "
        "WHERE d.status = 'claimed' AND (d.retry_at IS NULL OR d.retry_at <= ?) "
        f"AND s.platform IN ({marks}) ORDER BY d.claimed_at",
        [utc_iso(now), *platforms],
    ).fetchall()
    claims = []
    for r in rows:
        day = date.fromisoformat(str(r[1]))
        progress = _Progress(
            parts=None if r[6] is None else int(r[6]),
            sent=int(r[7] or 0),
            ids=[str(i) for i in json.loads(r[8] or "[]")],
            sending_at=parse_utc(str(r[9])) if r[9] else None,
        )
        if (progress.parts or 0) > 1:
            progress.bodies = [
                str(b[0])
                for b in store.conn.execute(
                    "SELECT body FROM digest_messages WHERE subscriber_id = ? AND local_date = ? "
                    "ORDER BY part",
                    [int(r[0]), day.isoformat()],
                )
            ]
        claims.append(
            Claim(
                subscriber=subs.get(int(r[0])),
                local_date=day,
                window_start=parse_utc(str(r[2])),
                window_end=parse_utc(str(r[3])),
                attempts=int(r[4] or 0),
                paper_ids=tuple(json.loads(r[5] or "[]")),
                progress=progress,
            )
        )
    return claims


def _reopen(store: Store, claim: Claim, now: datetime) -> Digest | None:
    """Rebuild a claimed digest that has no messages yet from its stored window; None if empty."""
    digest = build_digest(
        store, claim.subscriber, claim.window_start, claim.window_end, claim.local_date
    )
    if digest.is_empty:
        _finish(store, claim.subscriber.id, claim.local_date, "empty", now, paper_ids=())
        return None
    with store.conn:
        store.conn.execute(
            "UPDATE deliveries SET paper_ids = ? WHERE subscriber_id = ? AND local_date = ?",
            [dumps_ids(digest.paper_ids), claim.subscriber.id, claim.local_date.isoformat()],
        )
    return digest


def _record_transient(
    store: Store,
    subscriber_id: int,
    day: date,
    error: str,
    now: datetime,
    max_attempts: int,
) -> bool:
    """Note a failed send (or a failed look-up of an earlier one); True when given up instead."""
    with store.conn:
        store.conn.execute(
            "UPDATE deliveries SET failures = failures + 1 "
            "WHERE subscriber_id = ? AND local_date = ?",
            [subscriber_id, day.isoformat()],
        )
    row = store.conn.execute(
        "SELECT failures FROM deliveries WHERE subscriber_id = ? AND local_date = ?",
        [subscriber_id, day.isoformat()],
    ).fetchone()
    failures = int(row[0] or 0) if row else max_attempts
    if failures >= max_attempts:
        _finish(
            store, subscriber_id, day, "failed", now, error=f"gave up after {failures}: {error}"
        )
        return True
    with store.conn:
        store.conn.execute(
            "UPDATE deliveries SET error = ?, retry_at = ? "
            "WHERE subscriber_id = ? AND local_date = ?",
            [error, utc_iso(now + retry_delay(failures)), subscriber_id, day.isoformat()],
        )
    return False


def _mark_gone(store: Store, subscriber_id: int, day: date, reason: str, now: datetime) -> None:
    _finish(store, subscriber_id, day, "failed", now, error=f"destination gone: {reason}")
    Subscriptions(store).mark_undeliverable(subscriber_id, reason)


# -- the runner ------------------------------------------------------------------------------------

# A look-up searches the platform from this long before a message's post began (clocks differ)
# to this long after it could have ended.
LOOKUP_MARGIN = timedelta(seconds=30)
# How long a graceful stop lets the sends in flight finish, so their outcomes are recorded.
STOP_GRACE_SECONDS = 10.0


class DigestRunner:
    """Sends due digests; `tick` is called every minute by the scheduler and once at start.

    Rules (also in docs/digests.md and docs/reliability.md):

    * A subscriber is due when `next_due_at` (their local digest time on a chosen weekday,
      computed with zoneinfo, so DST is handled) has passed, they are not paused, not marked
      undeliverable, follow at least one topic and their platform has a destination here.
    * The digest date is the local date of the due moment. If the subscriber's local date now
      is already later (the bot was down for the rest of that day), that digest is skipped and
      `next_due_at` moves on; its papers are not lost, since the next window starts where the
      previous sent digest ended. A due moment before the subscriber followed any topic is
      passed over the same way: the first digest comes at the first digest time after that.
    * Claim: insert the ledger row (subscriber, local date) as `claimed` and advance
      `next_due_at` in one transaction; a primary-key conflict means the day is taken: skip.
    * Nothing new: status `empty`, nothing posted. Otherwise the digest is rendered into its
      messages (a digest of several keeps their bodies in `digest_messages`); the row's
      `sending_at` is set before each post and cleared, with the message's id appended to
      `message_ids`, the moment the platform accepts it; after the last the row is `sent`.
      `DestinationGone`: `failed` and the subscriber is marked undeliverable (no more tries
      until they use a command). Any other error: the row stays `claimed` with the error and a
      `retry_at` (1, 2, 4, 8, 16 minutes); after MAX_ATTEMPTS failures it becomes `failed`.
    * Recovery, on every tick (so also right after a restart): a claimed row with a message
      left in flight (a crash or a timeout during its post) is settled by asking the platform
      (`find_posted`, in the background so other digests go on meanwhile); found: `sent`,
      not found: sent again, platform cannot tell: sent again (at least once). A claimed row
      without uncertain messages resumes at its first unsent message, or is rebuilt from its
      stored window when it has none; if nothing was posted and its local day is over it
      becomes `failed` (papers roll over).
    """

    def __init__(
        self,
        runner: StoreRunner,
        destinations: dict[str, Destination],
        clock: Callable[[], datetime] = utcnow,
        *,
        concurrency: int = CONCURRENCY,
        max_attempts: int = MAX_ATTEMPTS,
        deliver_timeout: float = DELIVER_TIMEOUT_SECONDS,
    ) -> None:
        self.runner = runner
        self.destinations = destinations
        self.clock = clock
        self.max_attempts = max_attempts
        self.deliver_timeout = deliver_timeout
        self._semaphore = asyncio.Semaphore(concurrency)
        # One tick at a time in this process, so recovery never takes up a send in flight.
        self._lock = asyncio.Lock()
        self._ledger = _LedgerWriter(runner)
        # Digests being settled by a look-up in the background, which ticks leave alone.
        self._lookups: dict[tuple[int, date], asyncio.Task[None]] = {}
        self._unknowable: set[tuple[str, str]] = set()  # (platform, reason) already logged
        self._settled = TickReport()  # what background look-ups did since `settle` last ran
        self._stopping = False
        self._ticking: asyncio.Task[Any] | None = None

    async def tick(self, now: datetime | None = None) -> TickReport:
        """Recover unfinished claims, then claim, build and send every due digest."""
        async with self._lock:
            report = TickReport()
            if self._stopping:
                return report
            self._ticking = asyncio.current_task()
            try:
                await self._tick(now or self.clock(), report)
            finally:
                self._ticking = None
            if report != TickReport():
                log.info("digest tick %s: %s", utc_iso(now or self.clock()), report)
            return report

    async def _tick(self, now: datetime, report: TickReport) -> None:
        platforms = sorted(self.destinations)
        claims = await self.runner.background(_open_claims, platforms, now)
        resumable = []
        for claim in claims:
            if (claim.subscriber.id, claim.local_date) in self._lookups:
                continue
            if claim.progress.sending_at is not None:
                self._look_up(claim)
                report.looked_up += 1
            else:
                resumable.append(claim)
        if resumable:
            await asyncio.gather(*(self._recover(claim, now, report) for claim in resumable))
        cache = MatchCache()
        # In batches, so look-ups get the store between them however many are due.
        limit = CLAIM_BATCH
        while not self._stopping:
            plan = await self.runner.background(_claim_due, platforms, now, cache, limit)
            limit = next_batch_size(limit, plan.examined)
            report.empty += plan.empty
            report.skipped_stale += plan.skipped_stale
            if plan.jobs:
                await asyncio.gather(*(self._send(job, report) for job in plan.jobs))
            if not plan.more:
                break

    async def close(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop for a shutdown: no new digests or messages; sends in flight get `grace` seconds
        to finish (so their outcome is recorded), then everything is cancelled quietly. What is
        left unfinished stays `claimed` for the next start."""
        self._stopping = True
        ticking = self._ticking
        if ticking is not None and not ticking.done():
            done, _ = await asyncio.wait({ticking}, timeout=grace)
            if not done:
                ticking.cancel()
                await asyncio.wait({ticking})
        lookups = list(self._lookups.values())
        for task in lookups:
            task.cancel()
        if lookups:
            await asyncio.wait(lookups)
        await self._ledger.drain()

    async def settle(self) -> TickReport:
        """Wait for the background look-ups under way; what they did since the last call."""
        while self._lookups:
            await asyncio.wait(list(self._lookups.values()))
        report, self._settled = self._settled, TickReport()
        return report

    # -- settling uncertain messages -------------------------------------------------------------

    def _look_up(self, claim: Claim) -> None:
        key = (claim.subscriber.id, claim.local_date)
        task = asyncio.create_task(self._settle(claim), name=f"paperbot-lookup-{key[0]}")
        self._lookups[key] = task
        task.add_done_callback(lambda _: self._lookups.pop(key, None))

    async def _settle(self, claim: Claim) -> None:
        """Ask the platform whether the uncertain message got through, then finish the digest."""
        progress, subscriber, day = claim.progress, claim.subscriber, claim.local_date
        assert progress.sending_at is not None
        part = progress.sent
        key = ledger_key(subscriber.id, day)
        destination = self.destinations[subscriber.platform]
        report = self._settled
        since = progress.sending_at - LOOKUP_MARGIN
        until = progress.sending_at + timedelta(seconds=self.deliver_timeout) + LOOKUP_MARGIN
        try:
            found = await destination.find_posted(subscriber, key, part, since, until)
        except LookupUnavailable as why:
            self._warn_unknowable(subscriber.platform, why.reason)
            found = None
        except DestinationGone as gone:
            await self.runner.background(_mark_gone, subscriber.id, day, gone.reason, self.clock())
            report.failed += 1
            return
        except Exception as error:
            # Unknown whether it went out: resending could post it twice, so wait and ask again.
            await self._transient(subscriber, day, f"find_posted: {error!r}", report)
            return
        progress.sending_at = None
        if found:
            log.info("digest %s message %d was already posted (%s)", key, part, found)
            # A digest claimed before message counts were recorded was one message.
            last = part + 1 >= (progress.parts or 1)
            paper_ids = claim.paper_ids if last else None
            await self._ledger.write(
                _Posted(subscriber.id, day, part, found, self.clock(), paper_ids)
            )
            progress.sent, progress.ids = part + 1, [*progress.ids, found]
            if last:
                report.recovered += 1
                return
        else:
            await self._ledger.write(_NotPosted(subscriber.id, day))
        if not self._stopping:
            await self._recover(claim, self.clock(), report)

    def _warn_unknowable(self, platform: str, reason: str) -> None:
        if (platform, reason) not in self._unknowable:
            self._unknowable.add((platform, reason))
            log.warning(
                "digests on %s are at least once, not exactly once: the platform cannot tell "
                "whether a message cut by a crash got through (%s), so it is sent again",
                platform,
                reason,
            )

    # -- sending -----------------------------------------------------------------------------------

    async def _recover(self, claim: Claim, now: datetime, report: TickReport) -> None:
        """Finish a claimed digest with no uncertain message: resume it, or rebuild it."""
        subscriber, day, progress = claim.subscriber, claim.local_date, claim.progress
        key = ledger_key(subscriber.id, day)
        report.recovered += 1
        if not progress.sent and local_date(subscriber.settings, now) > day:
            log.info("digest %s not finished before its local day ended; skipped", key)
            await self.runner.background(
                _finish, subscriber.id, day, "failed", now, error="expired"
            )
            report.skipped_stale += 1
            return
        if subscriber.undeliverable is not None or subscriber.settings.paused:
            why = "undeliverable" if subscriber.undeliverable is not None else "paused"
            await self.runner.background(_finish, subscriber.id, day, "failed", now, error=why)
            report.failed += 1
            return
        if claim.attempts >= MAX_SENDS:
            # Sends are counted before they start: a digest whose send kills the process every
            # time ends here (a failed send is counted as a failure and handled elsewhere).
            log.error("digest %s given up after %d sends without an outcome", key, claim.attempts)
            await self.runner.background(
                _finish,
                subscriber.id,
                day,
                "failed",
                now,
                error=f"gave up after {claim.attempts} attempts",
            )
            report.failed += 1
            return
        # Commits with the first `_Start`, which reports a failure of either.
        self._ledger.queue(_Retaken(subscriber.id, day)).add_done_callback(_seen)
        if progress.sent and len(progress.bodies) == progress.parts:
            await self._send(_Job(subscriber, day, claim.paper_ids, progress=progress), report)
            return
        # Nothing of it is out (a one-message digest keeps no body): build it again.
        digest = await self.runner.background(_reopen, claim, now)
        if digest is None:
            report.empty += 1
            return
        await self._send(_Job(subscriber, day, digest.paper_ids, digest=digest), report)

    @staticmethod
    def _count_sent(subscriber: Subscriber, report: TickReport) -> None:
        DIGESTS_SENT.labels(subscriber.platform).inc()
        report.sent += 1

    async def _send(self, job: _Job, report: TickReport) -> bool:
        """Post a digest's unsent messages in order, recording each; True when all are sent."""
        subscriber, day, progress = job.subscriber, job.day, job.progress
        key = ledger_key(subscriber.id, day)
        destination = self.destinations[subscriber.platform]
        in_flight = False
        recorded: asyncio.Future[None] | None = None
        try:
            async with self._semaphore:
                if self._stopping:
                    return False  # nothing of it started: the next start sends it
                if progress.parts is None:
                    assert job.digest is not None
                    progress.bodies = destination.render(job.digest, key)
                    progress.parts = len(progress.bodies)
                    new: tuple[str, ...] = tuple(progress.bodies) if progress.parts > 1 else ()
                    count: int | None = progress.parts
                else:
                    new, count = (), None
                for part in range(progress.sent, progress.parts):
                    await self._ledger.write(
                        _Start(subscriber.id, day, part, self.clock(), count, new)
                    )
                    new, count, in_flight = (), None, True
                    message_id = str(
                        await asyncio.wait_for(
                            destination.post(subscriber, progress.bodies[part]),
                            self.deliver_timeout,
                        )
                    )
                    in_flight = False
                    last = part + 1 == progress.parts
                    # Not awaited here: the next message's (or the next digest's) `_Start`
                    # commits with it or after it, so no more than the send concurrency are
                    # ever in flight, and the two share a store call.
                    recorded = self._ledger.queue(
                        _Posted(
                            subscriber.id, day, part, message_id, self.clock(),
                            job.paper_ids if last else None,
                        )
                    )  # fmt: skip
                    progress.sent, progress.ids = part + 1, [*progress.ids, message_id]
            if recorded is not None:
                await asyncio.shield(recorded)
        except DestinationGone as gone:
            log.warning(
                "digest %s for %s: destination gone (%s); marked undeliverable, no more digests "
                "until they use a command",
                key,
                subscriber.label,
                gone.reason,
            )
            await self.runner.background(_mark_gone, subscriber.id, day, gone.reason, self.clock())
            DIGESTS_FAILED.labels(subscriber.platform, "gone").inc()
            report.failed += 1
            return False
        except PostRejected as error:
            # The platform said no: the message is certainly not out, so it is simply sent again.
            if in_flight:
                await self._ledger.write(_NotPosted(subscriber.id, day))
            DIGESTS_FAILED.labels(subscriber.platform, "transient").inc()
            await self._transient(subscriber, day, repr(error), report)
            return False
        except Exception as error:
            # A timeout or a dropped connection: whether it went out is for a look-up to settle.
            DIGESTS_FAILED.labels(subscriber.platform, "transient").inc()
            await self._transient(subscriber, day, repr(error), report)
            return False
        self._count_sent(subscriber, report)
        return True

    async def _transient(
        self,
        subscriber: Subscriber,
        day: date,
        error: str,
        report: TickReport,
    ) -> None:
        key = ledger_key(subscriber.id, day)
        gave_up = await self.runner.background(
            _record_transient, subscriber.id, day, error, self.clock(), self.max_attempts
        )
        if gave_up:
            log.error("digest %s for %s given up: %s", key, subscriber.label, error)
            report.failed += 1
        else:
            log.warning("digest %s for %s failed, will retry: %s", key, subscriber.label, error)
            report.retrying += 1
