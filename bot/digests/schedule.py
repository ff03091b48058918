"""When digests are due: every due-time rule, in the subscriber's own time zone.

Due times are computed with zoneinfo and stored in UTC (`subscribers.next_due_at`), so the
digest tick is one indexed query however many subscribers there are. DST: a local time skipped
by a spring-forward falls an hour later, a repeated one takes its first occurrence.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.models import DigestSettings, Subscriber, TopicSubscription


def ledger_key(subscriber_id: int, day: date) -> str:
    """The idempotency key of one subscriber's digest for one local date."""
    return f"{subscriber_id}:{day.isoformat()}"


def local_due(settings: DigestSettings, day: date) -> datetime:
    """The aware UTC moment of a subscriber's digest on a local calendar day.

    A local time skipped by a DST change (02:30 on a spring-forward night) falls an hour later,
    as zoneinfo resolves it; a repeated one (autumn) takes its first occurrence.
    """
    hour, minute = (int(part) for part in settings.digest_time.split(":"))
    local = datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo(settings.tz))
    return local.astimezone(UTC)


def next_due(settings: DigestSettings, after_local_day: date | None, now: datetime) -> datetime:
    """The first due moment on a chosen weekday, on a local day after `after_local_day`.

    With `after_local_day` None the search starts today (local), so a digest whose time has
    already passed today is due at once: that is the catch-up rule after a restart.
    """
    zone = ZoneInfo(settings.tz)
    today = now.astimezone(zone).date()
    day = today if after_local_day is None else max(today, after_local_day + timedelta(days=1))
    for offset in range(8):
        candidate = day + timedelta(days=offset)
        if candidate.weekday() in settings.days:
            return local_due(settings, candidate)
    raise ValueError("a subscriber must have at least one digest day")


def subscribed_at(subscriber: Subscriber, topics: Sequence[TopicSubscription]) -> datetime:
    """When the subscriber started following topics: its earliest topic, else its creation."""
    return min((t.created_at for t in topics), default=subscriber.created_at)


def next_send(
    settings: DigestSettings, due: datetime, since: datetime, now: datetime
) -> tuple[datetime, list[date]]:
    """When the digest due at `due` really goes out, and the local days passed over as over.

    Due moments that are never sent are passed over: one before the subscriber followed
    anything (no "missed" digest at 09:00 for someone who subscribed at 15:00), or on a local
    day that is over (the bot was down for the rest of it). A result at or before `now` goes
    out at the next digest tick, within a minute. The digest tick and every "Next:" shown to
    a user use this, so what is promised is what happens.
    """
    today = local_date(settings, now)
    day = local_date(settings, due)
    stale: list[date] = []
    while due <= now and (due < since or day < today):
        if day < today and due >= since:
            stale.append(day)
        due = next_due(settings, day, now)
        day = local_date(settings, due)
    return due, stale


def local_date(settings: DigestSettings, moment: datetime) -> date:
    """The subscriber's local calendar date at `moment`."""
    return moment.astimezone(ZoneInfo(settings.tz)).date()
