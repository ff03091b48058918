"""Small fakes of our own interfaces for tests: a settable clock, a recording destination,
and helpers that put papers and subscribers into a real store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.errors import DestinationGone
from bot.models import Digest, DigestSettings, Paper, Subscriber
from bot.store import Store
from bot.subscriptions import Subscriptions


class FakeClock:
    """A clock that stays where it is put: `clock()` returns an aware UTC datetime."""

    def __init__(self, now: datetime) -> None:
        self.now = _aware_utc(now)

    def __call__(self) -> datetime:
        """The current fake time."""
        return self.now

    def set(self, moment: datetime) -> None:
        """Move the clock to `moment` (aware)."""
        self.now = _aware_utc(moment)

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by `delta` and return the new time."""
        self.now += delta
        return self.now


def _aware_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("FakeClock needs an aware datetime")
    return moment.astimezone(UTC)


class SimulatedCrash(BaseException):
    """Stands for the process dying mid-send (not an `Exception`, so the bot cannot catch it)."""


class TransientError(Exception):
    """A failure a real platform might give for a moment (a 503, a timeout)."""


@dataclass(frozen=True)
class Delivered:
    """One digest a FakeDestination accepted."""

    subscriber: Subscriber
    digest: Digest
    key: str
    message_id: str
    at: datetime | None


class FakeDestinationWithoutLookup:
    """A platform that records every digest it is given and can be told to misbehave.

    Like an adapter that cannot look up earlier messages, it has no `find_delivered`;
    `FakeDestination` adds one.
    """

    def __init__(
        self, platform: str = "console", clock: Callable[[], datetime] | None = None
    ) -> None:
        self.platform = platform
        self.clock = clock
        self.delivered: list[Delivered] = []
        self.calls = 0
        self._gone: dict[int, str] = {}
        self._transient: dict[int, int] = {}
        self._crash_before: set[int] = set()
        self._crash_after: set[int] = set()

    # -- misbehaviour ----------------------------------------------------------------------

    def make_gone(self, subscriber_id: int, reason: str = "DMs are closed") -> None:
        """From now on, deliveries to this subscriber raise DestinationGone."""
        self._gone[subscriber_id] = reason

    def reopen(self, subscriber_id: int) -> None:
        """The destination accepts messages again (the user opened their DMs)."""
        self._gone.pop(subscriber_id, None)

    def fail_transiently(self, subscriber_id: int, times: int = 1) -> None:
        """The next `times` deliveries to this subscriber raise TransientError."""
        self._transient[subscriber_id] = times

    def crash(self, subscriber_id: int, after_send: bool = False) -> None:
        """The next delivery to this subscriber "kills the process", before or after posting."""
        (self._crash_after if after_send else self._crash_before).add(subscriber_id)

    # -- the Destination interface -----------------------------------------------------------

    async def deliver(self, subscriber: Subscriber, digest: Digest, key: str) -> str:
        """Record the digest and return a message id, unless told to fail."""
        self.calls += 1
        sid = subscriber.id
        if sid in self._gone:
            raise DestinationGone(self._gone[sid])
        if self._transient.get(sid, 0) > 0:
            self._transient[sid] -= 1
            raise TransientError("platform unavailable (503)")
        if sid in self._crash_before:
            self._crash_before.discard(sid)
            raise SimulatedCrash(f"crash before sending {key}")
        message_id = f"{self.platform}-msg-{len(self.delivered) + 1}"
        at = self.clock() if self.clock is not None else None
        self.delivered.append(Delivered(subscriber, digest, key, message_id, at))
        if sid in self._crash_after:
            self._crash_after.discard(sid)
            raise SimulatedCrash(f"crash after sending {key}")
        return message_id

    # -- inspection ----------------------------------------------------------------------------

    def to(self, subscriber_id: int) -> list[Delivered]:
        """What this subscriber was sent, in order."""
        return [d for d in self.delivered if d.subscriber.id == subscriber_id]


class FakeDestination(FakeDestinationWithoutLookup):
    """A recording platform that can also say whether it already holds a digest."""

    def __init__(
        self, platform: str = "console", clock: Callable[[], datetime] | None = None
    ) -> None:
        super().__init__(platform, clock)
        self._lookup_failures = 0

    def fail_lookups(self, times: int = 1) -> None:
        """The next `times` calls of find_delivered raise TransientError."""
        self._lookup_failures = times

    async def find_delivered(self, subscriber: Subscriber, key: str) -> str | None:
        """The message id of a digest already posted under `key`, from this fake's record."""
        if self._lookup_failures > 0:
            self._lookup_failures -= 1
            raise TransientError("history lookup failed")
        for item in self.delivered:
            if item.key == key:
                return item.message_id
        return None


def add_paper(
    store: Store,
    paper_id: str,
    title: str,
    first_seen_at: datetime,
    summary: str = "",
    **fields: object,
) -> Paper:
    """Store a paper as first seen at `first_seen_at` and return it as stored."""
    paper = Paper(id=paper_id, title=title, summary=summary, **fields)  # type: ignore[arg-type]
    store.upsert_papers([paper], first_seen_at)
    stored = store.get_paper(paper_id)
    assert stored is not None
    return stored


def add_subscriber(
    store: Store,
    address: str,
    topics: Sequence[str],
    now: datetime,
    settings: DigestSettings | None = None,
    platform: str = "console",
    kind: str = "user",
) -> Subscriber:
    """Create a subscriber following `topics`, subscribed at `now`."""
    subs = Subscriptions(store)
    subscriber = subs.get_or_create(platform, kind, address, "", now, settings)
    for topic in topics:
        subs.add_topic(subscriber.id, topic, now)
    return subs.get(subscriber.id)
