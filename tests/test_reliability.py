"""The product's promises under stress, against the real `paperbot run` process.

The bot runs as a subprocess over a database file, with Slack pointed at a fake Web API in this
process (127.0.0.1 only). `slow` tests: kill-and-restart 50 times, and a load test.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import random
import signal
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientSession, ClientTimeout, web

from benchmarks.corpus import synthetic_papers
from bot.importer import import_files
from bot.models import DigestSettings
from bot.storage import Store
from tests.conftest import SEED, SLACK_TEST_SIGNING_SECRET, SLACK_TEST_TOKEN
from tests.fakes.core import add_subscriber
from tests.fakes.slack import FakeSlack, manifest_scopes

BIN = Path(sys.executable).parent


class SlackPlatform(FakeSlack):
    """The strict fake Slack (scopes of the manifest; Tier 1 history when asked), and a fake
    Hugging Face on the same server."""

    def __init__(self, hf_delay: float = 0.0, **options: Any) -> None:
        super().__init__(**options)
        self.hf_delay = hf_delay
        self.hf_requests = 0
        self.hf_pages: dict[str, list[dict[str, Any]]] = {}
        self.app.router.add_get("/hf/api/daily_papers", self.daily)

    async def daily(self, request: web.Request) -> web.Response:
        self.hf_requests += 1
        await asyncio.sleep(self.hf_delay)
        items = self.hf_pages.get(request.query["date"], [])
        page, size = int(request.query.get("p", 0)), int(request.query["limit"])
        return web.json_response(items[page * size : (page + 1) * size])

    def parts(self) -> dict[str, int]:
        """How many messages each digest (by ledger key) says it has."""
        return {
            p["metadata"]["event_payload"]["key"]: int(p["metadata"]["event_payload"]["parts"])
            for p in self.delivered
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_env(
    db: Path, platform: SlackPlatform, port: int, history_interval: float = 60.0
) -> dict[str, str]:
    return {
        **os.environ,
        "PAPERBOT_DB": str(db),
        "PAPERBOT_HTTP_HOST": "127.0.0.1",
        "PAPERBOT_HTTP_PORT": str(port),
        "PAPERBOT_HF_API_URL": platform.url + "hf/api",
        "PAPERBOT_ARXIV_API_URL": "http://127.0.0.1:9/api/query",  # nothing listens there
        "PAPERBOT_LOG_LEVEL": "WARNING",
        "SLACK_BOT_TOKEN": SLACK_TEST_TOKEN,
        "SLACK_SIGNING_SECRET": SLACK_TEST_SIGNING_SECRET,
        "SLACK_API_URL": platform.url + "api/",
        "SLACK_HISTORY_INTERVAL_SECONDS": str(history_interval),
        "SLACK_APP_TOKEN": "",
        "DISCORD_TOKEN": "",
    }


async def start_bot(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(BIN / "paperbot"),
        "run",
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


def seeded_db(path: Path, now: datetime) -> None:
    store = Store.open(path)
    import_files(store, [SEED], now - timedelta(hours=2))
    store.close()


# Topics broad enough to fill a digest of 40 papers: several Slack messages.
BROAD = ["LLM", "diffusion", "reinforcement learning", "benchmark"]


def add_due(path: Path, first: int, count: int, now: datetime, long_every: int = 0) -> list[int]:
    """Add subscribers whose digest is due now; returns their ids. Every `long_every`-th one
    gets a digest of up to 40 papers on broad topics (several messages)."""
    store = Store.open(path)
    due = max(now - timedelta(seconds=30), now.replace(hour=0, minute=0, second=0))
    ids = []
    for n in range(first, first + count):
        long = bool(long_every) and n % long_every == 0
        settings = DigestSettings(max_papers=40 if long else 3)
        subscriber = add_subscriber(
            store, f"U{n}", BROAD if long else ["MoE"], now - timedelta(days=1), settings,
            platform="slack",
        )  # fmt: skip
        store.subscribers.set_next_due(subscriber.id, due)
        ids.append(subscriber.id)
    store.close()
    return ids


def ledger(path: Path) -> dict[int, str]:
    store = Store.open(path)
    rows = dict(store.conn.execute("SELECT subscriber_id, status FROM deliveries").fetchall())
    store.close()
    return rows


def ledger_messages(path: Path) -> dict[str, list[str]]:
    """Each sent digest's message ids, by ledger key, in order."""
    store = Store.open(path)
    rows = store.conn.execute(
        "SELECT subscriber_id, local_date, message_ids FROM deliveries WHERE status = 'sent'"
    ).fetchall()
    store.close()
    return {f"{sid}:{day}": json.loads(ids) for sid, day, ids in rows}


@dataclass
class Restarts:
    """What `restart_at_random` did."""

    db: Path
    everyone: list[int] = field(default_factory=list)
    stops: list[tuple[int | None, str]] = field(default_factory=list)  # (exit code, stderr)
    kills: int = 0
    kills_during_sends: int = 0
    elapsed: float = 0.0


async def restart_at_random(
    tmp_path: Path, platform: SlackPlatform, rounds: int, history_interval: float
) -> Restarts:
    """`rounds` times: add 10 due subscribers (every third with a digest of several messages),
    start the bot, stop it after a random 0.5-4.5 s (every fifth time with SIGTERM, else
    SIGKILL). Then one last start runs until every digest is complete, and is stopped."""
    run = Restarts(tmp_path / "paperbot.db")
    seeded_db(run.db, datetime.now(UTC))
    env = bot_env(run.db, platform, free_port(), history_interval=history_interval)
    rng = random.Random(50)
    started = time.monotonic()
    for round_ in range(rounds):
        run.everyone += add_due(run.db, round_ * 10, 10, datetime.now(UTC), long_every=3)
        before = len(platform.delivered)
        bot = await start_bot(env)
        # Start-up takes ~2 s; 10 digests (some of 3-4 messages), 8 at a time, ~4 s more.
        graceful = round_ % 5 == 4
        if graceful:
            # A deploy stops a bot that is running: a SIGTERM before Python has even imported
            # it (0.8 s, several on a loaded machine) ends it as Python does, with nothing begun.
            calls = len(platform.calls)
            deadline = time.monotonic() + 30
            while len(platform.calls) == calls and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0.0, 3.5))
        else:
            await asyncio.sleep(rng.uniform(0.5, 4.5))
        if graceful:
            bot.send_signal(signal.SIGTERM)  # a graceful stop, as in a deploy
            _, err = await bot.communicate()
            run.stops.append((bot.returncode, err.decode()))
        else:
            bot.kill()  # SIGKILL: no cleanup, whatever it was doing
            await bot.wait()
            run.kills += 1
        # Mid-run: this run had posted some messages and others were still to go.
        mid = len(platform.delivered) > before and len(platform.parts()) < len(run.everyone)
        run.kills_during_sends += mid
    bot = await start_bot(env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        parts = platform.parts()
        if len(parts) == len(run.everyone) and set(platform.keys()) >= {
            (key, n) for key, count in parts.items() for n in range(count)
        }:
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.5)  # anything still going would show up as a duplicate
    bot.send_signal(signal.SIGTERM)
    _, err = await bot.communicate()
    run.stops.append((bot.returncode, err.decode()))
    run.elapsed = time.monotonic() - started
    return run


def assert_complete_and_clean(platform: SlackPlatform, run: Restarts) -> None:
    """Nobody missed, every digest complete and `sent`, every graceful stop clean."""
    keys, parts = platform.keys(), platform.parts()
    today = {key.split(":")[1] for key in parts}
    assert len(today) <= 2  # one local date (two if the test ran across midnight UTC)
    assert sorted(int(k.split(":")[0]) for k in parts) == sorted(run.everyone)  # nobody missed
    for key, count in parts.items():  # every digest complete
        assert {part for k, part in keys if k == key} == set(range(count)), key
    statuses = ledger(run.db)
    assert set(statuses) == set(run.everyone) and set(statuses.values()) == {"sent"}
    for code, err in run.stops:  # graceful stops: exit 0, no error line, no traceback
        assert code == 0 and "ERROR" not in err and "Traceback" not in err, err[-2000:]


def summary(platform: SlackPlatform, run: Restarts) -> str:
    keys, parts = platform.keys(), platform.parts()
    multi = sum(1 for n in parts.values() if n > 1)
    limited = sum(1 for r in platform.refused if r[1] == "ratelimited")
    return (
        f"{len(run.stops) + run.kills - 1} restarts ({run.kills} SIGKILL, "
        f"{len(run.stops) - 1} SIGTERM), {run.kills_during_sends} mid-run; "
        f"{len(run.everyone)} digests ({multi} of several messages), {len(keys)} messages, "
        f"{sum(keys.values()) - len(keys)} posted twice; "
        f"{len(platform.of('conversations.history'))} history calls ({limited} answered 429); "
        f"{run.elapsed:.0f} s"
    )


# Slack's Tier 1 (one conversations.history call a minute) with the minute shortened to this,
# on the fake and in the bot alike, so 50 restarts' look-ups fit in a test run.
TIER1_SECONDS = 0.5


@pytest.mark.slow
@pytest.mark.parametrize("tier1", [False, True], ids=["manifest-scopes", "tier1-history"])
async def test_kills_and_stops_at_random_moments_lose_and_repeat_nothing(
    tmp_path: Path, tier1: bool
) -> None:
    """50 restarts, mostly SIGKILL and some SIGTERM, against a Slack that enforces the manifest's
    scopes (and Tier 1 history): every message of every digest posted exactly once."""
    platform = SlackPlatform(post_delay=1.0, tier1_interval=TIER1_SECONDS if tier1 else None)
    await platform.server.start_server()
    try:
        run = await restart_at_random(tmp_path, platform, 50, TIER1_SECONDS if tier1 else 0.0)
    finally:
        await platform.server.close()
    print(f"\n{'Tier 1 history' if tier1 else 'manifest scopes'}: {summary(platform, run)}")
    assert_complete_and_clean(platform, run)
    keys = platform.keys()
    assert set(keys.values()) == {1}, [k for k, n in keys.items() if n > 1]  # nothing twice
    # The ledger keeps every message's id, in order, as Slack gave them.
    ts_of = {
        (p["metadata"]["event_payload"]["key"], p["metadata"]["event_payload"]["part"]): p["ts"]
        for p in platform.delivered
    }
    for key, ids in ledger_messages(run.db).items():
        assert ids == [ts_of[(key, n)] for n in range(platform.parts()[key])], key
    assert not [r for r in platform.refused if r[1] == "missing_scope"]
    assert run.kills_during_sends >= 5  # the kills did land inside digest runs
    assert sum(1 for n in platform.parts().values() if n > 1) >= 20


@pytest.mark.slow
async def test_without_the_history_scopes_a_crash_repeats_only_what_was_in_flight(
    tmp_path: Path,
) -> None:
    """An app installed without `im:history`: at least once. Nothing lost, and only messages
    in flight at a kill (at most 8, the send concurrency) are posted again."""
    platform = SlackPlatform(post_delay=1.0, scopes=manifest_scopes() - {"im:history"})
    await platform.server.start_server()
    try:
        run = await restart_at_random(tmp_path, platform, 15, 0.0)
    finally:
        await platform.server.close()
    print(f"\nwithout im:history: {summary(platform, run)}")
    assert_complete_and_clean(platform, run)
    twice = sum(platform.keys().values()) - len(platform.keys())
    assert twice <= 8 * run.kills
    assert ("conversations.history", "missing_scope") in platform.refused
    # Each start says which promise holds, once; a process that had to resend says why, once.
    for _, err in run.stops:
        assert err.count("slack digests are at least once: the token lacks im:history") == 1
        assert err.count("digests on slack are at least once") <= 1
    assert any("digests on slack are at least once" in err for _, err in run.stops)


@pytest.mark.parametrize("moment", ["start-up", "ingest", "digest run"])
async def test_sigterm_at_any_moment_exits_0_without_an_error_line(
    tmp_path: Path, moment: str
) -> None:
    """During start-up (its first call to Slack), during the first ingest (Hugging Face answers
    slowly) and during a digest run: exit 0, no ERROR line, no traceback, nothing half-sent."""
    platform = SlackPlatform(hf_delay=3.0, post_delay=0.5)
    await platform.server.start_server()
    db = tmp_path / "paperbot.db"
    seeded_db(db, datetime.now(UTC))
    add_due(db, 0, 10, datetime.now(UTC))
    env = {**bot_env(db, platform, free_port()), "PAPERBOT_LOG_LEVEL": "INFO"}
    reached = {
        "start-up": lambda: platform.calls,
        "ingest": lambda: platform.hf_requests,
        "digest run": lambda: platform.delivered,
    }[moment]
    try:
        bot = await start_bot(env)
        deadline = time.monotonic() + 30
        while not reached() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert reached(), f"the bot never reached its {moment}"
        bot.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(bot.communicate(), 30)
    finally:
        await platform.server.close()
    text = err.decode()
    assert bot.returncode == 0, text[-3000:]
    assert " ERROR " not in text and "Traceback" not in text, text[-3000:]
    store = Store.open(db)
    uncertain = store.conn.execute(
        "SELECT count(*) FROM deliveries WHERE sending_at IS NOT NULL"
    ).fetchone()[0]
    store.close()
    assert uncertain == 0  # posts in flight were let finish and recorded


# -- load ----------------------------------------------------------------------------------------


def signed(body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    mac = hmac.new(SLACK_TEST_SIGNING_SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={mac.hexdigest()}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def lookup(platform: SlackPlatform, text: str, n: int) -> str:
    return urlencode(
        {
            "command": "/papers",
            "text": text,
            "user_id": f"L{n % 50}",
            "channel_id": "C1",
            "team_id": "T1",
            "response_url": platform.url + "respond",
            "trigger_id": "t",
        }
    )


def hf_pages(now: datetime, count: int, days: int) -> dict[str, list[dict[str, Any]]]:
    papers = list(synthetic_papers(count, seed=9, id_offset=700_000))
    per_day = count // days
    return {
        (now.date() - timedelta(days=d)).isoformat(): [
            {"paper": {"id": p.id, "title": p.title, "summary": p.summary,
                       "authors": [{"name": a} for a in p.authors]}}
            for p in papers[d * per_day : (d + 1) * per_day]
        ]
        for d in range(days)
    }  # fmt: skip


@pytest.mark.slow
async def test_100_lookups_a_second_for_30_s_during_a_digest_run_and_an_ingest(
    tmp_path: Path,
) -> None:
    platform = SlackPlatform()
    now = datetime.now(UTC)
    platform.hf_pages = hf_pages(now, 10_000, 7)
    await platform.server.start_server()
    db = tmp_path / "paperbot.db"
    seeded_db(db, now)
    add_due(db, 0, 2000, now)
    port = free_port()
    bot = await start_bot(bot_env(db, platform, port))
    url = f"http://127.0.0.1:{port}/slack/events"
    topics = ["kv-cache", "MoE", "diffusion", "PEFT", "speculative decoding", "RLHF"]
    latencies: list[float] = []
    failures: list[str] = []
    try:
        async with ClientSession(timeout=ClientTimeout(total=10)) as session:
            for _ in range(100):  # the bot is up once its HTTP port answers
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz"):
                        break
                except OSError:
                    await asyncio.sleep(0.1)

            async def one(n: int) -> None:
                body = lookup(platform, topics[n % len(topics)], n)
                started = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=signed(body)) as response:
                        await response.read()
                        if response.status != 200:
                            failures.append(f"HTTP {response.status}")
                except Exception as exc:  # a refused or timed-out request is the finding
                    failures.append(repr(exc))
                    return
                latencies.append(time.perf_counter() - started)

            tasks = []
            start = time.perf_counter()
            for n in range(3000):  # 100 per second for 30 s, on a fixed schedule
                await asyncio.sleep(max(0.0, start + n / 100 - time.perf_counter()))
                tasks.append(asyncio.create_task(one(n)))
            await asyncio.gather(*tasks)
        digests_during = len(platform.delivered)
    finally:
        bot.send_signal(signal.SIGTERM)
        await bot.wait()
        await platform.server.close()
    p50 = statistics.median(latencies)
    p99 = sorted(latencies)[int(len(latencies) * 0.99) - 1]
    print(
        f"\nload: {len(latencies)} acked, p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms; {digests_during} digests sent meanwhile"
    )
    assert not failures, failures[:5]
    assert len(latencies) == 3000 and max(latencies) < 3.0
    assert digests_during > 0  # the digest run really overlapped the load
