"""Small fakes of our own interfaces for tests: a settable clock, a recording destination,
and helpers that put papers and subscribers into a real store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.errors import DestinationGone, LookupUnavailable, PostRejected
from bot.models import Digest, DigestSettings, Paper, Subscriber
from bot.storage import Store
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


class TransientError(PostRejected):
    """A failure a real platform might give for a moment (a 503 answered, so nothing posted)."""


@dataclass(frozen=True)
class Delivered:
    """One message a FakeDestination accepted: a digest's part `part` of `parts`."""

    subscriber: Subscriber
    digest: Digest
    key: str
    message_id: str
    at: datetime | None
    part: int = 0
    parts: int = 1
    paper_ids: tuple[str, ...] = ()

    @property
    def local_date(self) -> str:
        """The digest's local date, from its ledger key."""
        return self.key.split(":")[1]


class FakeDestinationWithoutLookup:
    """A platform that records every message it is given and can be told to misbehave.

    It renders a digest as one message, or as messages of `per_message` papers each. Like an
    adapter whose platform keeps no readable history, its `find_posted` cannot tell;
    `FakeDestination` can.
    """

    def __init__(
        self,
        platform: str = "console",
        clock: Callable[[], datetime] | None = None,
        per_message: int | None = None,
    ) -> None:
        self.platform = platform
        self.clock = clock
        self.per_message = per_message
        self.delivered: list[Delivered] = []
        self.calls = 0
        self.lookups = 0
        self._rendered: dict[str, Digest] = {}
        self._gone: dict[int, str] = {}
        self._transient: dict[int, int] = {}
        self._crashes: dict[int, tuple[int, bool]] = {}  # subscriber -> (part, after posting)

    # -- misbehaviour ----------------------------------------------------------------------

    def make_gone(self, subscriber_id: int, reason: str = "DMs are closed") -> None:
        """From now on, deliveries to this subscriber raise DestinationGone."""
        self._gone[subscriber_id] = reason

    def reopen(self, subscriber_id: int) -> None:
        """The destination accepts messages again (the user opened their DMs)."""
        self._gone.pop(subscriber_id, None)

    def fail_transiently(self, subscriber_id: int, times: int = 1) -> None:
        """The next `times` posts to this subscriber raise TransientError."""
        self._transient[subscriber_id] = times

    def crash(self, subscriber_id: int, after_send: bool = False, part: int = 0) -> None:
        """The next post of part `part` to this subscriber "kills the process", before or
        after posting it."""
        self._crashes[subscriber_id] = (part, after_send)

    # -- the Destination interface -----------------------------------------------------------

    def render(self, digest: Digest, key: str) -> list[str]:
        """The digest's paper ids in one message, or `per_message` to a message."""
        self._rendered[key] = digest
        ids = list(digest.paper_ids)
        size = self.per_message or max(len(ids), 1)
        chunks = [ids[n : n + size] for n in range(0, len(ids), size)] or [[]]
        return [
            json.dumps({"key": key, "part": n, "parts": len(chunks), "paper_ids": chunk})
            for n, chunk in enumerate(chunks)
        ]

    async def post(self, subscriber: Subscriber, body: str) -> str:
        """Record the message and return its id, unless told to fail."""
        self.calls += 1
        sid = subscriber.id
        message = json.loads(body)
        key = str(message["key"])
        if sid in self._gone:
            raise DestinationGone(self._gone[sid])
        if self._transient.get(sid, 0) > 0:
            self._transient[sid] -= 1
            raise TransientError("platform unavailable (503)")
        crash = self._crashes.get(sid)
        if crash is not None and crash[0] != message["part"]:
            crash = None
        if crash is not None and not crash[1]:
            del self._crashes[sid]
            raise SimulatedCrash(f"crash before sending {key}")
        message_id = f"{self.platform}-msg-{len(self.delivered) + 1}"
        at = self.clock() if self.clock is not None else None
        digest = self._rendered.get(key) or Digest(sid, key.split(":")[1], ())
        self.delivered.append(
            Delivered(
                subscriber,
                digest,
                key,
                message_id,
                at,
                int(message["part"]),
                int(message["parts"]),
                tuple(message["paper_ids"]),
            )
        )
        if crash is not None:
            del self._crashes[sid]
            raise SimulatedCrash(f"crash after sending {key}")
        return message_id

    async def find_posted(
        self, subscriber: Subscriber, key: str, part: int, since: datetime, until: datetime
    ) -> str | None:
        """This platform keeps no history it could be asked about."""
        self.lookups += 1
        raise LookupUnavailable("this fake platform keeps no readable history")

    # -- inspection ----------------------------------------------------------------------------

    def to(self, subscriber_id: int) -> list[Delivered]:
        """What this subscriber was sent, in order."""
        return [d for d in self.delivered if d.subscriber.id == subscriber_id]


class FakeDestination(FakeDestinationWithoutLookup):
    """A recording platform that can also say whether it already holds a message."""

    # Lookups that will fail before one answers (`fail_lookups` sets it on the instance).
    _lookup_failures = 0

    def fail_lookups(self, times: int = 1) -> None:
        """The next `times` calls of find_posted raise TransientError."""
        self._lookup_failures = times

    async def find_posted(
        self, subscriber: Subscriber, key: str, part: int, since: datetime, until: datetime
    ) -> str | None:
        """The message id of part `part` of digest `key`, from this fake's record."""
        self.lookups += 1
        if self._lookup_failures > 0:
            self._lookup_failures -= 1
            raise TransientError("history lookup failed")
        for item in self.delivered:
            if item.key == key and item.part == part:
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
    store.papers.upsert([paper], first_seen_at)
    stored = store.papers.get(paper_id)
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
