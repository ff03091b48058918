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
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientSession, ClientTimeout, web
from aiohttp.test_utils import TestServer

from benchmarks.corpus import synthetic_papers
from bot.importer import import_files
from bot.models import DigestSettings
from bot.store import Store
from bot.subscriptions import Subscriptions
from bot.testing import add_subscriber
from tests.conftest import SEED, SLACK_TEST_SIGNING_SECRET, SLACK_TEST_TOKEN
from tests.test_slack_app import api_params

BIN = Path(sys.executable).parent


class SlackPlatform:
    """A fake Slack Web API: posts take `post_delay` seconds; history keeps their metadata."""

    def __init__(self, post_delay: float = 0.0) -> None:
        self.post_delay = post_delay
        self.posts: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []
        self.hf_pages: dict[str, list[dict[str, Any]]] = {}
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self.api)
        app.router.add_post("/respond", self.respond)
        app.router.add_get("/hf/api/daily_papers", self.daily)
        self.server = TestServer(app, host="127.0.0.1", port=0)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/"))

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        data = await api_params(request)
        if method == "conversations.open":
            return web.json_response({"ok": True, "channel": {"id": f"D{data['users']}"}})
        if method == "chat.postMessage":
            await asyncio.sleep(self.post_delay)
            metadata = data.get("metadata")
            metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
            self.posts.append({"channel": data["channel"], "metadata": metadata})
            return web.json_response({"ok": True, "ts": f"{len(self.posts)}.0"})
        if method == "conversations.history":
            messages = [
                {"ts": f"{n + 1}.0", "metadata": p["metadata"]}
                for n, p in enumerate(self.posts)
                if p["channel"] == data["channel"]
            ]
            return web.json_response({"ok": True, "messages": messages[::-1]})
        if method == "auth.test":
            return web.json_response({"ok": True, "user_id": "UBOT", "team_id": "T1"})
        return web.json_response({"ok": True})

    async def respond(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.json_response({"ok": True})

    async def daily(self, request: web.Request) -> web.Response:
        items = self.hf_pages.get(request.query["date"], [])
        page, size = int(request.query.get("p", 0)), int(request.query["limit"])
        return web.json_response(items[page * size : (page + 1) * size])

    def keys(self) -> Counter[str]:
        """How many times each digest (by ledger key) was posted."""
        return Counter(p["metadata"]["event_payload"]["key"] for p in self.posts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bot_env(db: Path, platform: SlackPlatform, port: int) -> dict[str, str]:
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


def add_due(path: Path, first: int, count: int, now: datetime) -> list[int]:
    """Add subscribers whose digest is due now; returns their ids."""
    store = Store.open(path)
    subs = Subscriptions(store)
    due = max(now - timedelta(seconds=30), now.replace(hour=0, minute=0, second=0))
    ids = []
    for n in range(first, first + count):
        settings = DigestSettings(max_papers=3)
        subscriber = add_subscriber(
            store, f"U{n}", ["MoE"], now - timedelta(days=1), settings, platform="slack"
        )
        subs.set_next_due(subscriber.id, due)
        ids.append(subscriber.id)
    store.close()
    return ids


def ledger(path: Path) -> dict[int, str]:
    store = Store.open(path)
    rows = dict(store.conn.execute("SELECT subscriber_id, status FROM deliveries").fetchall())
    store.close()
    return rows


@pytest.mark.slow
async def test_sigkill_at_random_moments_50_times_loses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    platform = SlackPlatform(post_delay=1.0)
    await platform.server.start_server()
    db = tmp_path / "paperbot.db"
    now = datetime.now(UTC)
    seeded_db(db, now)
    env = bot_env(db, platform, free_port())
    rng = random.Random(50)
    everyone: list[int] = []
    kills_during_sends = 0
    try:
        for round_ in range(50):
            everyone += add_due(db, round_ * 10, 10, datetime.now(UTC))
            before = set(platform.keys())
            bot = await start_bot(env)
            # Start-up takes ~2 s; 10 posts of 1 s each, 8 at a time, take ~2 s more.
            await asyncio.sleep(rng.uniform(0.5, 4.5))
            bot.kill()  # SIGKILL: no cleanup, whatever it was doing
            await bot.wait()
            # Mid-run: this run had posted some digests and others were still to go.
            posted = set(platform.keys())
            kills_during_sends += bool(posted - before) and len(posted) < len(everyone)
        bot = await start_bot(env)
        deadline = time.monotonic() + 120
        while len(platform.keys()) < len(everyone) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # anything still going would show up as a duplicate
        bot.send_signal(signal.SIGTERM)
        await bot.wait()
    finally:
        await platform.server.close()
    keys = platform.keys()
    statuses = ledger(db)
    today = {p["metadata"]["event_payload"]["key"].split(":")[1] for p in platform.posts}
    assert len(today) <= 2  # one local date (two if the test ran across midnight UTC)
    assert sorted(int(k.split(":")[0]) for k in keys) == sorted(everyone)  # nobody missed
    assert set(keys.values()) == {1}  # nobody got one twice
    assert set(statuses) == set(everyone) and set(statuses.values()) == {"sent"}
    print(f"\n50 SIGKILLs, {kills_during_sends} mid-run; {len(everyone)} digests, each sent once")
    assert kills_during_sends >= 5  # the kills did land inside digest runs


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
        digests_during = len(platform.posts)
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
