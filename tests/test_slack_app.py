"""The Slack adapter against a local fake Web API server, with signed requests (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from adapters.slack_app import SlackAdapter, SlackDestination, web_client
from bot.errors import DestinationGone
from bot.importer import import_files
from bot.models import Digest, DigestSection, DigestSettings, PaperCard, Subscriber
from bot.runtime import StoreRunner
from bot.service import PaperBot
from bot.storage import Store
from tests.conftest import SEED, SLACK_TEST_SIGNING_SECRET, SLACK_TEST_TOKEN
from tests.fakes.slack import FakeSlack

SECRET = SLACK_TEST_SIGNING_SECRET
NOW = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
async def fake_slack():  # type: ignore[no-untyped-def]
    fake = FakeSlack()
    await fake.server.start_server()
    yield fake
    await fake.server.close()


@pytest.fixture
async def app_server(fake_slack: FakeSlack):  # type: ignore[no-untyped-def]
    store = Store.open(":memory:")
    import_files(store, [SEED], NOW)
    runner = StoreRunner(store)
    client = web_client(SLACK_TEST_TOKEN, fake_slack.url + "api/")
    adapter = SlackAdapter(PaperBot(runner, clock=lambda: NOW), client, SECRET)
    server = TestServer(adapter.app.web_app(path="/slack/events"), host="127.0.0.1", port=0)
    await server.start_server()
    yield server, runner
    await server.close()
    await runner.close()


def signed(body: str, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def command(fake: FakeSlack, text: str, user: str = "U1") -> str:
    return urlencode(
        {
            "command": "/papers",
            "text": text,
            "user_id": user,
            "channel_id": "C1",
            "team_id": "T1",
            "response_url": fake.url + "respond",
            "trigger_id": "t",
        }
    )


def button(fake: FakeSlack, action_id: str, value: str, user: str = "U1") -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "team": {"id": "T1"},
        "channel": {"id": "C1"},
        "response_url": fake.url + "respond",
        "actions": [{"action_id": action_id, "value": value, "type": "button"}],
        "trigger_id": "t",
        "api_app_id": "A1",
        "token": "x",
    }
    return urlencode({"payload": json.dumps(payload)})


async def post(server: TestServer, body: str, headers: dict[str, str]) -> int:
    url = server.make_url("/slack/events")
    async with ClientSession() as session, session.post(url, data=body, headers=headers) as r:
        return r.status


async def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_lookup_is_acked_and_answered_ephemerally(app_server, fake_slack: FakeSlack) -> None:  # type: ignore[no-untyped-def]
    server, _ = app_server
    body = command(fake_slack, "kv-cache")
    assert await post(server, body, signed(body)) == 200
    await wait_for(lambda: fake_slack.of("respond"))
    answer = fake_slack.of("respond")[0]
    assert answer["response_type"] == "ephemeral"
    text = json.dumps(answer["blocks"])
    assert "KV Cache" in text and "subscribe_topic" in text and "not_relevant" in text


async def test_papers_feed_is_answered_ephemerally_with_the_address(
    app_server, fake_slack: FakeSlack
) -> None:  # type: ignore[no-untyped-def]
    server, runner = app_server
    for text in ("subscribe MoE", "feed"):
        body = command(fake_slack, text)
        assert await post(server, body, signed(body)) == 200
    await wait_for(lambda: len(fake_slack.of("respond")) == 2)
    answer = fake_slack.of("respond")[1]
    assert answer["response_type"] == "ephemeral"
    text = json.dumps(answer["blocks"])
    (token,) = re.findall(r"/feeds/digests/([\w-]{43})\.atom", text)
    found = await runner.call(lambda s: s.subscribers.by_feed_token(token))
    assert (found.platform, found.workspace, found.address) == ("slack", "T1", "U1")
    assert "share_lookup" not in text  # no Share button, which would post it in the channel


async def test_forged_and_stale_requests_get_401_and_change_nothing(
    app_server, fake_slack: FakeSlack
) -> None:  # type: ignore[no-untyped-def]
    server, runner = app_server
    body = command(fake_slack, "subscribe MoE")
    assert await post(server, body, signed(body, secret="wrong")) == 401
    assert await post(server, body, signed(body, timestamp=int(time.time()) - 3600)) == 401
    count = await runner.call(lambda s: s.conn.execute("SELECT count(*) FROM topics").fetchone()[0])
    assert count == 0 and not fake_slack.of("respond")


async def test_channel_subscribe_needs_an_admin(app_server, fake_slack: FakeSlack) -> None:  # type: ignore[no-untyped-def]
    server, _runner = app_server
    body = command(fake_slack, "channel subscribe MoE", user="U1")
    await post(server, body, signed(body))
    await wait_for(lambda: fake_slack.of("respond"))
    assert "manage this channel" in json.dumps(fake_slack.of("respond")[0])
    body = command(fake_slack, "channel subscribe MoE", user="UADMIN")
    await post(server, body, signed(body))
    await wait_for(lambda: len(fake_slack.of("respond")) == 2)
    assert "Subscribed this channel" in json.dumps(fake_slack.of("respond")[1])


async def test_subscribe_button(app_server, fake_slack: FakeSlack) -> None:  # type: ignore[no-untyped-def]
    server, _runner = app_server
    body = button(fake_slack, "subscribe_topic", "kv-cache")
    assert await post(server, body, signed(body)) == 200
    await wait_for(lambda: fake_slack.of("respond"))
    assert "Subscribed to `kv-cache`" in json.dumps(fake_slack.of("respond")[0])


async def test_a_refused_app_token_stops_socket_mode_with_one_error_line(
    fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from aiohttp import web

    from adapters.slack_app import slack_adapter
    from bot.config import Settings
    from bot.health import Adapters, AdapterState

    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TEST_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-A1-refused")
    monkeypatch.setenv("SLACK_API_URL", fake_slack.url + "api/")
    fake_slack.errors["apps.connections.open"] = ["invalid_auth"]
    runner = StoreRunner(Store.open(":memory:"))
    adapters = Adapters()
    adapter = slack_adapter(Settings(), PaperBot(runner), adapters)
    assert not adapter.mount(web.Application())  # Socket Mode: no HTTP route
    await adapter.start()
    assert adapters.get("slack") == AdapterState("starting")
    await wait_for(lambda: (adapters.get("slack") or AdapterState("starting")).state == "failed")
    reason = adapters.get("slack").reason  # type: ignore[union-attr]
    assert reason.startswith("Slack refused SLACK_APP_TOKEN (invalid_auth): create an app-level")
    assert len(fake_slack.of("apps.connections.open")) == 1  # not retried
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"slack adapter stopped: {reason}"]
    await adapter.stop()
    await runner.close()


class FailingBot(PaperBot):
    """The core raising under a listener, after the ack."""

    async def run(self, caller: Any, command: Any) -> Any:
        raise RuntimeError("the store is on fire")


@pytest.fixture
async def failing_server(fake_slack: FakeSlack):  # type: ignore[no-untyped-def]
    runner = StoreRunner(Store.open(":memory:"))
    client = web_client(SLACK_TEST_TOKEN, fake_slack.url + "api/")
    adapter = SlackAdapter(FailingBot(runner, clock=lambda: NOW), client, SECRET)
    server = TestServer(adapter.app.web_app(path="/slack/events"), host="127.0.0.1", port=0)
    await server.start_server()
    yield server
    await server.close()
    await runner.close()


def error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    import logging

    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    ("payload", "listener"),
    [
        (lambda fake: command(fake, "kv-cache"), "command /papers"),
        (lambda fake: button(fake, "not_relevant", "2401.1"), "action not_relevant"),
    ],
)
async def test_a_failing_listener_answers_the_user_ephemerally_and_logs_once(
    failing_server, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture, payload, listener
) -> None:  # type: ignore[no-untyped-def]
    body = payload(fake_slack)
    assert await post(failing_server, body, signed(body)) == 200
    await wait_for(lambda: fake_slack.of("respond"))
    (answer,) = fake_slack.of("respond")
    assert answer["text"] == SlackAdapter.SORRY and answer["response_type"] == "ephemeral"
    assert answer["replace_original"] is False
    (line,) = error_lines(caplog)  # ours, instead of Bolt's own
    assert line == f"slack {listener} failed: RuntimeError('the store is on fire')"


async def test_a_failing_event_listener_is_logged_once(
    failing_server, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    event = {
        "type": "event_callback",
        "team_id": "T1",
        "api_app_id": "A1",
        "event_id": "Ev1",
        "event_time": int(time.time()),
        "event": {"type": "app_home_opened", "user": "U1", "tab": "home"},
    }
    body = json.dumps(event)
    headers = {**signed(body), "Content-Type": "application/json"}
    assert await post(failing_server, body, headers) == 200
    await wait_for(lambda: error_lines(caplog))
    assert error_lines(caplog) == [
        "slack event app_home_opened failed: RuntimeError('the store is on fire')"
    ]
    assert not fake_slack.of("respond")  # no response_url: nobody to answer


@pytest.mark.parametrize(
    ("sync", "state", "reason"),
    [
        ([(400, 50035)], "failed", "Discord refused the command sync (400, error 50035"),
        ([(503, 0)] * 100, "retrying", "command sync failed (DiscordServerError: 503"),
    ],
)
async def test_discord_failing_to_start_delays_and_stops_nothing(
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    sync: list[tuple[int, int]],
    state: str,
    reason: str,
) -> None:
    import asyncio
    import contextlib
    import socket

    import discord
    import yarl
    from discord.gateway import DiscordWebSocket

    from adapters import cli as cli_module
    from bot.config import Settings
    from tests.conftest import DISCORD_TEST_TOKEN
    from tests.fakes.discord import FakeDiscord

    discord_fake = FakeDiscord()
    await discord_fake.server.start_server()
    monkeypatch.setattr(discord.http.Route, "BASE", discord_fake.base)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(discord_fake.gateway_url))
    discord_fake.fail["sync"] = list(sync)
    monkeypatch.setattr(cli_module, "settle_gc", lambda: None)  # not in the test process
    store = Store.open(tmp_path / "paperbot.db")
    import_files(store, [SEED], NOW)  # not empty: no first ingest to wait for
    store.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        "PAPERBOT_DB": str(tmp_path / "paperbot.db"),
        "PAPERBOT_HTTP_HOST": "127.0.0.1",
        "PAPERBOT_HTTP_PORT": str(port),
        "PAPERBOT_HF_API_URL": "http://127.0.0.1:9/api",  # nothing listens there
        "PAPERBOT_ARXIV_API_URL": "http://127.0.0.1:9/api/query",
        "SLACK_BOT_TOKEN": SLACK_TEST_TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": fake_slack.url + "api/",
        "DISCORD_TOKEN": DISCORD_TEST_TOKEN,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    running = asyncio.create_task(cli_module._run(Settings()))

    async def health() -> dict[str, Any] | None:
        try:
            async with ClientSession() as session, session.get(base + "/healthz") as r:
                return dict(await r.json())
        except OSError:
            return None

    try:
        while (first := await health()) is None:
            assert time.monotonic() - started < 5 and not running.done()
            await asyncio.sleep(0.01)
        answered_after = time.monotonic() - started
        deadline = time.monotonic() + 5
        while (report := await health()) and report["adapters"]["discord"]["state"] != state:
            assert time.monotonic() < deadline, report
            await asyncio.sleep(0.05)
        assert report is not None and report["status"] == "degraded"
        assert report["adapters"]["slack"] == {"state": "ok"}
        assert report["adapters"]["discord"]["reason"].startswith(reason)
        assert any(line.startswith(f"discord: {state}: {reason}") for line in report["reasons"])
        async with ClientSession() as session, session.get(base + "/metrics") as r:
            metrics = await r.text()
        gauge = 'paperbot_adapter_state{adapter="discord",paperbot_adapter_state="%s"} 1.0'
        assert gauge % state in metrics and gauge % "ok" not in metrics
        body = command(fake_slack, "kv-cache")  # Slack answers all the while
        async with (
            ClientSession() as session,
            session.post(base + "/slack/events", data=body, headers=signed(body)) as r,
        ):
            assert r.status == 200
        await wait_for(lambda: fake_slack.of("respond"))
        assert "KV Cache" in json.dumps(fake_slack.of("respond")[0]["blocks"])
        assert not running.done()
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await discord_fake.server.close()
    assert first["status"] in ("ok", "degraded")
    assert answered_after < 2.0, answered_after


def digest(n: int) -> Digest:
    card = PaperCard(
        "2401.1", "A <b> & c", "https://arxiv.org/abs/2401.1", "A", None, 1, "S" * 500, "why", {}
    )
    return Digest(1, "2026-11-23", (DigestSection("kv cache", (card,) * n),))


def subscriber(kind: str = "user", address: str = "U1") -> Subscriber:
    return Subscriber(1, "slack", kind, address, "T1", DigestSettings(), NOW)


async def deliver(destination: SlackDestination, to: Subscriber, whole: Digest, key: str) -> str:
    """Post every message of a digest, as the digest runner does; the first message's ts."""
    ids = [await destination.post(to, body) for body in destination.render(whole, key)]
    return ids[0]


async def test_dm_digest_opens_a_conversation_and_retries_429(fake_slack: FakeSlack) -> None:
    fake_slack.errors["chat.postMessage"] = [429]
    destination = SlackDestination(web_client(SLACK_TEST_TOKEN, fake_slack.url + "api/"))
    ts = await deliver(destination, subscriber(), digest(3), "1:2026-11-23")
    assert ts
    assert fake_slack.of("conversations.open")[0]["users"] == "U1"
    posts = fake_slack.of("chat.postMessage")
    assert len(posts) == 2 and posts[-1]["channel"] == "DU1"  # one 429, then success
    assert "&lt;b&gt; &amp; c" in json.dumps(posts[-1]["blocks"])


async def test_gone_channel_raises_destination_gone(fake_slack: FakeSlack) -> None:
    fake_slack.errors["chat.postMessage"] = ["channel_not_found"]
    destination = SlackDestination(web_client(SLACK_TEST_TOKEN, fake_slack.url + "api/"))
    with pytest.raises(DestinationGone, match="channel_not_found"):
        await deliver(destination, subscriber("channel", "C9"), digest(1), "1:2026-11-23")


async def test_app_home_shows_topics_and_refreshes_after_subscribe(
    app_server, fake_slack: FakeSlack
) -> None:  # type: ignore[no-untyped-def]
    server, _runner = app_server
    body = command(fake_slack, "subscribe LoRA")
    await post(server, body, signed(body))
    await wait_for(lambda: fake_slack.of("views.publish"))
    view = fake_slack.of("views.publish")[0]
    assert view["user_id"] == "U1"
    assert "1. LoRA" in json.dumps(view["view"])
    event = {
        "type": "event_callback",
        "team_id": "T1",
        "api_app_id": "A1",
        "event_id": "Ev1",
        "event_time": 1,
        "token": "x",
        "event": {"type": "app_home_opened", "user": "U1", "tab": "home", "channel": "D1"},
    }
    raw = json.dumps(event)
    headers = {**signed(raw), "Content-Type": "application/json"}
    assert await post(server, raw, headers) == 200
    await wait_for(lambda: len(fake_slack.of("views.publish")) == 2)


@pytest.mark.parametrize("text", ["follow LoRA", "unfollow 1", "pause", "settings tz UTC"])
async def test_every_form_that_changes_topics_or_settings_refreshes_app_home(
    app_server, fake_slack: FakeSlack, text: str
) -> None:  # type: ignore[no-untyped-def]
    # Regression: the adapter used to guess from the first word, and missed `follow`.
    server, _runner = app_server
    for typed in ("subscribe MoE", text):
        body = command(fake_slack, typed)
        await post(server, body, signed(body))
    await wait_for(lambda: len(fake_slack.of("views.publish")) == 2)
    assert len(fake_slack.of("respond")) == 2


async def test_a_look_up_or_a_refused_change_leaves_app_home_alone(
    app_server, fake_slack: FakeSlack
) -> None:  # type: ignore[no-untyped-def]
    server, _runner = app_server
    for typed in ("kv-cache", "list", "settings", "follow", "settings max 0"):
        body = command(fake_slack, typed)
        await post(server, body, signed(body))
    await wait_for(lambda: len(fake_slack.of("respond")) == 5)
    await asyncio.sleep(0.1)
    assert not fake_slack.of("views.publish")


async def test_scheduler_tick_delivers_dm_and_channel_digests_once(fake_slack: FakeSlack) -> None:

    from bot.digests import DigestRunner
    from tests.fakes.core import add_paper, add_subscriber

    monday = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    store = Store.open(":memory:")
    add_paper(
        store, "2611.00001", "KV cache eviction for long contexts", monday - timedelta(hours=2)
    )
    add_subscriber(store, "U1", ["kv cache"], monday - timedelta(days=3), platform="slack")
    add_subscriber(
        store, "C7", ["kv cache"], monday - timedelta(days=3), platform="slack", kind="channel"
    )
    runner = StoreRunner(store)
    destination = SlackDestination(web_client(SLACK_TEST_TOKEN, fake_slack.url + "api/"))
    digests = DigestRunner(runner, {"slack": destination})
    await digests.tick(monday + timedelta(hours=1, minutes=1))
    await digests.tick(monday + timedelta(hours=1, minutes=2))
    posts = fake_slack.of("chat.postMessage")
    assert sorted(p["channel"] for p in posts) == ["C7", "DU1"]
    assert all("KV cache eviction" in json.dumps(p["blocks"]) for p in posts)
    # After a crash the ledger key is found in the channel's history: no second post.
    key = "1:2026-11-23"
    user = Subscriber(1, "slack", "user", "U1", "", DigestSettings(), NOW)
    since, until = datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC)
    dm_ts = next(p["ts"] for p in fake_slack.delivered if p["channel"] == "DU1")
    assert await destination.find_posted(user, key, 0, since, until) == dm_ts
    assert await destination.find_posted(user, "1:2026-11-24", 0, since, until) is None
    await runner.close()


async def test_share_button_posts_the_lookup_in_channel(app_server, fake_slack: FakeSlack) -> None:  # type: ignore[no-untyped-def]
    server, _runner = app_server
    body = command(fake_slack, "kv-cache")
    await post(server, body, signed(body))
    await wait_for(lambda: fake_slack.of("respond"))
    assert "share_lookup" in json.dumps(fake_slack.of("respond")[0])
    raw = button(fake_slack, "share_lookup", "kv-cache")
    assert await post(server, raw, signed(raw)) == 200
    await wait_for(lambda: len(fake_slack.of("respond")) == 2)
    shared = fake_slack.of("respond")[1]
    assert shared["response_type"] == "in_channel" and "KV Cache" in json.dumps(shared)


async def test_whoever_added_the_bot_may_manage_the_channel(
    app_server, fake_slack: FakeSlack
) -> None:  # type: ignore[no-untyped-def]
    server, _runner = app_server
    event = {
        "type": "event_callback",
        "team_id": "T1",
        "api_app_id": "A1",
        "event_id": "Ev2",
        "event_time": 1,
        "token": "x",
        "event": {
            "type": "member_joined_channel",
            "user": "UBOT",
            "channel": "C1",
            "inviter": "U5",
        },
    }
    raw = json.dumps(event)
    assert await post(server, raw, {**signed(raw), "Content-Type": "application/json"}) == 200
    body = command(fake_slack, "channel subscribe MoE", user="U5")
    for _ in range(50):  # the event is handled after its ack
        await post(server, body, signed(body))
        await wait_for(lambda: fake_slack.of("respond"))
        if "Subscribed this channel" in json.dumps(fake_slack.of("respond")[-1]):
            break
        fake_slack.calls.clear()
    assert "Subscribed this channel" in json.dumps(fake_slack.of("respond")[-1])


async def test_long_digest_is_several_posts_paced_per_channel(fake_slack: FakeSlack) -> None:
    destination = SlackDestination(web_client(SLACK_TEST_TOKEN, fake_slack.url + "api/"))
    started = time.monotonic()
    await deliver(destination, subscriber("channel", "C3"), digest(40), "1:2026-11-23")
    posts = fake_slack.of("chat.postMessage")
    assert len(posts) >= 2 and all(p["channel"] == "C3" for p in posts)
    assert time.monotonic() - started >= 0.9 * (len(posts) - 1)


async def test_a_replayed_request_changes_nothing_twice_and_an_old_one_is_refused(
    app_server, fake_slack: FakeSlack
) -> None:  # type: ignore[no-untyped-def]
    server, runner = app_server
    body = command(fake_slack, "subscribe MoE")
    headers = signed(body)
    assert await post(server, body, headers) == 200
    assert await post(server, body, headers) == 200  # a replay inside Slack's 5 minutes
    await wait_for(lambda: len(fake_slack.of("respond")) == 2)
    count = await runner.call(lambda s: s.conn.execute("SELECT count(*) FROM topics").fetchone()[0])
    assert count == 1  # subscribing is idempotent, so the replay did nothing
    assert "already" in json.dumps(fake_slack.of("respond")[1]).lower()
    stale = signed(body, timestamp=int(time.time()) - 301)
    assert await post(server, body, stale) == 401


async def test_oversized_payloads_are_refused(app_server, fake_slack: FakeSlack) -> None:  # type: ignore[no-untyped-def]
    server, runner = app_server
    huge = command(fake_slack, "subscribe " + "x" * 2_000_000)
    assert await post(server, huge, signed(huge)) == 413  # aiohttp's 1 MiB request limit
    long = command(fake_slack, "subscribe " + "transformer " * 300)  # 3.6 kB: accepted, refused
    assert await post(server, long, signed(long)) == 200
    await wait_for(lambda: fake_slack.of("respond"))
    assert "at most" in json.dumps(fake_slack.of("respond")[0])
    count = await runner.call(lambda s: s.conn.execute("SELECT count(*) FROM topics").fetchone()[0])
    assert count == 0


async def test_nobody_can_change_someone_elses_or_a_channels_subscriptions(
    app_server, fake_slack: FakeSlack
) -> None:  # type: ignore[no-untyped-def]
    server, runner = app_server
    attempts = [
        ("subscribe MoE", "U1"),
        ("unsubscribe 1", "U2"),
        ("unsubscribe MoE", "U2"),
        ("channel unsubscribe 1", "U2"),
        ("channel subscribe spam", "U2"),
    ]
    for text, user in attempts:
        body = command(fake_slack, text, user=user)
        assert await post(server, body, signed(body)) == 200
    await wait_for(lambda: len(fake_slack.of("respond")) == 5)
    rows = await runner.call(
        lambda s: s.conn.execute(
            "SELECT s.kind, s.address, t.text FROM topics t "
            "JOIN subscribers s ON s.id = t.subscriber_id"
        ).fetchall()
    )
    assert rows == [("user", "U1", "MoE")]


async def test_a_429_storm_delays_a_digest_but_delivers_it_exactly_once(
    fake_slack: FakeSlack,
) -> None:

    from bot.digests import DigestRunner
    from tests.fakes.core import add_paper, add_subscriber

    monday = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    store = Store.open(":memory:")
    add_paper(store, "2611.00001", "KV cache eviction", monday - timedelta(hours=2))
    add_subscriber(store, "U1", ["kv cache"], monday - timedelta(days=3), platform="slack")
    runner = StoreRunner(store)
    # More 429s (and `ratelimited` errors) in a row than the client's 3 retries absorb.
    fake_slack.errors["chat.postMessage"] = [429, 429, 429, 429, "ratelimited", 429]
    # The runner's clock must agree with the ticks' times: retries are scheduled from it.
    now = [monday + timedelta(hours=1)]
    digests = DigestRunner(
        runner,
        {"slack": SlackDestination(web_client(SLACK_TEST_TOKEN, fake_slack.url + "api/"))},
        clock=lambda: now[0],
    )
    first = await digests.tick()
    assert first.retrying == 1 and first.sent == 0
    for minute in range(1, 40):  # the retries back off 1, 2, 4, 8 ... minutes
        now[0] = monday + timedelta(hours=1, minutes=minute)
        await digests.tick()
    assert len(fake_slack.delivered) == 1
    assert len(fake_slack.of("chat.postMessage")) == 7  # 4 + 1 + 2 attempts
    status = await runner.call(lambda s: s.conn.execute("SELECT status FROM deliveries").fetchall())
    assert status == [("sent",)]
    await runner.close()


# -- which delivery promise the token allows ------------------------------------------------------


@pytest.mark.parametrize("lacking", [None, "im:history"])
async def test_doctor_and_the_start_say_which_delivery_promise_holds(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, lacking: str | None
) -> None:
    from click.testing import CliRunner

    from adapters.cli import cli
    from adapters.slack_app import log_guarantee
    from tests.fakes.slack import manifest_scopes

    fake = FakeSlack(scopes=manifest_scopes() - {lacking})
    await fake.server.start_server()
    try:
        env = {
            "PAPERBOT_DB": str(tmp_path / "paperbot.db"),
            "PAPERBOT_HF_API_URL": "http://127.0.0.1:9/api",
            "PAPERBOT_ARXIV_API_URL": "http://127.0.0.1:9/api/query",
            "PAPERBOT_HTTP_PORT": "0",
            "SLACK_BOT_TOKEN": SLACK_TEST_TOKEN,
            "SLACK_APP_TOKEN": "xapp-1-A1-2-abc",
            "SLACK_API_URL": fake.url + "api/",
            "DISCORD_TOKEN": "",
        }
        result = await asyncio.to_thread(CliRunner().invoke, cli, ["doctor"], env=env)
        await log_guarantee(web_client(SLACK_TEST_TOKEN, fake.url + "api/"))
    finally:
        await fake.server.close()
    lines = [r for r in caplog.records if r.name == "adapters.slack_app"]
    if lacking is None:
        assert "ok    slack     digests exactly once" in result.output
        assert [r.levelname for r in lines] == ["INFO"] and "exactly once" in lines[0].message
    else:
        expected = "warn  slack     digests at least once: the token lacks im:history"
        assert expected in result.output
        assert [r.levelname for r in lines] == ["WARNING"]
        assert "at least once" in lines[0].getMessage()
    assert SLACK_TEST_TOKEN not in result.output


async def test_a_look_up_pages_15_at_a_time_within_tier1_and_honours_retry_after() -> None:
    fake = FakeSlack(tier1_interval=0.4)
    await fake.server.start_server()
    try:
        destination = SlackDestination(web_client(SLACK_TEST_TOKEN, fake.url + "api/"), 0.4)
        user = subscriber()
        since = datetime.now(UTC) - timedelta(seconds=1)
        ts = await deliver(destination, user, digest(1), "1:2026-11-23")
        for n in range(20):  # the reader's own messages after it: newest first, 15 a page
            fake.add_message("DU1", f"chat {n}")
        until = datetime.now(UTC) + timedelta(seconds=1)
        started = time.monotonic()
        assert await destination.find_posted(user, "1:2026-11-23", 0, since, until) == ts
        calls = fake.of("conversations.history")
        assert len(calls) == 2 and all(int(c["limit"]) <= 15 for c in calls)
        assert time.monotonic() - started >= 0.4  # the second page waited its turn
        assert not fake.refused  # paced: Slack never had to say 429
        # Outside the window nothing is searched for, however old the conversation.
        later = datetime.now(UTC) + timedelta(minutes=5)
        assert await destination.find_posted(user, "1:2026-11-23", 0, later, later) is None
        # A process that does not know about the previous call (a restart) gets a 429 and
        # waits out its Retry-After instead of failing.
        fresh = SlackDestination(web_client(SLACK_TEST_TOKEN, fake.url + "api/"), 0.4)
        assert await fresh.find_posted(user, "1:2026-11-23", 0, since, until) == ts
        assert ("conversations.history", "ratelimited") in fake.refused
    finally:
        await fake.server.close()


# -- reader signals: ✓ relevant and ✗ not relevant -------------------------------------------


async def ask(server: TestServer, fake: FakeSlack, body: str) -> dict[str, Any]:
    """Post a signed payload; the ephemeral answer it got."""
    before = len(fake.of("respond"))
    assert await post(server, body, signed(body)) == 200
    await wait_for(lambda: len(fake.of("respond")) > before)
    (answer,) = fake.of("respond")[before:]
    assert answer["response_type"] == "ephemeral"
    return answer


def button_values(answer: dict[str, Any], action_id: str) -> list[str]:
    return [
        e["value"]
        for b in answer["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == action_id
    ]


async def signals_and_muted(runner: StoreRunner, topic_id: int, user: str = "U1") -> Any:
    def read(store: Store) -> Any:
        subscriber = store.subscribers.find("slack", "user", user, "T1")
        muted = store.subscribers.muted(subscriber.id) if subscriber else set()
        return store.signals.of_topics([topic_id]).get(topic_id, []), muted

    return await runner.call(read)


async def test_relevant_and_not_relevant_teach_the_followed_topic(
    app_server, fake_slack: FakeSlack
) -> None:  # type: ignore[no-untyped-def]
    server, runner = app_server
    await ask(server, fake_slack, command(fake_slack, "subscribe kv-cache"))
    topic_id = await runner.call(
        lambda s: s.subscribers.topics(s.subscribers.find("slack", "user", "U1", "T1").id)[0].id
    )
    lookup = await ask(server, fake_slack, command(fake_slack, "kv-cache"))
    relevant = button_values(lookup, "relevant")
    assert len(relevant) >= 2 and all(v.startswith(f"{topic_id}:") for v in relevant)
    assert button_values(lookup, "not_relevant") == relevant
    first, second = (value.split(":", 1)[1] for value in relevant[:2])

    thanks = await ask(server, fake_slack, button(fake_slack, "relevant", relevant[0]))
    assert "Thanks: `kv-cache` will bring more papers like" in json.dumps(thanks)
    muted = await ask(server, fake_slack, button(fake_slack, "not_relevant", relevant[1]))
    text = json.dumps(muted, ensure_ascii=False)
    assert "won't show you" in text and "`kv-cache` will leave out papers like it" in text
    signals, muted_ids = await signals_and_muted(runner, topic_id)
    assert {(s.paper_id, s.relevant) for s in signals} == {(first, True), (second, False)}
    assert muted_ids == {second}
    assert not fake_slack.refused


async def test_a_digest_posted_to_slack_offers_both_signals_within_limits(
    fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters import slack_app
    from tests.test_slack_blocks import full_digest

    monkeypatch.setattr(slack_app, "CHANNEL_POST_INTERVAL", 0.0)  # pacing is not the point
    destination = SlackDestination(web_client(SLACK_TEST_TOKEN, fake_slack.url + "api/"))
    to = Subscriber(7, "slack", "channel", "C9", "T1", DigestSettings(), NOW)
    for body in destination.render(full_digest(), "7:2026-11-23"):
        await destination.post(to, body)
    assert not fake_slack.refused
    posted = [
        json.loads(p["blocks"]) if isinstance(p["blocks"], str) else p["blocks"]
        for p in fake_slack.delivered
    ]
    relevant = [
        e["value"]
        for blocks in posted
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "relevant"
    ]
    assert len(relevant) == 50 and relevant[0] == "100:2611.00000"


async def test_an_old_not_relevant_button_still_mutes_and_teaches_nothing(
    app_server, fake_slack: FakeSlack
) -> None:  # type: ignore[no-untyped-def]
    server, runner = app_server
    await ask(server, fake_slack, command(fake_slack, "subscribe kv-cache"))
    paper = await runner.call(lambda s: s.papers.by_rowid([1])[1])
    answer = await ask(server, fake_slack, button(fake_slack, "not_relevant", paper.id))
    assert "won't show you" in json.dumps(answer) and "leave out" not in json.dumps(answer)
    topic_id = await runner.call(
        lambda s: s.subscribers.topics(s.subscribers.find("slack", "user", "U1", "T1").id)[0].id
    )
    signals, muted = await signals_and_muted(runner, topic_id)
    assert signals == [] and muted == {paper.id}


@pytest.mark.parametrize(
    ("action_id", "value"),
    [
        ("relevant", ""),
        ("relevant", "2401.00001"),  # no topic
        ("relevant", "abc:2401.00001"),
        ("relevant", "1:"),
        ("relevant", "1:2401 00001"),
        ("relevant", "99999999999999999999999999:2401.00001"),
        ("not_relevant", ""),
        ("not_relevant", "x:y:z"),
        ("not_relevant", "\uff11:2401.00001"),  # a full-width digit is no topic id
    ],
)
async def test_a_garbled_signal_gets_a_friendly_answer_and_records_nothing(
    app_server, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture, action_id: str, value: str
) -> None:  # type: ignore[no-untyped-def]
    import logging

    server, runner = app_server
    answer = await ask(server, fake_slack, button(fake_slack, action_id, value))
    assert "could not read that button" in json.dumps(answer)
    counts = await runner.call(
        lambda s: (
            s.conn.execute("SELECT count(*) FROM signals").fetchone()[0],
            s.conn.execute("SELECT count(*) FROM muted_papers").fetchone()[0],
        )
    )
    assert counts == (0, 0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_nobody_can_teach_someone_elses_topic(app_server, fake_slack: FakeSlack) -> None:  # type: ignore[no-untyped-def]
    server, runner = app_server
    await ask(server, fake_slack, command(fake_slack, "subscribe kv-cache", user="U2"))
    topic_id = await runner.call(
        lambda s: s.subscribers.topics(s.subscribers.find("slack", "user", "U2", "T1").id)[0].id
    )
    paper = await runner.call(lambda s: s.papers.by_rowid([1])[1])
    forged = f"{topic_id}:{paper.id}"
    answer = await ask(server, fake_slack, button(fake_slack, "relevant", forged, user="U1"))
    assert "someone else's subscription" in json.dumps(answer)
    signals, _ = await signals_and_muted(runner, topic_id, user="U2")
    assert signals == []
