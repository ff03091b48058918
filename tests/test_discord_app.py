"""The Discord adapter driven by real discord.py interactions against a local fake Discord."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import discord
import pytest
import yarl
from click.testing import CliRunner
from discord.gateway import DiscordWebSocket
from tenacity import wait_fixed

from adapters import discord_app
from adapters.cli import cli
from adapters.discord_app import (
    INVITE_PERMISSIONS,
    SORRY,
    TOO_SLOW,
    DiscordDestination,
    PaperbotClient,
    client_id_from_token,
    run_discord,
)
from adapters.discord_embeds import embed_size
from adapters.supervise import Supervisor
from bot.errors import DestinationGone, LookupUnavailable, PostRejected
from bot.health import Adapters, AdapterState
from bot.importer import import_files
from bot.models import Digest, DigestSection, DigestSettings, PaperCard, Subscriber
from bot.runtime import StoreRunner
from bot.service import PaperBot
from bot.storage import Store
from tests.conftest import DISCORD_TEST_TOKEN, SEED
from tests.fakes.discord import (
    APP_ID,
    CHANNEL_ID,
    GUILD_ID,
    MANAGE_CHANNELS,
    MANAGE_GUILD,
    FakeDiscord,
    command,
    interaction,
    message,
)

NOW = datetime(2026, 11, 20, tzinfo=UTC)
ADA = "555555555555555555"


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    server = FakeDiscord()
    await server.server.start_server()
    monkeypatch.setattr(discord.http.Route, "BASE", server.base)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(server.gateway_url))
    yield server
    await server.server.close()


@pytest.fixture
async def bot() -> AsyncIterator[PaperBot]:
    store = Store.open(":memory:")
    import_files(store, [SEED], NOW)
    runner = StoreRunner(store)
    yield PaperBot(runner, clock=lambda: NOW)
    await runner.close()


async def started(bot: PaperBot, guild_id: int | None = None) -> PaperbotClient:
    """A logged-in client with its commands synced (the gateway's events are dispatched by hand)."""
    client = PaperbotClient(bot, guild_id=guild_id)
    await client.login(DISCORD_TEST_TOKEN)
    await client.sync_commands()
    return client


@pytest.fixture
async def client(fake: FakeDiscord, bot: PaperBot) -> AsyncIterator[PaperbotClient]:
    c = await started(bot)
    yield c
    await c.close()


def followups(fake: FakeDiscord) -> list[dict[str, Any]]:
    return list(fake.sent("POST", f"/webhooks/{APP_ID}/"))


async def run(fake: FakeDiscord, client: PaperbotClient, payload: dict[str, Any]) -> list[Any]:
    """Dispatch an interaction as the gateway would; return the followups it produced."""
    before = len(followups(fake))
    client._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
    await fake.wait_for(lambda: len(followups(fake)) > before)
    return followups(fake)[before:]


async def test_login_syncs_the_papers_group_globally(fake: FakeDiscord, client: Any) -> None:
    (synced,) = fake.sent("PUT", f"/applications/{APP_ID}/commands")
    (papers,) = synced
    assert papers["name"] == "papers"
    subcommands = {o["name"]: o for o in papers["options"]}
    assert set(subcommands) == {
        "search",
        "subscribe",
        "unsubscribe",
        "forget",
        "list",
        "digest",
        "settings",
        "feed",
        "help",
        "channel",
    }
    channel = {o["name"] for o in subcommands["channel"]["options"]}
    assert channel == {"subscribe", "unsubscribe", "forget", "list", "settings"}
    assert subcommands["forget"]["options"][0]["autocomplete"] is True
    topic = subcommands["unsubscribe"]["options"][0]
    assert topic["autocomplete"] is True and topic["max_length"] == 300
    assert subcommands["search"]["options"][0]["autocomplete"] is True
    assert subcommands["feed"]["options"][0]["choices"] == [{"name": "reset", "value": "reset"}]
    assert subcommands["feed"]["options"][0]["required"] is False
    fields = subcommands["settings"]["options"][0]["choices"]
    assert [c["value"] for c in fields] == ["time", "tz", "days", "max", "pause", "resume"]


async def test_feed_shows_the_private_address_only_to_its_owner_and_reset_replaces_it(
    fake: FakeDiscord, client: PaperbotClient, bot: PaperBot
) -> None:
    await run(fake, client, interaction(command("subscribe", topic="MoE")))

    async def address(**options: str) -> str:
        (answer,) = await run(fake, client, interaction(command("feed", **options)))
        assert fake.sent("POST", "/interactions/")[-1] == {"type": 5, "data": {"flags": 64}}
        assert answer["flags"] == 64  # ephemeral: nobody else in the channel sees it
        (url,) = re.findall(r"`(http://\S+\.atom)`", answer["embeds"][0]["description"])
        return str(url)

    first = await address()
    assert await address() == first
    second = await address(action="reset")
    assert second != first
    token = second.rsplit("/", 1)[1].removesuffix(".atom")
    assert await bot.digest_feed(first.rsplit("/", 1)[1].removesuffix(".atom")) is None
    assert await bot.digest_feed(token) is not None


async def test_guild_id_syncs_to_that_guild_only(fake: FakeDiscord, bot: PaperBot) -> None:
    c = await started(bot, guild_id=int(GUILD_ID))
    await c.close()
    assert fake.sent("PUT", f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    assert not fake.sent("PUT", f"/applications/{APP_ID}/commands")


async def test_search_defers_then_answers_ephemerally_with_papers_and_buttons(
    fake: FakeDiscord, client: PaperbotClient
) -> None:
    (answer,) = await run(fake, client, interaction(command("search", query="kv-cache")))
    callback = fake.sent("POST", "/interactions/")[-1]
    assert callback == {"type": 5, "data": {"flags": 64}}  # deferred, ephemeral
    assert answer["flags"] == 64
    embeds = answer["embeds"]
    assert "kv-cache" in embeds[0]["description"]
    assert embeds[1]["title"].startswith("1. ") and "KV" in embeds[1]["title"]
    assert "why:" in embeds[1]["description"]
    ids = [b["custom_id"] for row in answer["components"] for b in row["components"]]
    assert ids[0] == "paperbot:sub:kv-cache"
    paper_id = embeds[1]["footer"]["text"]
    assert f"paperbot:more:{paper_id}" in ids and f"paperbot:mute:{paper_id}" in ids


async def test_subscribe_list_and_unsubscribe_autocompletes_own_topics(
    fake: FakeDiscord, client: PaperbotClient, bot: PaperBot
) -> None:
    (answer,) = await run(fake, client, interaction(command("subscribe", topic="MoE")))
    assert "MoE" in answer["embeds"][0]["description"]
    await run(fake, client, interaction(command("subscribe", topic="kv cache")))
    payload = interaction(command("unsubscribe", topic="k", _focused="topic"), kind=4)
    client._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
    callback = await fake.wait_for(
        lambda: [b for b in fake.sent("POST", "/interactions/") if b["type"] == 8]
    )
    assert callback[0]["data"]["choices"] == [{"name": "kv cache", "value": "kv cache"}]
    (listed,) = await run(fake, client, interaction(command("list")))
    assert "MoE" in listed["embeds"][0]["description"]
    await run(fake, client, interaction(command("unsubscribe", topic="MoE")))
    assert await bot.own_topics(caller("discord", ADA)) == ["kv cache"]


def caller(platform: str, user_id: str) -> Any:
    from bot.models import Caller

    return Caller(platform, user_id)


async def test_search_autocomplete_offers_the_lexicon(
    fake: FakeDiscord, client: PaperbotClient
) -> None:
    payload = interaction(command("search", query="mixture", _focused="query"), kind=4)
    client._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
    (callback,) = await fake.wait_for(lambda: fake.sent("POST", "/interactions/"))
    choices = callback["data"]["choices"]
    assert {"name": "mixture of experts", "value": "mixture of experts"} in choices
    assert len(choices) <= 25


async def test_settings_are_validated_by_the_core(
    fake: FakeDiscord, client: PaperbotClient
) -> None:
    tz = command("settings", field="tz", value="europe/berlin")
    (ok,) = await run(fake, client, interaction(tz))
    assert "Europe/Berlin" in ok["embeds"][0]["description"]
    (bad,) = await run(fake, client, interaction(command("settings", field="max", value="500")))
    assert bad["embeds"][0]["description"].startswith("❌")


@pytest.mark.parametrize(
    ("permissions", "in_guild", "allowed"),
    [
        (0, True, False),
        (MANAGE_CHANNELS, True, True),
        (MANAGE_GUILD, True, True),
        (MANAGE_GUILD, False, False),
    ],
)
async def test_channel_subscriptions_need_manage_permissions(
    fake: FakeDiscord,
    client: PaperbotClient,
    bot: PaperBot,
    permissions: int,
    in_guild: bool,
    allowed: bool,
) -> None:
    payload = interaction(
        command("channel", "subscribe", topic="PEFT"), permissions=permissions, in_guild=in_guild
    )
    (answer,) = await run(fake, client, payload)
    from bot.models import Caller

    topics = await bot.own_topics(Caller("discord", ADA, CHANNEL_ID), channel=True)
    assert topics == (["PEFT"] if allowed else [])
    assert answer["embeds"][0]["description"].startswith("❌") is not allowed


def clicked(custom_id: str, **kwargs: Any) -> dict[str, Any]:
    """A button click on a message paperbot sent some time ago (maybe before a restart)."""
    button = {"type": 2, "style": 2, "label": "More like #1", "custom_id": custom_id}
    sent = message(
        "800000000000000001", CHANNEL_ID, {"components": [{"type": 1, "components": [button]}]}
    )
    data = {"custom_id": custom_id, "component_type": 2}
    return interaction(data, kind=3, message=sent, **kwargs)


async def test_buttons_work_on_messages_sent_before_a_restart(
    fake: FakeDiscord, client: PaperbotClient, bot: PaperBot
) -> None:
    # `client` is a fresh process: it never sent the message the click comes from.
    paper = await bot.runner.call(lambda s: s.papers.by_rowid([1])[1])
    (more,) = await run(fake, client, clicked(f"paperbot:more:{paper.id}"))
    assert more["flags"] == 64 and "Papers like" in more["embeds"][0]["description"]
    (muted,) = await run(fake, client, clicked(f"paperbot:mute:{paper.id}"))
    assert "won't show you" in muted["embeds"][0]["description"]
    (sub,) = await run(fake, client, clicked('paperbot:sub:author:"Tri Dao"', in_guild=False))
    assert not sub["embeds"][0]["description"].startswith("❌")
    assert await bot.own_topics(caller("discord", ADA)) == ['author:"Tri Dao"']


DIGEST = Digest(
    subscriber_id=7,
    local_date="2026-11-20",
    sections=(
        DigestSection(
            "MoE",
            tuple(
                PaperCard(str(i), f"Paper {i}", None, "", None, None, "x" * 900, "", {})
                for i in range(14)
            ),
            3,
        ),
    ),
)


def subscriber(kind: str, address: str) -> Subscriber:
    return Subscriber(7, "discord", kind, address, GUILD_ID, DigestSettings(), NOW)


async def deliver(destination: DiscordDestination, to: Subscriber, digest: Digest, key: str) -> str:
    """Post every message of a digest, as the digest runner does; the first message's id."""
    ids = [await destination.post(to, body) for body in destination.render(digest, key)]
    return ids[0]


def window() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(minutes=5), now + timedelta(minutes=1)


async def test_digest_by_dm_is_split_and_can_be_found_after_a_crash(
    fake: FakeDiscord, client: PaperbotClient
) -> None:
    destination = DiscordDestination(client)
    to_ada = subscriber("user", ADA)
    assert await destination.find_posted(to_ada, "7:2026-11-20", 0, *window()) is None
    first = await deliver(destination, to_ada, DIGEST, "7:2026-11-20")
    (dm,) = fake.sent("POST", "/users/@me/channels")
    assert dm == {"recipient_id": int(ADA)}
    posts = fake.sent("POST", "/channels/")
    assert len(posts) == 3  # 15 embeds of ~920 characters: six fit in 6,000
    assert all(len(p["embeds"]) <= 10 for p in posts)
    assert all(sum(embed_size(e) for e in p["embeds"]) <= 6000 for p in posts)
    assert posts[0]["embeds"][0]["footer"]["text"] == "paperbot digest 7:2026-11-20"
    buttons = [b for p in posts for row in p["components"] for b in row["components"]]
    assert len(buttons) == 28  # more like + not relevant for each of the 14 papers
    # Every message carries its part of the ledger key, so a crash between them is resumable.
    assert posts[1]["embeds"][0]["footer"]["text"].endswith(" · paperbot digest 7:2026-11-20 #2")
    assert await destination.find_posted(to_ada, "7:2026-11-20", 0, *window()) == first
    third = await destination.find_posted(to_ada, "7:2026-11-20", 2, *window())
    assert third == fake.channel_messages["4" + ADA[1:]][2]["id"]
    assert await destination.find_posted(to_ada, "7:2026-11-21", 0, *window()) is None


async def test_a_channel_whose_history_cannot_be_read_is_at_least_once_not_gone(
    fake: FakeDiscord, client: PaperbotClient
) -> None:
    destination = DiscordDestination(client)
    to_channel = subscriber("channel", CHANNEL_ID)
    fake.fail["history"] = [(403, 50001)]  # Missing Access: no Read Message History there
    with pytest.raises(LookupUnavailable, match="Read Message History"):
        await destination.find_posted(to_channel, "7:2026-11-20", 0, *window())
    fake.fail["history"] = [(404, 10003)]  # Unknown Channel: gone
    with pytest.raises(DestinationGone):
        await destination.find_posted(to_channel, "7:2026-11-20", 0, *window())


async def test_a_digest_before_discord_is_connected_is_refused_for_now(bot: PaperBot) -> None:
    destination = DiscordDestination(PaperbotClient(bot))  # never logged in
    body = destination.render(DIGEST, "7:2026-11-20")[0]
    with pytest.raises(PostRejected, match="not connected"):
        await destination.post(subscriber("channel", CHANNEL_ID), body)


async def test_digest_to_a_channel(fake: FakeDiscord, client: PaperbotClient) -> None:
    message_id = await deliver(
        DiscordDestination(client), subscriber("channel", CHANNEL_ID), DIGEST, "7:2026-11-20"
    )
    assert fake.channel_messages[CHANNEL_ID][0]["id"] == message_id
    assert not fake.sent("POST", "/users/@me/channels")


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("dm", 403, 50007), ("send", 403, 50007), ("send", 403, 50001), ("send", 404, 10003)],
)
async def test_closed_dms_and_lost_channels_mark_the_subscriber_gone(
    fake: FakeDiscord, client: PaperbotClient, kind: str, status: int, code: int
) -> None:
    fake.fail[kind] = [(status, code)]
    with pytest.raises(DestinationGone, match=str(code)):
        await deliver(DiscordDestination(client), subscriber("user", ADA), DIGEST, "k")


async def test_rate_limits_are_waited_out_and_other_errors_are_transient(
    fake: FakeDiscord, client: PaperbotClient
) -> None:
    destination = DiscordDestination(client)
    fake.fail["send"] = [(429, 0)]
    assert await deliver(destination, subscriber("channel", CHANNEL_ID), DIGEST, "k")
    fake.fail["send"] = [(400, 50035)]
    # Refused for now, not gone: the digest runner tries again later.
    with pytest.raises(PostRejected, match="400"):
        await deliver(destination, subscriber("channel", CHANNEL_ID), DIGEST, "k")


def test_invite_url_has_exactly_the_needed_permissions() -> None:
    token = DISCORD_TEST_TOKEN  # starts with base64("111111111111111111")
    assert client_id_from_token(token) == int(APP_ID)
    result = CliRunner().invoke(cli, ["discord-invite"], env={"DISCORD_TOKEN": token})
    assert result.exit_code == 0, result.output
    url = result.output.strip()
    assert f"client_id={APP_ID}" in url
    assert f"permissions={INVITE_PERMISSIONS.value}" in url
    assert INVITE_PERMISSIONS.value == 1024 + 2048 + 16384 + 65536
    assert "scope=bot+applications.commands" in url
    assert "discord-test-secret" not in result.output
    missing = CliRunner().invoke(cli, ["discord-invite"], env={"DISCORD_TOKEN": ""})
    assert missing.exit_code == 2 and "--client-id" in missing.output


async def test_run_starts_the_adapter_when_a_token_is_set(
    fake: FakeDiscord, bot: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.discord_app import discord_adapter
    from bot.config import Settings

    monkeypatch.setenv("DISCORD_TOKEN", DISCORD_TEST_TOKEN)
    monkeypatch.setenv("DISCORD_GUILD_ID", GUILD_ID)
    adapters = Adapters()
    adapter = discord_adapter(Settings(), bot, adapters)
    await adapter.start()
    try:
        assert isinstance(adapter.destination, DiscordDestination)
        # Nothing was waited for: it logs in, syncs and connects in the background.
        assert adapters.get("discord") == AdapterState("starting")
        assert not fake.sent("PUT", "/applications/")
        await fake.wait_for(lambda: adapters.get("discord") == AdapterState("ok"))
        assert fake.sent("PUT", f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
        assert fake.identified == 1
    finally:
        await adapter.stop()


async def test_discord_5xx_and_errors_still_deliver_each_digest_exactly_once(
    fake: FakeDiscord, client: PaperbotClient
) -> None:
    from datetime import timedelta

    from bot.digests import DigestRunner
    from tests.fakes.core import add_paper, add_subscriber

    monday = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    store = Store.open(":memory:")
    add_paper(store, "2611.00001", "KV cache eviction", monday - timedelta(hours=2))
    add_subscriber(store, ADA, ["kv cache"], monday - timedelta(days=3), platform="discord")
    runner = StoreRunner(store)
    # A 502 (discord.py retries it itself after 1 s), then a 400 that fails the attempt.
    fake.fail["send"] = [(502, 0), (400, 50035)]
    # The runner's clock must agree with the ticks' times: retries are scheduled from it.
    now = [monday + timedelta(hours=1)]
    digests = DigestRunner(runner, {"discord": DiscordDestination(client)}, clock=lambda: now[0])
    first = await digests.tick()
    assert first.retrying == 1
    for minute in range(1, 5):
        now[0] = monday + timedelta(hours=1, minutes=minute)
        await digests.tick()
    dm = "4" + ADA[1:]
    assert len(fake.channel_messages[dm]) == 1
    status = await runner.call(lambda s: s.conn.execute("SELECT status FROM deliveries").fetchall())
    assert status == [("sent",)]
    await runner.close()


# -- no interaction left hanging ------------------------------------------------------------------


class BrokenBot(PaperBot):
    """The core failing (or hanging) after the adapter has deferred."""

    def __init__(self, runner: StoreRunner, hang: bool = False) -> None:
        super().__init__(runner, clock=lambda: NOW)
        self.hang = hang

    async def _fail(self) -> Any:
        if self.hang:
            await asyncio.sleep(3600)
        raise RuntimeError("the store is on fire")

    async def run(self, caller: Any, command: Any) -> Any:
        return await self._fail()

    async def suggest_topics(self, platform: str, typed: str, limit: int) -> Any:
        return await self._fail()


@pytest.fixture
async def broken(fake: FakeDiscord, bot: PaperBot) -> AsyncIterator[PaperbotClient]:
    c = await started(BrokenBot(bot.runner))
    yield c
    await c.close()


def failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every ERROR line, from any logger (discord.py's "Ignoring exception ..." included)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_command_failing_after_the_deferral_gets_an_ephemeral_apology(
    fake: FakeDiscord, broken: PaperbotClient, caplog: pytest.LogCaptureFixture
) -> None:
    (answer,) = await run(fake, broken, interaction(command("search", query="kv-cache")))
    assert fake.sent("POST", "/interactions/")[-1]["type"] == 5  # it had deferred
    assert answer["content"] == SORRY and answer["flags"] == 64
    (line,) = failures(caplog)  # logged once, by us; not by discord.py
    assert line.startswith("discord command /papers search failed: RuntimeError")


async def test_a_failing_button_gets_an_ephemeral_apology(
    fake: FakeDiscord, broken: PaperbotClient, caplog: pytest.LogCaptureFixture
) -> None:
    (answer,) = await run(fake, broken, clicked("paperbot:more:2401.00001"))
    assert answer["content"] == SORRY and answer["flags"] == 64
    (line,) = failures(caplog)
    assert line.startswith("discord button paperbot:more:2401.00001 failed: RuntimeError")


async def test_a_hanging_core_is_answered_after_the_command_timeout(
    fake: FakeDiscord, bot: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discord_app, "COMMAND_SECONDS", 0.2)
    client = await started(BrokenBot(bot.runner, hang=True))
    try:
        (answer,) = await run(fake, client, interaction(command("digest")))
        (clicked_answer,) = await run(fake, client, clicked("paperbot:sub:MoE"))
    finally:
        await client.close()
    assert answer["content"] == TOO_SLOW and clicked_answer["content"] == TOO_SLOW


async def test_an_expired_interaction_is_logged_once(
    fake: FakeDiscord, client: PaperbotClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Created 3.5 s ago (a stalled event loop): Discord refuses the deferral and the apology.
    client._connection.parse_interaction_create(  # type: ignore[arg-type]
        interaction(command("help"), age=3.5)
    )
    await fake.wait_for(lambda: len(fake.sent("POST", "/interactions/")) == 2)
    await asyncio.sleep(0.05)
    (line,) = failures(caplog)
    assert "the user could not be told" in line and "10062" in line
    assert not followups(fake)


async def test_autocomplete_always_answers_even_when_the_core_fails_or_is_slow(
    fake: FakeDiscord, bot: PaperBot, broken: PaperbotClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = interaction(command("search", query="mix", _focused="query"), kind=4)
    broken._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
    (callback,) = await fake.wait_for(lambda: fake.sent("POST", "/interactions/"))
    assert callback == {"type": 8, "data": {"choices": []}}
    monkeypatch.setattr(discord_app, "AUTOCOMPLETE_SECONDS", 0.2)
    slow = await started(BrokenBot(bot.runner, hang=True))
    try:
        payload = interaction(command("subscribe", topic="mix", _focused="topic"), kind=4)
        slow._connection.parse_interaction_create(payload)  # type: ignore[arg-type]
        await fake.wait_for(lambda: len(fake.sent("POST", "/interactions/")) == 2)
    finally:
        await slow.close()
    assert fake.sent("POST", "/interactions/")[-1] == {"type": 8, "data": {"choices": []}}


async def test_channel_subscribe_autocompletes_popular_topics(
    fake: FakeDiscord, client: PaperbotClient
) -> None:
    (synced,) = fake.sent("PUT", f"/applications/{APP_ID}/commands")
    channel = next(o for o in synced[0]["options"] if o["name"] == "channel")
    subscribe = next(o for o in channel["options"] if o["name"] == "subscribe")
    assert subscribe["options"][0]["autocomplete"] is True
    data = command("channel", "subscribe", topic="mixture", _focused="topic")
    client._connection.parse_interaction_create(interaction(data, kind=4))  # type: ignore[arg-type]
    (callback,) = await fake.wait_for(lambda: fake.sent("POST", "/interactions/"))
    assert {"name": "mixture of experts", "value": "mixture of experts"} in callback["data"][
        "choices"
    ]


# -- starting: retried when it may pass, stopped with one line saying what to fix ----------------

FAST = wait_fixed(0.01)


async def start(bot: PaperBot, adapters: Adapters) -> tuple[PaperbotClient, asyncio.Task[None]]:
    client = PaperbotClient(bot, adapters=adapters)
    supervisor = Supervisor("discord", adapters, wait=FAST)
    return client, asyncio.create_task(run_discord(client, DISCORD_TEST_TOKEN, supervisor))


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


async def test_login_sync_and_gateway_make_the_adapter_ok(fake: FakeDiscord, bot: PaperBot) -> None:
    adapters = Adapters()
    client, task = await start(bot, adapters)
    await fake.wait_for(lambda: adapters.get("discord") == AdapterState("ok"))
    assert fake.identified == 1 and len(fake.sent("PUT", "/applications/")) == 1
    await client.close()
    await asyncio.wait_for(task, 5)  # closing the client ends the adapter


@pytest.mark.parametrize(
    ("close", "fix"),
    [
        (4004, "authentication failed: DISCORD_TOKEN was refused; reset the bot token"),
        (4014, "disallowed intents: the application may not use an intent"),
    ],
)
async def test_a_gateway_closed_for_good_is_one_error_line_and_failed(
    fake: FakeDiscord, bot: PaperBot, caplog: pytest.LogCaptureFixture, close: int, fix: str
) -> None:
    fake.gateway_close = close
    adapters = Adapters()
    client, task = await start(bot, adapters)
    await asyncio.wait_for(task, 5)  # it gave up: no reconnecting to a closed gateway
    state = adapters.get("discord")
    assert state is not None and state.state == "failed"
    assert state.reason.startswith(f"Discord closed the gateway with {close} ({fix}")
    assert fake.identified == 1 and client.is_closed()
    (line,) = lines(caplog, logging.ERROR)
    assert line == f"discord adapter stopped: {state.reason}"


async def test_a_refused_token_is_not_retried(
    fake: FakeDiscord, bot: PaperBot, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail["login"] = [(401, 0)]
    adapters = Adapters()
    _, task = await start(bot, adapters)
    await asyncio.wait_for(task, 5)
    assert adapters.get("discord") == AdapterState(
        "failed",
        "Discord refused DISCORD_TOKEN (401 Unauthorized): reset the bot token under Bot at "
        "discord.com/developers/applications and set DISCORD_TOKEN",
    )
    assert len(fake.sent("GET", "/users/@me")) == 1 and not fake.sent("PUT", "/applications/")
    assert len(lines(caplog, logging.ERROR)) == 1


async def test_a_refused_command_tree_is_not_retried(
    fake: FakeDiscord, bot: PaperBot, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail["sync"] = [(400, 50035)]
    adapters = Adapters()
    _, task = await start(bot, adapters)
    await asyncio.wait_for(task, 5)
    state = adapters.get("discord")
    assert state is not None and state.state == "failed"
    assert state.reason.startswith("Discord refused the command sync (400, error 50035")
    assert state.reason.endswith("the /papers commands need a fixed paperbot")
    assert len(fake.sent("PUT", "/applications/")) == 1 and fake.identified == 0
    assert len(lines(caplog, logging.ERROR)) == 1


async def test_5xx_on_login_and_sync_are_retried_with_one_warning_each(
    fake: FakeDiscord, bot: PaperBot, caplog: pytest.LogCaptureFixture
) -> None:
    # 503 is not among the statuses discord.py retries itself (500, 502, 504, 524).
    fake.fail["login"] = [(503, 0)]
    fake.fail["sync"] = [(503, 0), (503, 0)]
    adapters = Adapters()
    seen: list[AdapterState] = []
    record = adapters.set

    def recording(name: str, state: Any, reason: str = "") -> None:
        record(name, state, reason)
        seen.append(AdapterState(state, reason))

    adapters.set = recording  # type: ignore[method-assign]
    client, task = await start(bot, adapters)
    await fake.wait_for(lambda: adapters.get("discord") == AdapterState("ok"))
    retrying = [s.reason for s in seen if s.state == "retrying"]
    assert len(retrying) == 3
    assert retrying[0].startswith("login failed (DiscordServerError: 503 Service Unavailable")
    assert retrying[1].startswith("command sync failed (DiscordServerError: 503")
    assert len(lines(caplog, logging.WARNING)) == 3 and not lines(caplog, logging.ERROR)
    assert len(fake.sent("GET", "/users/@me")) == 2  # logged in again after the 503
    await client.close()
    await asyncio.wait_for(task, 5)
    gc.collect()  # the failed login's HTTP session was closed, not left to the collector
    assert not [m for m in caplog.messages if "Unclosed" in m]


# -- the fake answers like Discord --------------------------------------------------------------


async def fake_post(fake: FakeDiscord, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    from aiohttp import ClientSession

    async with ClientSession() as session, session.post(fake.base + path, json=body) as r:
        return r.status, await r.json()


async def test_the_fake_holds_interactions_to_discords_deadlines(fake: FakeDiscord) -> None:
    fresh = interaction(command("help"))
    callback = f"/interactions/{fresh['id']}/{fresh['token']}/callback"
    followup = f"/webhooks/{APP_ID}/{fresh['token']}"
    # A follow-up before the callback: the interaction's webhook does not exist yet.
    assert await fake_post(fake, followup, {"content": "x"}) == (
        404,
        {"code": 10015, "message": "Unknown Webhook"},
    )
    assert (await fake_post(fake, callback, {"type": 5, "data": {"flags": 64}}))[0] == 200
    assert await fake_post(fake, callback, {"type": 5}) == (
        400,
        {"code": 40060, "message": "Interaction has already been acknowledged."},
    )
    assert (await fake_post(fake, followup, {"content": "x"}))[0] == 200
    stale = interaction(command("help"), age=3.5)
    late = f"/interactions/{stale['id']}/{stale['token']}/callback"
    assert await fake_post(fake, late, {"type": 5}) == (
        404,
        {"code": 10062, "message": "Unknown interaction"},
    )


async def test_the_fake_refuses_embeds_and_buttons_over_discords_limits(
    fake: FakeDiscord,
) -> None:
    def button(custom_id: str, label: str = "b") -> dict[str, Any]:
        return {"type": 2, "style": 2, "custom_id": custom_id, "label": label}

    body = {
        "embeds": [
            {
                "title": "t" * 257,
                "description": "d" * 4000,
                "fields": [{"name": "n", "value": "v" * 1025}, {"name": "", "value": "v"}],
                "footer": {"text": "f" * 2049},
            },
            *[{"description": "x"} for _ in range(10)],
        ],
        "components": [
            {"type": 1, "components": [button("a" * 101, "l" * 81), *[button("b")] * 5]},
            *[{"type": 1, "components": [button("c")]} for _ in range(5)],
        ],
    }
    status, answer = await fake_post(fake, f"/channels/{CHANNEL_ID}/messages", body)
    assert status == 400 and answer["code"] == 50035 and answer["message"] == "Invalid Form Body"
    errors = answer["errors"]

    def codes(*path: str) -> list[str]:
        node = errors
        for key in path:
            node = node[key]
        return [e["code"] for e in node["_errors"]]

    assert codes("embeds") == ["BASE_TYPE_MAX_LENGTH", "MAX_EMBED_SIZE_EXCEEDED"]
    assert codes("embeds", "0", "title") == ["BASE_TYPE_MAX_LENGTH"]
    assert errors["embeds"]["0"]["title"]["_errors"][0]["message"] == (
        "Must be 256 or fewer in length."
    )
    assert codes("embeds", "0", "fields", "0", "value") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes("embeds", "0", "fields", "1", "name") == ["BASE_TYPE_REQUIRED"]
    assert codes("embeds", "0", "footer", "text") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes("components") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes("components", "0", "components") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes("components", "0", "components", "0", "custom_id") == ["BASE_TYPE_MAX_LENGTH"]
    assert codes("components", "0", "components", "0", "label") == ["BASE_TYPE_MAX_LENGTH"]
    assert not fake.channel_messages  # nothing was posted
    # Within every limit, the same shape is accepted; in a callback the errors sit under data.
    assert (await fake_post(fake, f"/channels/{CHANNEL_ID}/messages", {"embeds": []}))[0] == 200
    payload = interaction(command("help"))
    status, answer = await fake_post(
        fake,
        f"/interactions/{payload['id']}/{payload['token']}/callback",
        {"type": 4, "data": {"content": "c" * 2001}},
    )
    assert status == 400 and "content" in answer["errors"]["data"]


# -- reader signals: ✓ relevant and ✗ not relevant -------------------------------------------


async def followed_topic(fake: FakeDiscord, client: PaperbotClient, bot: PaperBot) -> int:
    """Ada follows kv-cache; the topic subscription's id."""
    await run(fake, client, interaction(command("subscribe", topic="kv-cache")))

    def topic_id(store: Store) -> int:
        subscriber = store.subscribers.find("discord", "user", ADA)
        assert subscriber is not None
        return store.subscribers.topics(subscriber.id)[0].id

    return int(await bot.runner.call(topic_id))


async def signals_and_muted(bot: PaperBot, topic_id: int) -> Any:
    def read(store: Store) -> Any:
        subscriber = store.subscribers.find("discord", "user", ADA)
        muted = store.subscribers.muted(subscriber.id) if subscriber else set()
        found = store.signals.of_topics([topic_id]).get(topic_id, [])
        return {(s.paper_id, s.relevant) for s in found}, muted

    return await bot.runner.call(read)


async def test_relevant_and_not_relevant_buttons_teach_the_followed_topic(
    fake: FakeDiscord, client: PaperbotClient, bot: PaperBot
) -> None:
    topic_id = await followed_topic(fake, client, bot)
    (answer,) = await run(fake, client, interaction(command("search", query="kv-cache")))
    ids = [b["custom_id"] for row in answer["components"] for b in row["components"]]
    relevant = [i for i in ids if i.startswith("paperbot:rel:")]
    assert len(relevant) >= 2 and len(answer["components"]) <= 5
    assert all(i.startswith(f"paperbot:rel:{topic_id}:") for i in relevant)
    assert "paperbot:sub:kv-cache" not in ids  # followed already
    first, second = (i.rsplit(":", 1)[1] for i in relevant[:2])

    (thanks,) = await run(fake, client, clicked(relevant[0]))
    assert thanks["flags"] == 64
    assert "will bring more papers like" in thanks["embeds"][0]["description"]
    (muted,) = await run(fake, client, clicked(f"paperbot:mute:{topic_id}:{second}"))
    text = muted["embeds"][0]["description"]
    assert "won't show you" in text and "will leave out papers like it" in text
    # Each click was deferred at once (the fake refuses a callback after 3 s).
    assert all(c["type"] == 5 for c in fake.sent("POST", "/interactions/"))
    assert await signals_and_muted(bot, topic_id) == (
        {(first, True), (second, False)},
        {second},
    )


async def test_an_old_mute_button_still_mutes_and_teaches_nothing(
    fake: FakeDiscord, client: PaperbotClient, bot: PaperBot
) -> None:
    topic_id = await followed_topic(fake, client, bot)
    paper = await bot.runner.call(lambda s: s.papers.by_rowid([1])[1])
    (muted,) = await run(fake, client, clicked(f"paperbot:mute:{paper.id}"))
    assert "won't show you" in muted["embeds"][0]["description"]
    assert await signals_and_muted(bot, topic_id) == (set(), {paper.id})


@pytest.mark.parametrize(
    "custom_id",
    [
        "paperbot:rel:2401.00001",  # no topic
        "paperbot:rel:x:2401.00001",
        "paperbot:rel:1:",
        "paperbot:rel:99999999999999999999999:2401.00001",
        "paperbot:mute:1:2:3",
    ],
)
async def test_a_garbled_signal_button_gets_a_friendly_answer_and_records_nothing(
    fake: FakeDiscord, client: PaperbotClient, bot: PaperBot, custom_id: str
) -> None:
    topic_id = await followed_topic(fake, client, bot)
    (answer,) = await run(fake, client, clicked(custom_id))
    text = answer["embeds"][0]["description"]
    assert text.startswith("❌") and "could not read that button" in text
    assert await signals_and_muted(bot, topic_id) == (set(), set())


async def test_a_full_digest_with_signals_is_accepted_by_discord(
    fake: FakeDiscord, client: PaperbotClient
) -> None:
    from tests.test_slack_blocks import full_digest

    destination = DiscordDestination(client)
    await deliver(destination, subscriber("channel", CHANNEL_ID), full_digest(), "7:2026-11-23")
    posts = fake.sent("POST", "/channels/")
    buttons = [b for p in posts for row in p["components"] for b in row["components"]]
    assert len(buttons) == 150  # ✓, ✗ and more like it for each of the 50 papers
    assert all(len(p["components"]) <= 5 for p in posts)
    assert buttons[0]["custom_id"] == "paperbot:rel:100:2611.00000"
    assert buttons[0]["style"] == 3  # success (green)
