"""Sending digests: claim -> send each message -> record, in a ledger, and recovery.

The database decides everything: `subscribers.next_due_at` says who is due and the
`deliveries` ledger (one row per subscriber and local digest date) says what happened to each
digest. A row is inserted ("claimed") before anything is sent and finished after, so a restart
neither repeats nor loses a digest. docs/digests.md states the rules for users and operators.

Store work (through `bot.storage`'s ledger) runs on the `StoreRunner` thread, in claim
batches kept within a `Budget`; sending runs on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.digests.build import Budget, MatchCache, OutOfTime, build_digest, window_start
from bot.digests.destination import Destination
from bot.digests.schedule import ledger_key, local_date, next_due, next_send, subscribed_at
from bot.errors import DestinationGone, LookupUnavailable, PostRejected
from bot.learning import Profile, TermSpace, load_profiles
from bot.metrics import DIGESTS_FAILED, DIGESTS_SENT
from bot.models import Digest, Subscriber, TopicSubscription
from bot.runtime import StoreRunner
from bot.storage import Store, utc_iso
from bot.storage.ledger import Change, NotPosted, OpenClaim, Posted, Progress, Retaken, Start

if TYPE_CHECKING:
    from bot.semantic import Semantic

log = logging.getLogger(__name__)

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


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed send: 1, 2, 4, 8, 16 minutes, at most 30."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 30))


# -- the ledger ------------------------------------------------------------------------------------


@dataclass
class Claim(OpenClaim):
    """A ledger row still `claimed`, with its subscriber."""

    subscriber: Subscriber = field(kw_only=True)


@dataclass
class _Job:
    subscriber: Subscriber
    day: date
    paper_ids: tuple[str, ...]
    digest: Digest | None = None  # to render, when it has no messages yet
    progress: Progress = field(default_factory=Progress)


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


def _record(store: Store, changes: Sequence[Change]) -> None:
    store.ledger.record(changes)


def _seen(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()  # read, so an error reported elsewhere is not logged as lost


class _LedgerWriter:
    """Records messages' outcomes durably, in groups: the changes that queue up while one store
    call runs share the next one (a commit per message cost a store call each)."""

    def __init__(self, runner: StoreRunner) -> None:
        self.runner = runner
        self._queue: list[tuple[Change, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    def queue(self, op: Change) -> asyncio.Future[None]:
        """Queue `op`; the future is done once it is committed. Writes commit in queue order,
        so whatever is queued later commits with it or after it."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((op, done))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="paperbot-ledger")
        return done

    async def write(self, op: Change) -> None:
        """Return once `op` is committed."""
        await asyncio.shield(self.queue(op))

    async def _flush(self) -> None:
        while self._queue:
            # One turn of the event loop first: the sends that are about to ask join this call.
            await asyncio.sleep(0)
            batch, self._queue = self._queue, []
            try:
                # Ahead of bulk work and of commands: a flush takes about a millisecond and
                # every send in flight waits for it. Behind a busy ingest, digests crawled (50 in
                # 30 s, against 320 before messages were recorded); behind look-ups piling up
                # faster than the store thread served them, 24 went out in 30 s. One flush at a
                # time, so a look-up waits for one at most.
                await self.runner.first(_record, [op for op, _ in batch])
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


def claim_due(
    store: Store,
    platforms: Sequence[str],
    now: datetime,
    cache: MatchCache,
    limit: int,
) -> _Plan:
    """Claim and build up to `limit` due digests (the catch-up and first-digest rules live here).

    It stops early once the cache's budget has gone, even in the middle of building a digest,
    so the store thread is never held long. Every subscriber it looks at leaves the due set
    (claimed, or `next_due_at` moved on), so calling it again takes up the next ones;
    `plan.more` says whether there may be more.
    """
    rows = store.subscribers
    plan = _Plan()
    deadline = time.perf_counter() + cache.budget.seconds
    candidates = rows.due(now, platforms, limit)
    plan.more = len(candidates) == limit
    ids = [s.id for s in candidates]
    topics_of, muted_of = rows.topics_of(ids), rows.muted_of(ids)
    topic_ids = [t.id for found in topics_of.values() for t in found]
    profiles = load_profiles(store, topic_ids, cache.marked)
    # One transaction for the batch's claims: a commit per subscriber was a third of the cost.
    # A crash before the commit loses only claims, never a send (sends happen after).
    cache.deadline = deadline
    try:
        with store.transaction():
            _claim_batch(
                store, candidates, topics_of, muted_of, profiles, now, cache, deadline, plan
            )
    finally:
        cache.deadline = None
    return plan


def _claim_batch(
    store: Store,
    candidates: list[Subscriber],
    topics_of: dict[int, list[TopicSubscription]],
    muted_of: dict[int, set[str]],
    profiles: dict[int, Profile],
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
            store.subscribers.set_next_due(subscriber.id, due)
            continue
        start = window_start(store, subscriber, day, since)
        # Built before claiming so the claim, its planned content (kept so a recovered claim
        # knows what it was about to send) and the next due time are one transaction.
        muted = muted_of.get(subscriber.id, set())
        try:
            digest = build_digest(
                store,
                subscriber,
                start,
                now,
                day,
                cache=cache,
                topics=topics,
                muted=muted,
                profiles=profiles,
            )
        except OutOfTime:
            # Nothing of this subscriber's is written yet: the next batch starts with them.
            plan.more = True
            break
        after = next_due(settings, day, now)
        if not store.ledger.claim(subscriber.id, day, (start, now), digest.paper_ids, after):
            # Already claimed: by another run, or before a stop that left next_due_at behind.
            store.subscribers.set_next_due(subscriber.id, after)
            continue
        if digest.is_empty:
            plan.empty += 1
        else:
            plan.jobs.append(_Job(subscriber, day, digest.paper_ids, digest=digest))


def _open_claims(store: Store, platforms: Sequence[str], now: datetime) -> list[Claim]:
    """Claimed rows whose retry time has come, on platforms this process can deliver to, each
    with how far its messages got."""
    found = []
    for row in store.ledger.open_claims(platforms, now):
        subscriber = store.subscribers.get(row.subscriber_id)
        assert subscriber is not None  # a subscriber's rows go with it (foreign key)
        found.append(
            Claim(
                row.subscriber_id, row.local_date, row.window_start, row.window_end,
                row.attempts, row.paper_ids, row.progress, subscriber=subscriber,
            )
        )  # fmt: skip
    return found


def _reopen(store: Store, claim: Claim, now: datetime, cache: MatchCache) -> Digest | None:
    """Rebuild a claimed digest that has no messages yet from its stored window; None if empty."""
    subscriber, day = claim.subscriber, claim.local_date
    digest = build_digest(store, subscriber, claim.window_start, claim.window_end, day, cache=cache)
    if digest.is_empty:
        store.ledger.finish(claim.subscriber.id, claim.local_date, "empty", now, paper_ids=())
        return None
    store.ledger.set_paper_ids(claim.subscriber.id, claim.local_date, digest.paper_ids)
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
    failures = store.ledger.add_failure(subscriber_id, day) or max_attempts
    if failures >= max_attempts:
        _fail(store, subscriber_id, day, now, f"gave up after {failures}: {error}")
        return True
    store.ledger.retry_later(subscriber_id, day, error, now + retry_delay(failures))
    return False


def _fail(store: Store, subscriber_id: int, day: date, now: datetime, error: str) -> None:
    """Give a digest up: `failed`, with why."""
    store.ledger.finish(subscriber_id, day, "failed", now, error=error)


def _mark_gone(store: Store, subscriber_id: int, day: date, reason: str, now: datetime) -> None:
    _fail(store, subscriber_id, day, now, f"destination gone: {reason}")
    store.subscribers.set_undeliverable(subscriber_id, reason)


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
        budget: Budget | None = None,
        semantic: Semantic | None = None,
    ) -> None:
        self.runner = runner
        self.budget = budget or Budget()
        self.semantic = semantic  # the semantic extra, when loaded
        self._space: TermSpace | None = None  # learning's paper vectors, kept between ticks
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
        cache = MatchCache(self.budget, self.semantic, self._space)
        # In batches, so look-ups get the store between them however many are due.
        limit = self.budget.batch
        while not self._stopping:
            plan = await self.runner.background(claim_due, platforms, now, cache, limit)
            limit = self.budget.next_batch_size(limit, plan.examined)
            report.empty += plan.empty
            report.skipped_stale += plan.skipped_stale
            if plan.jobs:
                await asyncio.gather(*(self._send(job, report) for job in plan.jobs))
            if not plan.more:
                break
        self._space = cache.space_used

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
                Posted(subscriber.id, day, part, found, self.clock(), paper_ids)
            )
            progress.sent, progress.ids = part + 1, [*progress.ids, found]
            if last:
                report.recovered += 1
                return
        else:
            await self._ledger.write(NotPosted(subscriber.id, day))
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
            await self.runner.background(_fail, subscriber.id, day, now, "expired")
            report.skipped_stale += 1
            return
        if subscriber.undeliverable is not None or subscriber.settings.paused:
            why = "undeliverable" if subscriber.undeliverable is not None else "paused"
            await self.runner.background(_fail, subscriber.id, day, now, why)
            report.failed += 1
            return
        if claim.attempts >= MAX_SENDS:
            # Sends are counted before they start: a digest whose send kills the process every
            # time ends here (a failed send is counted as a failure and handled elsewhere).
            log.error("digest %s given up after %d sends without an outcome", key, claim.attempts)
            why = f"gave up after {claim.attempts} attempts"
            await self.runner.background(_fail, subscriber.id, day, now, why)
            report.failed += 1
            return
        # Commits with the first `Start`, which reports a failure of either.
        self._ledger.queue(Retaken(subscriber.id, day)).add_done_callback(_seen)
        if progress.sent and len(progress.bodies) == progress.parts:
            await self._send(_Job(subscriber, day, claim.paper_ids, progress=progress), report)
            return
        # Nothing of it is out (a one-message digest keeps no body): build it again.
        digest = await self.runner.background(
            _reopen, claim, now, MatchCache(semantic=self.semantic)
        )
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
                        Start(subscriber.id, day, part, self.clock(), count, new)
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
                    # Not awaited here: the next message's (or the next digest's) `Start`
                    # commits with it or after it, so no more than the send concurrency are
                    # ever in flight, and the two share a store call.
                    recorded = self._ledger.queue(
                        Posted(
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
                await self._ledger.write(NotPosted(subscriber.id, day))
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
