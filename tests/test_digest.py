"""Digests end to end: real SQLite (a temp file, so a "restart" can reopen it), a fake clock and
a fake destination that records what it was sent. Expected UTC instants are written out by hand.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.digests import Budget, DigestRunner, TickReport, preview
from bot.digests.build import assemble, build_digest
from bot.digests.runner import MAX_ATTEMPTS, claim_due
from bot.digests.schedule import ledger_key
from bot.models import DigestSettings, Paper, SearchHit, Subscriber
from bot.runtime import StoreRunner
from bot.storage import Store, parse_utc
from bot.subscriptions import Subscriptions
from tests.fakes.core import (
    FakeClock,
    FakeDestination,
    FakeDestinationWithoutLookup,
    SimulatedCrash,
    add_paper,
    add_subscriber,
)

EVERY_DAY = tuple(range(7))
BERLIN = DigestSettings(tz="Europe/Berlin", digest_time="09:00", days=EVERY_DAY)
NEW_YORK = DigestSettings(tz="America/New_York", digest_time="08:00", days=EVERY_DAY)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


class CountingRunner(StoreRunner):
    """The store runner, counting the claim batches it runs."""

    claim_batches = 0

    async def background(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if fn is claim_due:
            self.claim_batches += 1
        return await super().background(fn, *args, **kwargs)


class Env:
    """One bot process: a store runner on the database file and a digest runner."""

    def __init__(
        self,
        path: Path,
        clock: FakeClock,
        destination: FakeDestinationWithoutLookup,
        budget: Budget | None = None,
    ):
        self.clock = clock
        self.destination = destination
        self.runner = CountingRunner(Store.open(path))
        self.digests = DigestRunner(
            self.runner, {destination.platform: destination}, clock, budget=budget
        )

    def with_budget(self, budget: Budget) -> None:
        """Claim in batches kept to `budget` from now on."""
        self.digests = DigestRunner(
            self.runner, {self.destination.platform: self.destination}, self.clock, budget=budget
        )

    async def do(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await self.runner.call(fn, *args, **kwargs)

    async def tick(self, at: datetime | None = None) -> TickReport:
        if at is not None:
            self.clock.set(at)
        report = await self.digests.tick()
        report.add(await self.digests.settle())  # look-ups run in the background
        report.looked_up = 0
        return report

    async def subscriber(self, address: str, topics: list[str], settings: DigestSettings) -> int:
        sub = await self.do(add_subscriber, address, topics, self.clock(), settings)
        return int(sub.id)

    async def get(self, subscriber_id: int) -> Subscriber:
        return await self.do(lambda s: Subscriptions(s).get(subscriber_id))  # type: ignore[no-any-return]

    async def paper(self, paper_id: str, title: str, summary: str = "") -> None:
        await self.do(add_paper, paper_id, title, self.clock(), summary)

    async def ledger(self, subscriber_id: int) -> list[dict[str, Any]]:
        def rows(store: Store) -> list[dict[str, Any]]:
            store.conn.row_factory = sqlite3.Row
            try:
                found = store.conn.execute(
                    "SELECT * FROM deliveries WHERE subscriber_id = ? ORDER BY local_date",
                    [subscriber_id],
                ).fetchall()
            finally:
                store.conn.row_factory = None
            return [dict(row) for row in found]

        return await self.do(rows)  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.runner.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "paperbot.db"


@pytest.fixture
async def env(db_path: Path) -> AsyncIterator[Env]:
    clock = FakeClock(utc(2026, 5, 4, 5, 0))  # Monday 07:00 in Berlin
    e = Env(db_path, clock, FakeDestination(clock=clock))
    yield e
    await e.close()


_counter = iter(range(1, 1_000_000))


def _next_id() -> str:
    return f"2605.{next(_counter):05d}"


async def kv_paper(env: Env) -> str:
    paper_id = _next_id()
    await env.paper(
        paper_id,
        f"Compressing the KV cache for long-context inference ({paper_id})",
        "We compress the key-value cache of transformer decoders.",
    )
    return paper_id


async def moe_paper(env: Env) -> str:
    paper_id = _next_id()
    await env.paper(
        paper_id,
        f"Sparse mixture of experts routing at scale ({paper_id})",
        "A mixture-of-experts language model with better expert routing.",
    )
    return paper_id


async def quant_paper(env: Env) -> str:
    paper_id = _next_id()
    await env.paper(
        paper_id,
        f"Quantization of large language models to 4 bits ({paper_id})",
        "Post-training quantization for LLMs.",
    )
    return paper_id


async def unrelated_paper(env: Env) -> str:
    paper_id = _next_id()
    await env.paper(paper_id, "Protein structure prediction with diffusion", "Biology.")
    return paper_id


def ids_of(delivered: Any) -> list[str]:
    return list(delivered.paper_ids)


# -- due times, time zones, DST ------------------------------------------------------------------

DST_CASES = {
    # US spring forward: Sunday 8 March 2026 (New York 08:00 moves from 13:00 to 12:00 UTC).
    "us-spring": (
        utc(2026, 3, 6, 0, 0),
        [utc(2026, 3, d, 8) for d in (6, 7, 8, 9)],
        [utc(2026, 3, 6, 13), utc(2026, 3, 7, 13), utc(2026, 3, 8, 12), utc(2026, 3, 9, 12)],
    ),
    # EU spring forward: Sunday 29 March 2026 (Berlin 09:00 moves from 08:00 to 07:00 UTC).
    "eu-spring": (
        utc(2026, 3, 27, 0, 0),
        [utc(2026, 3, 27, 8), utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)],
        [utc(2026, 3, d, 12) for d in (27, 28, 29, 30)],
    ),
    # EU fall back: Sunday 25 October 2026 (Berlin 09:00 moves from 07:00 to 08:00 UTC).
    "eu-fall": (
        utc(2026, 10, 23, 0, 0),
        [utc(2026, 10, 23, 7), utc(2026, 10, 24, 7), utc(2026, 10, 25, 8), utc(2026, 10, 26, 8)],
        [utc(2026, 10, d, 12) for d in (23, 24, 25, 26)],
    ),
    # US fall back: Sunday 1 November 2026 (New York 08:00 moves from 12:00 to 13:00 UTC).
    "us-fall": (
        utc(2026, 10, 30, 0, 0),
        [utc(2026, 10, 30, 8), utc(2026, 10, 31, 8), utc(2026, 11, 1, 8), utc(2026, 11, 2, 8)],
        [utc(2026, 10, 30, 12), utc(2026, 10, 31, 12), utc(2026, 11, 1, 13), utc(2026, 11, 2, 13)],
    ),
}


@pytest.mark.parametrize("case", list(DST_CASES))
async def test_two_time_zones_across_dst_get_one_digest_per_local_day_at_the_right_instant(
    db_path: Path, case: str
) -> None:
    start, berlin_expected, ny_expected = DST_CASES[case]
    clock = FakeClock(start)
    env = Env(db_path, clock, FakeDestination(clock=clock))
    try:
        berlin = await env.subscriber("berlin", ["kv cache"], BERLIN)
        ny = await env.subscriber("new-york", ["kv cache"], NEW_YORK)
        papers: list[str] = []
        step = timedelta(minutes=10)
        while clock() < start + timedelta(days=4):
            if clock().minute == 0 and clock().hour % 3 == 0:
                papers.append(await kv_paper(env))
            await env.tick()
            clock.advance(step)
        for sid, expected in ((berlin, berlin_expected), (ny, ny_expected)):
            got = env.destination.to(sid)
            assert [d.at for d in got] == expected, case
            # One digest per local date, the dates consecutive.
            dates = [date.fromisoformat(d.local_date) for d in got]
            assert dates == [dates[0] + timedelta(days=i) for i in range(4)]
            assert [d.key for d in got] == [ledger_key(sid, day) for day in dates]
            # Windows chain: no paper twice, none lost before the last digest.
            shown = [pid for d in got for pid in d.paper_ids]
            assert len(shown) == len(set(shown))
            last = got[-1].at
            assert last is not None
            seen_before_last = await env.do(
                lambda s, last=last: [
                    pid
                    for pid in papers
                    if (p := s.papers.get(pid)) is not None
                    and p.first_seen_at is not None
                    and p.first_seen_at <= last
                ]
            )
            assert sorted(shown) == sorted(seen_before_last)
            assert all(row["status"] == "sent" for row in await env.ledger(sid))
    finally:
        await env.close()


async def test_a_local_time_repeated_at_fall_back_gives_one_digest(db_path: Path) -> None:
    # 02:30 happens twice in Berlin on 25 October 2026 (00:30 and 01:30 UTC): one digest.
    clock = FakeClock(utc(2026, 10, 24, 12, 0))
    env = Env(db_path, clock, FakeDestination(clock=clock))
    try:
        sid = await env.subscriber("owl", ["kv cache"], replace(BERLIN, digest_time="02:30"))
        while clock() < utc(2026, 10, 25, 6, 0):
            if clock().minute == 0:
                await kv_paper(env)
            await env.tick()
            clock.advance(timedelta(minutes=10))
        got = env.destination.to(sid)
        assert [(d.local_date, d.at) for d in got] == [
            ("2026-10-25", utc(2026, 10, 25, 0, 30)),
        ]
    finally:
        await env.close()


async def test_a_local_time_skipped_at_spring_forward_still_gives_that_days_digest(
    db_path: Path,
) -> None:
    # 02:30 does not exist in Berlin on 29 March 2026; the digest comes at 03:30 CEST instead.
    clock = FakeClock(utc(2026, 3, 28, 12, 0))
    env = Env(db_path, clock, FakeDestination(clock=clock))
    try:
        sid = await env.subscriber("owl", ["kv cache"], replace(BERLIN, digest_time="02:30"))
        while clock() < utc(2026, 3, 30, 6, 0):
            if clock().minute == 0:
                await kv_paper(env)
            await env.tick()
            clock.advance(timedelta(minutes=10))
        got = env.destination.to(sid)
        assert [(d.local_date, d.at) for d in got] == [
            ("2026-03-29", utc(2026, 3, 29, 1, 30)),
            ("2026-03-30", utc(2026, 3, 30, 0, 30)),
        ]
    finally:
        await env.close()


async def test_only_on_chosen_days_and_the_weekend_rolls_into_monday(env: Env) -> None:
    env.clock.set(utc(2026, 5, 7, 20, 0))  # Thursday evening in Berlin
    sid = await env.subscriber("weekdays", ["kv cache"], replace(BERLIN, days=(0, 1, 2, 3, 4)))
    await kv_paper(env)  # for Friday's digest
    saturday_paper = ""
    while env.clock() < utc(2026, 5, 12, 20, 0):  # to Tuesday evening
        if env.clock().minute == 0 and env.clock().hour == 12:
            pid = await kv_paper(env)
            if env.clock().weekday() == 5:
                saturday_paper = pid
        await env.tick()
        env.clock.advance(timedelta(minutes=30))
    got = env.destination.to(sid)
    assert [d.local_date for d in got] == ["2026-05-08", "2026-05-11", "2026-05-12"]
    assert all(d.at is not None and d.at.hour == 7 for d in got)  # 09:00 CEST
    monday = got[1]
    assert saturday_paper in monday.paper_ids
    assert len(monday.paper_ids) == 3  # Friday noon, Saturday and Sunday


# -- what a digest holds -------------------------------------------------------------------------


async def test_overlapping_topics_show_each_paper_once_under_its_best_topic(env: Env) -> None:
    sid = await env.subscriber("u", ["kv cache", "quantization"], BERLIN)
    kv_only = await kv_paper(env)
    quant_only = await quant_paper(env)
    both = _next_id()
    await env.paper(
        both,
        "Quantization of the KV cache",
        "We quantize the key-value cache to 2 bits; quantization error stays small.",
    )
    report = await env.tick(utc(2026, 5, 4, 7, 0))
    assert report.sent == 1
    (delivered,) = env.destination.to(sid)
    sections = {s.topic: [c.paper_id for c in s.cards] for s in delivered.digest.sections}
    assert sorted(delivered.paper_ids) == sorted([kv_only, quant_only, both])
    assert len(delivered.paper_ids) == 3
    # The overlap scores higher on "quantization" (title and abstract), so it is listed there.
    assert sections == {"kv cache": [kv_only], "quantization": [both, quant_only]}
    assert [s.topic for s in delivered.digest.sections] == ["kv cache", "quantization"]


async def test_the_cap_is_shared_across_topics_and_more_counts_what_was_cut(env: Env) -> None:
    sid = await env.subscriber(
        "u", ["kv cache", "mixture of experts"], replace(BERLIN, max_papers=3)
    )
    kv = [await kv_paper(env) for _ in range(5)]
    moe = [await moe_paper(env) for _ in range(2)]
    await env.tick(utc(2026, 5, 4, 7, 0))
    (delivered,) = env.destination.to(sid)
    kv_section, moe_section = delivered.digest.sections
    assert (kv_section.topic, len(kv_section.cards), kv_section.more) == ("kv cache", 2, 3)
    assert (moe_section.topic, len(moe_section.cards), moe_section.more) == (
        "mixture of experts",
        1,
        1,
    )
    assert set(delivered.paper_ids) <= set(kv + moe)
    rows = await env.ledger(sid)
    assert json.loads(rows[0]["paper_ids"]) == list(delivered.paper_ids)


def _hit(paper_id: str, score: float) -> SearchHit:
    return SearchHit(Paper(id=paper_id, title=f"Paper {paper_id}"), score)


def test_assemble_keeps_a_section_whose_papers_were_all_cut() -> None:
    digest = assemble(
        7,
        date(2026, 5, 4),
        ["a", "b", "c", "d"],
        [[_hit("1", 3.0), _hit("2", 2.0)], [_hit("3", 2.5)], [_hit("4", 1.0)], []],
        max_papers=2,
    )
    assert [(s.topic, [c.paper_id for c in s.cards], s.more) for s in digest.sections] == [
        ("a", ["1"], 1),
        ("b", ["3"], 0),
        ("c", [], 1),
    ]
    assert digest.paper_ids == ("1", "3")
    assert digest.local_date == "2026-05-04"


def test_assemble_puts_a_shared_paper_under_its_best_topic_and_ties_under_the_first() -> None:
    digest = assemble(
        1,
        date(2026, 5, 4),
        ["a", "b"],
        [[_hit("x", 2.0), _hit("y", 1.0)], [_hit("x", 3.0), _hit("y", 1.0)]],
        max_papers=10,
    )
    assert [(s.topic, [c.paper_id for c in s.cards]) for s in digest.sections] == [
        ("a", ["y"]),
        ("b", ["x"]),
    ]


async def test_muted_papers_are_left_out(env: Env) -> None:
    sid = await env.subscriber("u", ["kv cache"], BERLIN)
    keep, muted = await kv_paper(env), await kv_paper(env)
    await env.do(lambda s: s.subscribers.mute(sid, muted, env.clock()))
    await env.tick(utc(2026, 5, 4, 7, 0))
    (delivered,) = env.destination.to(sid)
    assert delivered.paper_ids == (keep,)


async def test_first_digest_reaches_back_24_hours_before_subscribing_and_no_further(
    env: Env,
) -> None:
    subscribed = utc(2026, 5, 4, 6, 0)  # 08:00 in Berlin, an hour before the digest
    env.clock.set(subscribed - timedelta(hours=30))
    too_old = await kv_paper(env)
    env.clock.set(subscribed - timedelta(hours=23))
    day_before = await kv_paper(env)
    env.clock.set(subscribed)
    sid = await env.subscriber("new", ["kv cache"], BERLIN)
    env.clock.set(subscribed + timedelta(minutes=30))
    after = await kv_paper(env)
    assert (await env.tick(utc(2026, 5, 4, 6, 59))).sent == 0
    assert (await env.tick(utc(2026, 5, 4, 7, 0))).sent == 1
    (delivered,) = env.destination.to(sid)
    assert sorted(delivered.paper_ids) == sorted([day_before, after])
    assert too_old not in delivered.paper_ids
    (row,) = await env.ledger(sid)
    assert parse_utc(row["window_start"]) == subscribed - timedelta(hours=24)


async def test_subscribing_after_todays_digest_time_waits_for_tomorrow(env: Env) -> None:
    env.clock.set(utc(2026, 5, 4, 13, 0))  # 15:00 in Berlin; the 09:00 digest time has passed
    sid = await env.subscriber("late", ["kv cache"], BERLIN)
    recent = await kv_paper(env)
    report = await env.tick(utc(2026, 5, 4, 13, 1))
    assert report == TickReport()
    assert env.destination.to(sid) == []
    assert (await env.get(sid)).next_due_at == utc(2026, 5, 5, 7, 0)
    await env.tick(utc(2026, 5, 5, 7, 0))
    (delivered,) = env.destination.to(sid)
    assert delivered.paper_ids == (recent,)


async def test_nothing_new_means_no_post_but_the_day_is_recorded(env: Env) -> None:
    sid = await env.subscriber("quiet", ["kv cache"], BERLIN)
    await unrelated_paper(env)
    report = await env.tick(utc(2026, 5, 4, 7, 0))
    assert (report.empty, report.sent) == (1, 0)
    assert env.destination.calls == 0
    (row,) = await env.ledger(sid)
    assert (row["local_date"], row["status"], json.loads(row["paper_ids"])) == (
        "2026-05-04",
        "empty",
        [],
    )
    assert (await env.get(sid)).next_due_at == utc(2026, 5, 5, 7, 0)
    assert await env.tick(utc(2026, 5, 4, 7, 1)) == TickReport()
    # The next window starts where the empty one ended.
    env.clock.set(utc(2026, 5, 4, 12, 0))
    fresh = await kv_paper(env)
    await env.tick(utc(2026, 5, 5, 7, 0))
    (delivered,) = env.destination.to(sid)
    assert delivered.paper_ids == (fresh,)
    rows = await env.ledger(sid)
    assert rows[1]["window_start"] == rows[0]["window_end"]


async def test_paused_subscribers_get_nothing_until_they_resume(env: Env) -> None:
    sid = await env.subscriber("away", ["kv cache"], replace(BERLIN, paused=True))
    await kv_paper(env)
    for day in (4, 5, 6):
        assert await env.tick(utc(2026, 5, day, 7, 0)) == TickReport()
    assert env.destination.calls == 0
    assert await env.ledger(sid) == []
    sub = await env.get(sid)
    env.clock.set(utc(2026, 5, 6, 12, 0))
    await env.do(lambda s: Subscriptions(s).update_settings(sub, BERLIN, env.clock()))
    await env.tick(utc(2026, 5, 7, 7, 0))
    assert len(env.destination.to(sid)) == 1


async def test_preview_marks_nothing_and_matches_what_is_then_sent(env: Env) -> None:
    sid = await env.subscriber("u", ["kv cache"], BERLIN)
    pid = await kv_paper(env)
    env.clock.set(utc(2026, 5, 4, 6, 30))
    sub = await env.get(sid)
    shown = await env.do(preview, sub, env.clock())
    assert shown.paper_ids == (pid,)
    assert shown.local_date == "2026-05-04"
    assert await env.ledger(sid) == []
    await env.tick(utc(2026, 5, 4, 7, 0))
    (delivered,) = env.destination.to(sid)
    assert delivered.paper_ids == shown.paper_ids
    after = await env.do(preview, sub, utc(2026, 5, 4, 8, 0))
    assert after.is_empty  # the sent digest moved the window on


async def test_build_digest_respects_the_window_bounds(env: Env) -> None:
    sid = await env.subscriber("u", ["kv cache"], BERLIN)
    start = env.clock()
    at_start = await kv_paper(env)  # first seen exactly at window_start: excluded
    env.clock.advance(timedelta(hours=1))
    at_end = await kv_paper(env)  # exactly at window_end: included
    env.clock.advance(timedelta(seconds=1))
    await kv_paper(env)  # after the window
    sub = await env.get(sid)
    digest = await env.do(
        build_digest, sub, start, start + timedelta(hours=1), date(2026, 5, 4), date(2026, 5, 4)
    )
    assert digest.paper_ids == (at_end,)
    assert at_start not in digest.paper_ids


# -- downtime --------------------------------------------------------------------------------------


async def test_downtime_across_the_due_time_sends_once_at_start_if_still_that_local_day(
    db_path: Path,
) -> None:
    clock = FakeClock(utc(2026, 5, 3, 12, 0))
    first = Env(db_path, clock, FakeDestination(clock=clock))
    sid = await first.subscriber("u", ["kv cache"], BERLIN)
    await first.tick(utc(2026, 5, 4, 5, 0))  # 07:00 local: not due yet; then the bot stops
    pid = await kv_paper(first)
    await first.close()

    destination = FakeDestination(clock=clock)
    second = Env(db_path, clock, destination)  # back at 17:00 local, same day
    try:
        report = await second.tick(utc(2026, 5, 4, 15, 0))
        assert (report.sent, report.skipped_stale) == (1, 0)
        (delivered,) = destination.to(sid)
        assert delivered.local_date == "2026-05-04"
        assert delivered.paper_ids == (pid,)
        assert await second.tick(utc(2026, 5, 4, 15, 1)) == TickReport()
        assert len(destination.delivered) == 1
    finally:
        await second.close()


async def test_downtime_past_the_local_day_skips_it_and_the_papers_come_next_time(
    db_path: Path,
) -> None:
    clock = FakeClock(utc(2026, 5, 3, 12, 0))
    first = Env(db_path, clock, FakeDestination(clock=clock))
    sid = await first.subscriber("u", ["kv cache"], BERLIN)
    await first.tick(utc(2026, 5, 4, 5, 0))
    missed = await kv_paper(first)  # would have been in Monday's digest
    await first.close()

    destination = FakeDestination(clock=clock)
    second = Env(db_path, clock, destination)  # back on Tuesday 07:00 local
    try:
        report = await second.tick(utc(2026, 5, 5, 5, 0))
        assert (report.sent, report.skipped_stale) == (0, 1)
        assert destination.calls == 0
        assert await second.ledger(sid) == []
        assert (await second.get(sid)).next_due_at == utc(2026, 5, 5, 7, 0)
        later = await kv_paper(second)
        report = await second.tick(utc(2026, 5, 5, 7, 0))
        assert report.sent == 1
        (delivered,) = destination.to(sid)
        assert delivered.local_date == "2026-05-05"
        assert sorted(delivered.paper_ids) == sorted([missed, later])
    finally:
        await second.close()


async def test_downtime_over_several_days_sends_only_today(db_path: Path) -> None:
    clock = FakeClock(utc(2026, 5, 3, 6, 0))  # Sunday 08:00 local, first digest due at 09:00
    first = Env(db_path, clock, FakeDestination(clock=clock))
    sid = await first.subscriber("u", ["kv cache"], BERLIN)
    papers = [await kv_paper(first)]
    await first.close()
    destination = FakeDestination(clock=clock)
    second = Env(db_path, clock, destination)  # back on Thursday at 10:00 local
    try:
        papers.append(await kv_paper(second))
        report = await second.tick(utc(2026, 5, 7, 8, 0))
        # One skip straight to today: Sunday's digest (and the days after) are not sent late.
        assert (report.sent, report.skipped_stale) == (1, 1)
        assert await second.ledger(sid) == [
            row for row in await second.ledger(sid) if row["local_date"] == "2026-05-07"
        ]
        (delivered,) = destination.to(sid)
        assert delivered.local_date == "2026-05-07"
        assert sorted(delivered.paper_ids) == sorted(papers)
    finally:
        await second.close()


# -- restarts between claim and send ---------------------------------------------------------------


async def test_restart_between_claim_and_send_sends_exactly_once(db_path: Path) -> None:
    clock = FakeClock(utc(2026, 5, 4, 5, 0))
    crashing = FakeDestination(clock=clock)
    first = Env(db_path, clock, crashing)
    sid = await first.subscriber("u", ["kv cache"], BERLIN)
    planned = await kv_paper(first)
    crashing.crash(sid)
    with pytest.raises(SimulatedCrash):
        await first.tick(utc(2026, 5, 4, 7, 0))
    (row,) = await first.ledger(sid)
    assert (row["status"], row["attempts"], row["message_id"]) == ("claimed", 1, None)
    await first.close()

    clock.set(utc(2026, 5, 4, 7, 5))
    destination = FakeDestinationWithoutLookup(clock=clock)  # cannot ask the platform
    second = Env(db_path, clock, destination)
    try:
        await kv_paper(second)  # seen after the claim: belongs to tomorrow's digest
        report = await second.tick()
        assert (report.recovered, report.sent) == (1, 1)
        (delivered,) = destination.to(sid)
        assert delivered.paper_ids == (planned,)
        assert delivered.key == ledger_key(sid, date(2026, 5, 4))
        (row,) = await second.ledger(sid)
        assert (row["status"], row["message_id"], row["attempts"]) == ("sent", "console-msg-1", 2)
        for minutes in (1, 60, 600):
            await second.tick(utc(2026, 5, 4, 7, 5) + timedelta(minutes=minutes))
        assert len(destination.delivered) == 1
    finally:
        await second.close()


async def test_restart_after_the_platform_got_it_marks_sent_without_resending(
    db_path: Path,
) -> None:
    clock = FakeClock(utc(2026, 5, 4, 5, 0))
    platform = FakeDestination(clock=clock)  # the platform's own memory survives our restart
    first = Env(db_path, clock, platform)
    sid = await first.subscriber("u", ["kv cache"], BERLIN)
    pid = await kv_paper(first)
    platform.crash(sid, after_send=True)
    with pytest.raises(SimulatedCrash):
        await first.tick(utc(2026, 5, 4, 7, 0))
    await first.close()
    assert len(platform.delivered) == 1

    second = Env(db_path, clock, platform)
    try:
        report = await second.tick(utc(2026, 5, 4, 7, 1))
        assert (report.recovered, report.sent) == (1, 0)
        assert platform.calls == 1
        (row,) = await second.ledger(sid)
        assert (row["status"], row["message_id"]) == ("sent", platform.delivered[0].message_id)
        assert json.loads(row["paper_ids"]) == [pid]
        assert await second.tick(utc(2026, 5, 4, 8, 0)) == TickReport()
    finally:
        await second.close()


async def test_a_failing_lookup_waits_instead_of_risking_a_second_post(db_path: Path) -> None:
    clock = FakeClock(utc(2026, 5, 4, 5, 0))
    platform = FakeDestination(clock=clock)
    first = Env(db_path, clock, platform)
    sid = await first.subscriber("u", ["kv cache"], BERLIN)
    await kv_paper(first)
    platform.crash(sid, after_send=True)
    with pytest.raises(SimulatedCrash):
        await first.tick(utc(2026, 5, 4, 7, 0))
    await first.close()

    platform.fail_lookups(1)
    second = Env(db_path, clock, platform)
    try:
        report = await second.tick(utc(2026, 5, 4, 7, 1))
        assert (report.retrying, report.sent) == (1, 0)
        # The failed look-up is the first failure: the next try comes a minute later.
        assert await second.tick(utc(2026, 5, 4, 7, 1, 30)) == TickReport()
        report = await second.tick(utc(2026, 5, 4, 7, 2))
        assert (report.recovered, report.sent) == (1, 0)
        assert platform.calls == 1
        assert (await second.ledger(sid))[0]["status"] == "sent"
    finally:
        await second.close()


async def test_a_claim_left_over_from_a_past_local_day_is_not_sent_late(db_path: Path) -> None:
    clock = FakeClock(utc(2026, 5, 4, 5, 0))
    crashing = FakeDestination(clock=clock)
    first = Env(db_path, clock, crashing)
    sid = await first.subscriber("u", ["kv cache"], BERLIN)
    monday = await kv_paper(first)
    crashing.crash(sid)
    with pytest.raises(SimulatedCrash):
        await first.tick(utc(2026, 5, 4, 7, 0))
    await first.close()

    destination = FakeDestination(clock=clock)
    second = Env(db_path, clock, destination)  # back on Tuesday 06:00 local
    try:
        report = await second.tick(utc(2026, 5, 5, 4, 0))
        assert (report.recovered, report.skipped_stale, report.sent) == (1, 1, 0)
        (row,) = await second.ledger(sid)
        assert (row["status"], row["error"]) == ("failed", "expired")
        await second.tick(utc(2026, 5, 5, 7, 0))
        (delivered,) = destination.to(sid)
        assert delivered.local_date == "2026-05-05"
        assert delivered.paper_ids == (monday,)
    finally:
        await second.close()


async def test_a_day_already_in_the_ledger_is_not_claimed_again(env: Env) -> None:
    # As if another run had finished the day but stopped before moving next_due_at on.
    sid = await env.subscriber("u", ["kv cache"], BERLIN)
    await kv_paper(env)

    def record_sent(store: Store) -> None:
        with store.conn:
            store.conn.execute(
                "INSERT INTO deliveries (subscriber_id, local_date, status, window_start, "
                "window_end, claimed_at, message_id) VALUES (?, '2026-05-04', 'sent', "
                "'2026-05-03T00:00:00+00:00', '2026-05-04T07:00:00+00:00', "
                "'2026-05-04T07:00:00+00:00', 'elsewhere')",
                [sid],
            )

    await env.do(record_sent)
    assert await env.tick(utc(2026, 5, 4, 7, 1)) == TickReport()
    assert env.destination.calls == 0
    assert (await env.get(sid)).next_due_at == utc(2026, 5, 5, 7, 0)


# -- failures --------------------------------------------------------------------------------------


async def test_an_undeliverable_destination_is_marked_and_not_retried(env: Env) -> None:
    gone = await env.subscriber("gone", ["kv cache"], BERLIN)
    fine = await env.subscriber("fine", ["kv cache"], BERLIN)
    lost = await kv_paper(env)
    env.destination.make_gone(gone, "DMs are closed")
    report = await env.tick(utc(2026, 5, 4, 7, 0))
    assert (report.failed, report.sent) == (1, 1)
    assert (await env.get(gone)).undeliverable == "DMs are closed"
    (row,) = await env.ledger(gone)
    assert (row["status"], row["error"]) == ("failed", "destination gone: DMs are closed")
    calls = env.destination.calls
    for day in (4, 5, 6):
        env.clock.set(utc(2026, 5, day, 6, 0))
        await kv_paper(env)
        for hour in (7, 8, 20):
            await env.tick(utc(2026, 5, day, hour, 0))
    assert env.destination.calls == calls + 2  # only "fine", on Tuesday and Wednesday
    assert [d.local_date for d in env.destination.to(fine)] == [
        "2026-05-04",
        "2026-05-05",
        "2026-05-06",
    ]
    assert len(await env.ledger(gone)) == 1

    # They come back (a command clears the mark): the papers of the failed day are not lost.
    env.destination.reopen(gone)
    await env.do(lambda s: Subscriptions(s).clear_undeliverable(gone))
    await env.tick(utc(2026, 5, 7, 7, 0))
    (delivered,) = env.destination.to(gone)
    assert lost in delivered.paper_ids


async def test_a_transient_failure_is_retried_with_backoff_and_sent_once(env: Env) -> None:
    sid = await env.subscriber("u", ["kv cache"], BERLIN)
    await kv_paper(env)
    env.destination.fail_transiently(sid, times=2)
    assert (await env.tick(utc(2026, 5, 4, 7, 0))).retrying == 1
    (row,) = await env.ledger(sid)
    assert (row["status"], row["attempts"]) == ("claimed", 1)
    assert "503" in row["error"]
    assert parse_utc(row["retry_at"]) == utc(2026, 5, 4, 7, 1)
    assert await env.tick(utc(2026, 5, 4, 7, 0, 30)) == TickReport()
    assert (await env.tick(utc(2026, 5, 4, 7, 1))).retrying == 1
    assert parse_utc((await env.ledger(sid))[0]["retry_at"]) == utc(2026, 5, 4, 7, 3)
    assert await env.tick(utc(2026, 5, 4, 7, 2)) == TickReport()
    report = await env.tick(utc(2026, 5, 4, 7, 3))
    assert (report.recovered, report.sent) == (1, 1)
    assert len(env.destination.to(sid)) == 1
    (row,) = await env.ledger(sid)
    assert (row["status"], row["attempts"], row["retry_at"]) == ("sent", 3, None)


async def test_a_destination_that_keeps_failing_is_given_up_and_papers_roll_over(
    env: Env,
) -> None:
    sid = await env.subscriber("u", ["kv cache"], BERLIN)
    monday = await kv_paper(env)
    env.destination.fail_transiently(sid, times=1000)
    failed = 0
    moment = utc(2026, 5, 4, 7, 0)
    while moment < utc(2026, 5, 4, 9, 0):
        failed += (await env.tick(moment)).failed
        moment += timedelta(minutes=1)
    assert failed == 1
    assert env.destination.calls == MAX_ATTEMPTS
    (row,) = await env.ledger(sid)
    assert row["status"] == "failed"
    assert row["error"].startswith(f"gave up after {MAX_ATTEMPTS}")
    assert (await env.get(sid)).undeliverable is None  # transient: not marked gone
    env.destination.fail_transiently(sid, times=0)
    await env.tick(utc(2026, 5, 5, 7, 0))
    (delivered,) = env.destination.to(sid)
    assert monday in delivered.paper_ids


async def test_many_subscribers_are_each_sent_exactly_once(env: Env) -> None:
    ids = [await env.subscriber(f"user{i}", ["kv cache"], BERLIN) for i in range(25)]
    await kv_paper(env)
    report = await env.tick(utc(2026, 5, 4, 7, 0))
    assert report.sent == 25
    assert sorted(d.subscriber.id for d in env.destination.delivered) == sorted(ids)
    assert await env.tick(utc(2026, 5, 4, 7, 1)) == TickReport()


async def test_subscribers_on_platforms_without_a_destination_wait(env: Env) -> None:
    sid = await env.do(
        lambda s: add_subscriber(s, "U1", ["kv cache"], env.clock(), BERLIN, platform="slack").id
    )
    await kv_paper(env)
    assert await env.tick(utc(2026, 5, 4, 7, 0)) == TickReport()
    assert await env.ledger(sid) == []


def test_the_due_query_uses_the_next_due_index(store: Store) -> None:
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    store.subscribers.due(utc(2026, 5, 4, 7, 0), ["console", "slack"], 1000)
    store.conn.set_trace_callback(None)
    (sql,) = [s for s in statements if "FROM subscribers" in s]
    plan = store.conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
    text = " ".join(str(row[-1]) for row in plan)
    assert "idx_subscribers_next_due_at" in text
    assert "SCAN s " not in text + " "


async def _previews(env: Env, ids: list[int], now: datetime) -> dict[int, tuple[str, ...]]:
    """What each subscriber's digest would hold at `now`, built in one go."""
    return {sid: (await env.do(preview, await env.get(sid), now)).paper_ids for sid in ids}


async def test_batches_out_of_time_mid_digest_still_send_everyone_once_and_in_full(
    env: Env,
) -> None:
    # Every claim batch runs out of time after one unit of work (a paper loaded or analysed),
    # so digests are built across many store calls: none may be lost, doubled or cut short.
    ids = [await env.subscriber(f"user{i}", ["kv cache", "quantization"], BERLIN) for i in range(4)]
    kv = [await kv_paper(env) for _ in range(3)]
    await env.paper(_next_id(), "Post-training quantization of LLMs", "We quantize weights.")
    expected = await _previews(env, ids, utc(2026, 5, 4, 7, 0))
    assert all(set(kv) <= set(paper_ids) for paper_ids in expected.values())
    env.with_budget(Budget(seconds=-1.0, load_chunk=1, analyze_chunk=1))
    report = await env.tick(utc(2026, 5, 4, 7, 0))
    assert report.sent == 4
    sent = {d.subscriber.id: d.paper_ids for d in env.destination.delivered}
    assert sent == expected
    batches = env.runner.claim_batches
    assert batches > 10, batches  # cut short mid-digest, not only between subscribers
    assert await env.tick(utc(2026, 5, 4, 7, 1)) == TickReport()


async def test_a_topic_scored_only_when_it_fits_in_the_batch_still_sends_everyone_in_full(
    env: Env,
) -> None:
    # Scoring a topic's candidates cannot stop half-way, so a batch that has done some work
    # leaves a scoring that would overrun its budget to the next batch (here: every one).
    ids = [
        await env.subscriber(f"user{i}", ["kv cache", "quantization", "agents"], BERLIN)
        for i in range(3)
    ]
    kv = [await kv_paper(env) for _ in range(2)]
    await env.paper(_next_id(), "Post-training quantization of LLMs", "We quantize weights.")
    expected = await _previews(env, ids, utc(2026, 5, 4, 7, 0))
    assert all(set(kv) <= set(paper_ids) for paper_ids in expected.values())
    env.with_budget(Budget(score_seconds=3600.0))
    report = await env.tick(utc(2026, 5, 4, 7, 0))
    assert report.sent == 3
    assert {d.subscriber.id: d.paper_ids for d in env.destination.delivered} == expected
    batches = env.runner.claim_batches
    assert batches >= 3, batches  # one topic scored per batch
    assert await env.tick(utc(2026, 5, 4, 7, 1)) == TickReport()


def test_claim_batches_shrink_to_what_fits_their_budget_and_grow_back() -> None:
    # A batch of 100 that got through 26 before its budget ran out: the next loads ~33, not 100.
    budget = Budget()
    assert budget.next_batch_size(100, 26) == 33
    assert budget.next_batch_size(33, 33) == 66  # all of it fitted: double
    assert budget.next_batch_size(66, 80) == 100  # never above the batch size
    assert budget.next_batch_size(20, 0) == 8  # never below the minimum, so a tick moves on


# -- digests of several messages, and settling what a crash left uncertain ----------------------


async def three_papers(env: Env) -> list[str]:
    return [await kv_paper(env) for _ in range(3)]


async def bodies(env: Env, subscriber_id: int) -> int:
    """How many rendered messages the ledger keeps for this subscriber."""
    return await env.do(  # type: ignore[no-any-return]
        lambda s: s.conn.execute(
            "SELECT count(*) FROM digest_messages WHERE subscriber_id = ?", [subscriber_id]
        ).fetchone()[0]
    )


@pytest.mark.parametrize("after_send", [False, True], ids=["before-posting", "after-posting"])
async def test_a_digest_cut_between_its_messages_resumes_where_it_stopped(
    db_path: Path, after_send: bool
) -> None:
    clock = FakeClock(utc(2026, 5, 4, 5, 0))
    platform = FakeDestination(clock=clock, per_message=1)  # three papers: three messages
    first = Env(db_path, clock, platform)
    sid = await first.subscriber("u", ["kv cache"], BERLIN)
    await three_papers(first)
    platform.crash(sid, after_send=after_send, part=1)
    with pytest.raises(SimulatedCrash):
        await first.tick(utc(2026, 5, 4, 7, 0))
    (row,) = await first.ledger(sid)  # one message sent, the second in flight, three in all
    assert (row["parts"], row["sent_parts"], bool(row["sending_at"])) == (3, 1, True)
    assert await bodies(first, sid) == 3
    await first.close()

    second = Env(db_path, clock, platform)
    try:
        report = await second.tick(utc(2026, 5, 4, 7, 1))
        assert report.sent == 1 and platform.lookups == 1  # only the uncertain message
        posted = [(d.part, d.message_id) for d in platform.to(sid)]
        assert [part for part, _ in posted] == [0, 1, 2]  # each message once, in order
        (row,) = await second.ledger(sid)
        assert json.loads(row["message_ids"]) == [i for _, i in posted]  # every id, in order
        assert (row["status"], row["message_id"]) == ("sent", posted[0][1])
        assert (row["sent_parts"], row["sending_at"]) == (3, None)
        assert await bodies(second, sid) == 0  # a complete digest keeps only its ids
    finally:
        await second.close()


async def test_a_refused_post_is_sent_again_without_asking_the_platform(env: Env) -> None:
    sid = await env.subscriber("u", ["kv cache"], BERLIN)
    await kv_paper(env)
    assert isinstance(env.destination, FakeDestination)
    env.destination.fail_transiently(sid)  # the platform answered 503: certainly not posted
    report = await env.tick(utc(2026, 5, 4, 7, 0))
    assert (report.retrying, report.sent) == (1, 0)
    (row,) = await env.ledger(sid)
    assert (row["status"], row["sending_at"]) == ("claimed", None)  # certainly not out
    report = await env.tick(utc(2026, 5, 4, 7, 1))
    assert report.sent == 1 and env.destination.lookups == 0


class SlowLookups(FakeDestination):
    """A platform whose history answers only when released (Slack's Tier 1 wait)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.release = asyncio.Event()

    async def find_posted(
        self, subscriber: Subscriber, key: str, part: int, since: datetime, until: datetime
    ) -> str | None:
        await self.release.wait()
        return await super().find_posted(subscriber, key, part, since, until)


async def crash_while_posting(
    db_path: Path, clock: FakeClock, platform: FakeDestinationWithoutLookup, after_send: bool
) -> int:
    """A subscriber due at Monday 09:00 in Berlin whose digest's post "kills" the bot, before
    or after the platform took it; returns their id. The store is closed, as by a crash."""
    first = Env(db_path, clock, platform)
    sid = await first.subscriber("u", ["kv cache"], BERLIN)
    await kv_paper(first)
    platform.crash(sid, after_send=after_send)
    with pytest.raises(SimulatedCrash):
        await first.tick(utc(2026, 5, 4, 7, 0))
    await first.close()
    return sid


async def test_a_slow_look_up_holds_up_no_other_digest(db_path: Path) -> None:
    clock = FakeClock(utc(2026, 5, 4, 5, 0))
    platform = SlowLookups(clock)
    crashed = await crash_while_posting(db_path, clock, platform, after_send=True)

    second = Env(db_path, clock, platform)
    try:
        other = await second.subscriber("v", ["kv cache"], replace(BERLIN, digest_time="09:05"))
        report = await second.digests.tick(utc(2026, 5, 4, 7, 5))
        assert (report.looked_up, report.sent) == (1, 1)  # the look-up waits; the other is sent
        assert [d.subscriber.id for d in platform.delivered] == [crashed, other]
        # A tick while the look-up still waits leaves that digest alone.
        assert await second.digests.tick(utc(2026, 5, 4, 7, 6)) == TickReport()
        platform.release.set()
        settled = await second.digests.settle()
        assert (settled.recovered, settled.sent) == (1, 0)  # found: marked sent, not resent
        assert len(platform.to(crashed)) == 1
        assert (await second.ledger(crashed))[0]["status"] == "sent"
    finally:
        await second.close()


async def test_where_the_platform_cannot_tell_the_message_is_resent_and_that_is_said(
    db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(utc(2026, 5, 4, 5, 0))
    platform = FakeDestinationWithoutLookup(clock=clock)
    sid = await crash_while_posting(db_path, clock, platform, after_send=True)

    second = Env(db_path, clock, platform)
    try:
        report = await second.tick(utc(2026, 5, 4, 7, 1))
        assert report.sent == 1
        assert len(platform.to(sid)) == 2  # at least once: the one in flight went out twice
        warnings = [r for r in caplog.records if "at least once" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    finally:
        await second.close()


class SlowPosts(FakeDestination):
    """A platform whose posts take a while."""

    async def post(self, subscriber: Subscriber, body: str) -> str:
        await asyncio.sleep(0.3)
        return await super().post(subscriber, body)


async def test_a_graceful_stop_lets_the_sends_in_flight_finish_and_records_them(
    db_path: Path,
) -> None:
    clock = FakeClock(utc(2026, 5, 4, 5, 0))
    platform = SlowPosts(clock=clock)
    env = Env(db_path, clock, platform)
    ids = [await env.subscriber(f"u{n}", ["kv cache"], BERLIN) for n in range(20)]
    await kv_paper(env)
    clock.set(utc(2026, 5, 4, 7, 0))
    tick = asyncio.create_task(env.digests.tick())
    await asyncio.sleep(0.1)  # the first 8 posts are under way
    await env.digests.close()
    assert tick.done() and not tick.cancelled()
    sent = {d.subscriber.id for d in platform.delivered}
    assert len(sent) == 8  # the ones in flight finished; no new one started
    statuses = {sid: (await env.ledger(sid) or [{"status": None}])[0]["status"] for sid in ids}
    assert {s for sid, s in statuses.items() if sid in sent} == {"sent"}
    left = [row["sending_at"] for sid in ids for row in await env.ledger(sid)]
    assert left and not any(left)  # nothing left uncertain
    await env.close()

    later = Env(db_path, clock, platform)  # the next start sends the rest, nothing twice
    try:
        await later.tick(utc(2026, 5, 4, 7, 1))
        assert sorted(d.subscriber.id for d in platform.delivered) == sorted(ids)
    finally:
        await later.close()


async def test_a_digest_claimed_before_messages_were_recorded_is_looked_up_first(
    db_path: Path,
) -> None:
    clock = FakeClock(utc(2026, 5, 4, 5, 0))
    platform = FakeDestination(clock=clock)
    env = Env(db_path, clock, platform)
    try:
        sid = await env.subscriber("u", ["kv cache"], BERLIN)
        pid = await kv_paper(env)

        def claimed_by_an_older_version(store: Store) -> None:
            # What m010 makes of a row claimed before it: in flight since its claim.
            with store.conn:
                store.conn.execute(
                    "INSERT INTO deliveries (subscriber_id, local_date, status, window_start, "
                    "window_end, claimed_at, attempts, sending_at) "
                    "VALUES (?, '2026-05-04', 'claimed', ?, ?, ?, 1, ?)",
                    [sid, "2026-05-03T05:00:00Z", *["2026-05-04T07:00:00Z"] * 3],
                )

        await env.do(claimed_by_an_older_version)
        report = await env.tick(utc(2026, 5, 4, 7, 1))
        assert report.sent == 1 and platform.lookups == 1  # not found, so built and sent
        (delivered,) = platform.to(sid)
        assert delivered.paper_ids == (pid,)
    finally:
        await env.close()


async def test_what_next_promises_is_when_the_tick_sends(db_path: Path) -> None:
    """The two rules of docs/digests.md, seen from the digest tick: subscribing waits for the
    next digest time; moving the time earlier than now sends today's digest at once."""
    clock = FakeClock(utc(2026, 5, 5, 14, 52))  # Tuesday 16:52 in Berlin
    env = Env(db_path, clock, FakeDestination(clock=clock))
    try:
        new = await env.subscriber("new", ["kv cache"], replace(BERLIN, digest_time="07:30"))
        await kv_paper(env)
        assert (await env.tick()).sent == 0  # 07:30 today was before they subscribed
        assert (await env.get(new)).next_due_at is not None
        clock.set(utc(2026, 5, 4, 12, 0))  # Monday: another subscriber, daily at 18:00
        old = await env.subscriber("old", ["kv cache"], replace(BERLIN, digest_time="18:00"))
        clock.set(utc(2026, 5, 5, 14, 52))

        def move_to_0730(store: Store) -> None:
            subs = Subscriptions(store)
            subscriber = subs.get(old)
            subs.update_settings(subscriber, replace(BERLIN, digest_time="07:30"), clock())

        await env.do(move_to_0730)
        report = await env.tick()
        assert report.sent == 1 and [d.subscriber.id for d in env.destination.delivered] == [old]
    finally:
        await env.close()


async def test_each_subscription_is_sent_what_its_reader_taught_it(env: Env) -> None:
    from tests.test_learning import PAPERS

    examples = {p.id: p for p in PAPERS}
    env.clock.set(utc(2026, 5, 1, 12, 0))  # days before: outside every first window
    for paper in PAPERS:
        if not paper.id.startswith("fl-"):
            await env.paper(paper.id, paper.title, paper.summary)
    for paper_id in ("fl-phone", "fl-hospital"):
        await env.paper(paper_id, examples[paper_id].title, examples[paper_id].summary)
    env.clock.set(utc(2026, 5, 4, 5, 0))
    ann = await env.subscriber("ann", ["federated learning"], BERLIN)
    bob = await env.subscriber("bob", ["federated learning"], BERLIN)

    def teach(store: Store) -> int:
        subs = Subscriptions(store)
        (topic,) = store.subscribers.topics(ann)
        marked = store.papers.get_many(["fl-phone", "fl-hospital"])
        subs.record(topic, marked["fl-phone"], True, "ann", env.clock())
        subs.record(topic, marked["fl-hospital"], False, "ann", env.clock())
        return topic.id

    ann_topic = await env.do(teach)
    for paper_id in ("fl-phone-2", "fl-hospital-2"):  # new today
        await env.paper(paper_id, examples[paper_id].title, examples[paper_id].summary)
    await env.tick(utc(2026, 5, 4, 7, 0))
    (to_ann,) = env.destination.to(ann)
    (to_bob,) = env.destination.to(bob)
    assert to_ann.paper_ids == ("fl-phone-2",)  # admitted: like the paper ann marked relevant
    assert to_bob.paper_ids == ("fl-hospital-2",)  # bob taught nothing: words alone
    (section,) = to_ann.digest.sections
    assert section.topic_id == ann_topic
    assert "that you marked relevant" in section.cards[0].why
