"""Discord adapter on discord.py: the `/papers` command group, paper buttons, and digests.

Thin by design: options become a core `Command`, `PaperBot` answers with a `Reply`, and
`adapters.discord_embeds` turns it into embeds and buttons. Every command defers (ephemerally)
before asking the core, so a slow look-up never misses Discord's 3-second window.

`run_discord` starts it in the background (log in, sync the commands, keep the gateway
connected), retrying transient failures with backoff and stopping with one ERROR line that says
what to fix on a permanent one (token refused, command tree refused, gateway closed with 4004 or
4014); its state is in the core's adapter registry for /healthz and /metrics.

No interaction is left hanging: a command or button that fails (or takes over a minute) ends
with an ephemeral apology, as a follow-up once deferred, and one log line; autocomplete always
answers, with no choices if the core fails or is slow.

Buttons carry everything they need in their custom_id (`paperbot:<kind>:<value>`) and are
`DynamicItem`s, so they keep working on messages sent before a restart.

Channel subscriptions need Manage Server or Manage Channels in that channel; the adapter reports
that as `Caller.can_manage_channel` and the core decides. Discord applies default member
permissions only to top-level commands, so `/papers channel ...` cannot be hidden from members
without moving it out of `/papers`; members who try it get the core's refusal instead.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from collections.abc import Awaitable
from dataclasses import astuple
from datetime import datetime
from typing import Any, Literal, cast

import discord
from discord import app_commands
from discord.utils import MISSING

from adapters.base import Adapter
from adapters.discord_embeds import (
    Message,
    digest_marker,
    digest_messages,
    has_marker,
    reply_messages,
)
from adapters.signals import signal_command
from adapters.supervise import Permanent, Supervisor, cancelled
from bot.commands import Command, SettingsField
from bot.config import Settings
from bot.errors import DestinationGone, LookupUnavailable, PostRejected
from bot.health import Adapters
from bot.models import Caller, Digest, Reply, Subscriber
from bot.service import PaperBot
from bot.topics import MAX_TOPIC_CHARS

log = logging.getLogger(__name__)

# Discord error codes meaning the destination will never accept our messages.
GONE_CODES = {
    10003: "unknown channel",
    10013: "unknown user",
    50001: "missing access",
    50007: "cannot send messages to this user",
    50013: "missing permissions",
}
# Refusals to read a channel's history: a permission missing, not a channel gone.
NO_HISTORY_CODES = frozenset({50001, 50013})
MAX_CHOICES = 25
MAX_CHOICE_CHARS = 100
# A deferred interaction stays "thinking..." for 15 minutes unless answered; a core call that
# has not answered in a minute is not going to, so the user is told instead.
COMMAND_SECONDS = 60.0
# Discord drops an autocomplete answer later than 3 s after the keystroke.
AUTOCOMPLETE_SECONDS = 2.0
SORRY = "Sorry, something went wrong on my side. Please try again."
TOO_SLOW = "Sorry, that is taking too long. Please try again in a minute."

# Exactly what the bot needs in a channel: see it, post embeds, and read back its own
# messages (to find a digest already posted before a crash).
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, embed_links=True, read_message_history=True
)
INVITE_SCOPES = ("bot", "applications.commands")


def invite_url(client_id: int) -> str:
    """The OAuth2 URL that adds the bot and its slash commands to a server."""
    return discord.utils.oauth_url(client_id, permissions=INVITE_PERMISSIONS, scopes=INVITE_SCOPES)


def client_id_from_token(token: str) -> int | None:
    """The application id a bot token starts with (base64 of the bot user's id), if readable."""
    head = token.split(".", 1)[0]
    try:
        decoded = base64.b64decode(head + "=" * (-len(head) % 4), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return int(decoded) if decoded.isdigit() else None


def caller_of(interaction: discord.Interaction[Any]) -> Caller:
    """Who is asking and where; channel management comes from the member's permissions."""
    in_guild = interaction.guild_id is not None
    perms = interaction.permissions
    return Caller(
        platform="discord",
        user_id=str(interaction.user.id),
        channel_id=str(interaction.channel_id or "") if in_guild else "",
        can_manage_channel=in_guild and (perms.manage_guild or perms.manage_channels),
    )


def _embeds(message: Message) -> list[discord.Embed]:
    return [discord.Embed.from_dict(embed) for embed in message.embeds]


def _view(message: Message) -> discord.ui.View:
    buttons = message.buttons()
    if not buttons:
        return cast(discord.ui.View, MISSING)  # discord.py's "no components" sentinel
    view = discord.ui.View(timeout=None)
    for button in buttons:
        view.add_item(PaperButton(button.kind, button.value, button.label, button.row))
    return view


async def send_reply(interaction: discord.Interaction[Any], reply: Reply) -> None:
    """Answer a deferred interaction with the reply's messages, ephemerally."""
    for message in reply_messages(reply):
        await interaction.followup.send(
            embeds=_embeds(message), view=_view(message), ephemeral=True
        )


def _bot(interaction: discord.Interaction[Any]) -> PaperBot:
    return cast(PaperbotClient, interaction.client).bot


async def run_command(interaction: discord.Interaction[Any], command: Command) -> None:
    """Defer, run a core command for the interaction's user, and answer with the reply."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    async with asyncio.timeout(COMMAND_SECONDS):
        reply = await _bot(interaction).run(caller_of(interaction), command)
    await send_reply(interaction, reply)


# What each button kind asks of the core; the button's value is the command's argument, or
# for the signals (rel, and mute since topics learn) `<topic_id>:<paper_id>`.
BUTTON_ACTIONS: dict[str, Literal["subscribe", "more", "mute", "relevant"]] = {
    "sub": "subscribe",
    "more": "more",
    "mute": "mute",
    "rel": "relevant",
}


def button_command(kind: str, value: str) -> Command:
    """The core command a button's kind and value ask for (a garbled signal: `invalid`)."""
    action = BUTTON_ACTIONS[kind]
    if action in ("relevant", "mute"):
        # Custom ids come back as sent, or forged: a garbled one is answered, not run.
        return signal_command(action, value)
    return Command(action, arg=value)


def _what(interaction: discord.Interaction[Any]) -> str:
    if interaction.command is not None:
        return f"command /{interaction.command.qualified_name}"
    data: dict[str, Any] = dict(interaction.data or {})
    return f"button {data.get('custom_id', '?')}"


async def apologise(interaction: discord.Interaction[Any], error: BaseException) -> None:
    """End a failed interaction with an ephemeral apology the user sees; log it once."""
    # The tree wraps a command's exception in CommandInvokeError.
    cause = getattr(error, "original", None) or error
    text = TOO_SLOW if isinstance(cause, TimeoutError) else SORRY
    untold = ""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except discord.HTTPException as exc:
        # Typically the interaction expired (10062): nothing can reach the user any more.
        untold = f"; the user could not be told: {exc}"
    log.error("discord %s failed: %r%s", _what(interaction), cause, untold, exc_info=cause)


_STYLES = {
    "sub": discord.ButtonStyle.primary,
    "more": discord.ButtonStyle.secondary,
    "mute": discord.ButtonStyle.secondary,
    "rel": discord.ButtonStyle.success,
}


class PaperButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"paperbot:(?P<kind>sub|more|mute|rel):(?P<value>.+)",
):
    """Subscribe to a topic, more like a paper, relevant or not relevant; rebuilt from its
    custom_id (a mute of a message sent before topics learned carries a bare paper id)."""

    def __init__(self, kind: str, value: str, label: str = "", row: int | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                label=label or kind,
                custom_id=f"paperbot:{kind}:{value}",
                style=_STYLES[kind],
                row=row,
            )
        )
        self.kind = kind
        self.value = value

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> PaperButton:
        """Rebuild the button from a click on any message, sent before a restart or after."""
        label = getattr(item, "label", None) or ""
        return cls(match["kind"], match["value"], label)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        """Act on the click for whoever clicked, ephemerally."""
        try:
            await run_command(interaction, button_command(self.kind, self.value))
        except Exception as error:  # discord.py only logs a DynamicItem's errors: answer here
            await apologise(interaction, error)


def _choices(pairs: list[tuple[str, str]]) -> list[app_commands.Choice[str]]:
    return [
        app_commands.Choice(name=name[:MAX_CHOICE_CHARS], value=value)
        for name, value in pairs
        if value and len(value) <= MAX_CHOICE_CHARS
    ][:MAX_CHOICES]


async def _always_choices(
    interaction: discord.Interaction[Any], find: Awaitable[list[tuple[str, str]]]
) -> list[app_commands.Choice[str]]:
    # The tree only logs an autocomplete's exception and answers nothing; answer no choices.
    try:
        async with asyncio.timeout(AUTOCOMPLETE_SECONDS):
            return _choices(await find)
    except TimeoutError:
        log.warning(
            "discord autocomplete for %s took over %.0f s: answered no choices",
            _what(interaction),
            AUTOCOMPLETE_SECONDS,
        )
    except Exception:
        log.exception("discord autocomplete for %s failed", _what(interaction))
    return []


async def _suggest(interaction: discord.Interaction[Any], current: str) -> list[Any]:
    find = _bot(interaction).suggest_topics("discord", current, MAX_CHOICES)
    return await _always_choices(interaction, find)


async def _own(interaction: discord.Interaction[Any], current: str, channel: bool) -> list[Any]:
    async def find() -> list[tuple[str, str]]:
        topics = await _bot(interaction).own_topics(caller_of(interaction), channel=channel)
        typed = current.lower().strip()
        return [(t, t) for t in topics if typed in t.lower()]

    return await _always_choices(interaction, find())


Topic = app_commands.Range[str, 1, MAX_TOPIC_CHARS]
TOPIC_HELP = 'A topic: kv-cache, MoE, "flash attention", quantization -diffusion, author:"Name"'
FIELD_HELP = "What to change: time (9:30), tz (Europe/Berlin), days (mon-fri), max (1-50)"


class ChannelGroup(app_commands.Group):
    """`/papers channel ...`: this channel's digest topics and settings."""

    def __init__(self) -> None:
        super().__init__(
            name="channel",
            description="This channel's digest (needs Manage Server or Manage Channels)",
        )

    @app_commands.command(name="subscribe", description="Post a daily digest on a topic here")
    @app_commands.describe(topic=TOPIC_HELP)
    async def subscribe(self, interaction: discord.Interaction[Any], topic: Topic) -> None:
        """`/papers channel subscribe <topic>`."""
        await run_command(interaction, Command("subscribe", arg=topic, channel=True))

    @subscribe.autocomplete("topic")
    async def _popular(self, interaction: discord.Interaction[Any], current: str) -> Any:
        return await _suggest(interaction, current)

    @app_commands.command(name="unsubscribe", description="Stop a topic in this channel")
    @app_commands.describe(topic="The topic or its number in /papers channel list")
    async def unsubscribe(self, interaction: discord.Interaction[Any], topic: Topic) -> None:
        """`/papers channel unsubscribe <topic|number>`."""
        await run_command(interaction, Command("unsubscribe", arg=topic, channel=True))

    @app_commands.command(name="forget", description="Clear what a topic here learned")
    @app_commands.describe(topic="The topic or its number in /papers channel list")
    async def forget(self, interaction: discord.Interaction[Any], topic: Topic) -> None:
        """`/papers channel forget <topic|number>`."""
        await run_command(interaction, Command("forget", arg=topic, channel=True))

    @unsubscribe.autocomplete("topic")
    @forget.autocomplete("topic")
    async def _channel_topics(self, interaction: discord.Interaction[Any], current: str) -> Any:
        return await _own(interaction, current, channel=True)

    @app_commands.command(name="list", description="This channel's topics and digest settings")
    async def list_(self, interaction: discord.Interaction[Any]) -> None:
        """`/papers channel list`."""
        await run_command(interaction, Command("list", channel=True))

    @app_commands.command(name="settings", description="When this channel gets its digest")
    @app_commands.describe(field=FIELD_HELP, value="The new value")
    async def settings(
        self,
        interaction: discord.Interaction[Any],
        field: SettingsField | None = None,
        value: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        """`/papers channel settings [field] [value]`."""
        command = Command("settings", arg=field or "", value=value or "", channel=True)
        await run_command(interaction, command)


class PapersGroup(app_commands.Group):
    """`/papers ...`: look-ups, personal subscriptions and settings, and channel digests."""

    def __init__(self) -> None:
        super().__init__(name="papers", description="Research papers on your topics, daily")
        self.add_command(ChannelGroup())

    @app_commands.command(name="search", description="Look up recent papers on a topic")
    @app_commands.describe(query=TOPIC_HELP)
    async def search(self, interaction: discord.Interaction[Any], query: Topic) -> None:
        """`/papers search <topic>`."""
        await run_command(interaction, Command("lookup", arg=query))

    @app_commands.command(name="subscribe", description="Get a daily DM digest on a topic")
    @app_commands.describe(topic=TOPIC_HELP)
    async def subscribe(self, interaction: discord.Interaction[Any], topic: Topic) -> None:
        """`/papers subscribe <topic>`."""
        await run_command(interaction, Command("subscribe", arg=topic))

    @search.autocomplete("query")
    @subscribe.autocomplete("topic")
    async def _popular(self, interaction: discord.Interaction[Any], current: str) -> Any:
        return await _suggest(interaction, current)

    @app_commands.command(name="unsubscribe", description="Stop following a topic")
    @app_commands.describe(topic="The topic or its number in /papers list")
    async def unsubscribe(self, interaction: discord.Interaction[Any], topic: Topic) -> None:
        """`/papers unsubscribe <topic|number>`."""
        await run_command(interaction, Command("unsubscribe", arg=topic))

    @app_commands.command(name="forget", description="Clear what a topic learned from ✓ and ✗")
    @app_commands.describe(topic="The topic or its number in /papers list")
    async def forget(self, interaction: discord.Interaction[Any], topic: Topic) -> None:
        """`/papers forget <topic|number>`."""
        await run_command(interaction, Command("forget", arg=topic))

    @unsubscribe.autocomplete("topic")
    @forget.autocomplete("topic")
    async def _own_topics(self, interaction: discord.Interaction[Any], current: str) -> Any:
        return await _own(interaction, current, channel=False)

    @app_commands.command(name="list", description="Your topics and digest settings")
    async def list_(self, interaction: discord.Interaction[Any]) -> None:
        """`/papers list`."""
        await run_command(interaction, Command("list"))

    @app_commands.command(name="digest", description="Preview your next digest now")
    async def digest(self, interaction: discord.Interaction[Any]) -> None:
        """`/papers digest`."""
        await run_command(interaction, Command("digest"))

    @app_commands.command(name="settings", description="When and how you get your digest")
    @app_commands.describe(field=FIELD_HELP, value="The new value")
    async def settings(
        self,
        interaction: discord.Interaction[Any],
        field: SettingsField | None = None,
        value: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        """`/papers settings [field] [value]`."""
        await run_command(interaction, Command("settings", arg=field or "", value=value or ""))

    @app_commands.command(name="feed", description="Your digests as a private feed for a reader")
    @app_commands.describe(action="reset: give the feed a new address (the old one stops working)")
    async def feed(
        self, interaction: discord.Interaction[Any], action: Literal["reset"] | None = None
    ) -> None:
        """`/papers feed [reset]` (ephemeral, as every answer here: the address is private)."""
        await run_command(interaction, Command("feed", arg=action or ""))

    @app_commands.command(name="help", description="What paperbot can do")
    async def help(self, interaction: discord.Interaction[Any]) -> None:
        """`/papers help`."""
        await run_command(interaction, Command("help"))


class PaperbotClient(discord.Client):
    """The Discord client: default (unprivileged) intents, the `/papers` tree, the buttons."""

    def __init__(
        self,
        bot: PaperBot,
        guild_id: int | None = None,
        adapters: Adapters | None = None,
        **options: Any,
    ) -> None:
        super().__init__(intents=discord.Intents.default(), **options)
        self.bot = bot
        self.guild_id = guild_id
        self.adapters = adapters or Adapters()
        self.tree = app_commands.CommandTree(self)
        self.tree.add_command(PapersGroup())
        self.tree.on_error = self._on_tree_error  # type: ignore[method-assign]

    async def setup_hook(self) -> None:
        """Register the buttons (at login; the commands are synced after, by `run_discord`)."""
        self.add_dynamic_items(PaperButton)

    async def sync_commands(self) -> int:
        """Sync the `/papers` tree, to DISCORD_GUILD_ID's server if set; how many commands."""
        if self.guild_id:
            guild = discord.Object(self.guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        else:
            synced = await self.tree.sync()
        log.info("discord commands synced: %d (guild=%s)", len(synced), self.guild_id or "global")
        return len(synced)

    async def on_connect(self) -> None:
        """The gateway said READY: serving."""
        self.adapters.set("discord", "ok")

    async def on_resumed(self) -> None:
        """The gateway resumed after a disconnection: serving again."""
        self.adapters.set("discord", "ok")

    async def on_disconnect(self) -> None:
        """The gateway dropped; discord.py reconnects by itself (and logs its failures)."""
        state = self.adapters.get("discord")
        # A close for good is recorded as failed by run_discord, whichever runs first.
        if not self.is_closed() and (state is None or state.state != "failed"):
            self.adapters.set("discord", "retrying", "gateway disconnected; reconnecting")

    async def _on_tree_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        await apologise(interaction, error)


DEVELOPER_PORTAL = "discord.com/developers/applications"
TOKEN_FIX = f"reset the bot token under Bot at {DEVELOPER_PORTAL} and set DISCORD_TOKEN"
# Gateway close codes discord.py does not reconnect after, and what to do about each.
GATEWAY_CLOSED = {
    4004: f"authentication failed: DISCORD_TOKEN was refused; {TOKEN_FIX}",
    4010: "invalid shard: paperbot runs one shard; report this as a bug",
    4011: "sharding required: the bot is in too many servers for one shard",
    4012: "invalid API version: upgrade discord.py",
    4013: "invalid intents: report this as a bug",
    4014: (
        "disallowed intents: the application may not use an intent paperbot asks for; "
        f"enable it under Bot > Privileged Gateway Intents at {DEVELOPER_PORTAL}"
    ),
}


def _transient_http(exc: discord.HTTPException) -> bool:
    return exc.status >= 500 or exc.status == 429


async def _drop_session(client: discord.Client) -> None:
    # A failed login leaves discord.py's HTTP session (and its connector) open, and the next
    # login opens another; close it, and let the next login make a new connector.
    await client.http.close()
    client.http.connector = MISSING


async def _login(client: discord.Client, token: str) -> None:
    try:
        await client.login(token)
    except discord.LoginFailure as exc:
        raise Permanent(f"Discord refused DISCORD_TOKEN (401 Unauthorized): {TOKEN_FIX}") from exc
    except discord.HTTPException as exc:
        await _drop_session(client)
        if _transient_http(exc):
            raise
        raise Permanent(
            f"Discord refused the login ({exc.status}, error {exc.code}: "
            f"{' '.join(exc.text.split())}); check DISCORD_TOKEN"
        ) from exc
    except BaseException:
        await _drop_session(client)
        raise


async def _sync(client: PaperbotClient) -> int:
    try:
        return await client.sync_commands()
    except discord.HTTPException as exc:
        if _transient_http(exc):
            raise
        refused = f"Discord refused the command sync ({exc.status}, error {exc.code}: " + (
            " ".join(exc.text.split()) + ")"
        )
        if exc.status == 403 and client.guild_id:
            raise Permanent(
                f"{refused}: add the bot to server {client.guild_id} with the "
                "applications.commands scope (paperbot discord-invite) or fix DISCORD_GUILD_ID"
            ) from exc
        raise Permanent(f"{refused}: the /papers commands need a fixed paperbot") from exc


async def _connect(client: discord.Client) -> None:
    try:
        # Reconnects by itself after drops and 5xx; returns when the client is closed.
        await client.connect(reconnect=True)
    except discord.PrivilegedIntentsRequired as exc:
        raise Permanent(f"Discord closed the gateway with 4014 ({GATEWAY_CLOSED[4014]})") from exc
    except discord.ConnectionClosed as exc:
        fix = GATEWAY_CLOSED.get(exc.code, exc.reason or "not retried")
        raise Permanent(f"Discord closed the gateway with {exc.code} ({fix})") from exc


async def run_discord(client: PaperbotClient, token: str, supervisor: Supervisor) -> None:
    """Log in, sync the commands and stay connected, retrying what may pass; until closed."""
    try:
        supervisor.starting("logging in")
        await supervisor.step("login", lambda: _login(client, token))
        supervisor.starting("syncing the commands")
        await supervisor.step("command sync", lambda: _sync(client))
        supervisor.starting("connecting to the gateway")
        await _connect(client)
    except Permanent as exc:
        supervisor.failed(str(exc))
    except Exception as exc:  # a bug of ours or discord.py's: stop this adapter, not the bot
        log.exception("discord adapter stopped by an unexpected error")
        supervisor.adapters.set(supervisor.name, "failed", f"unexpected error: {exc!r}")
    finally:
        await client.close()


class DiscordDestination:
    """Delivers digests by DM to users and by message to channels."""

    platform = "discord"

    def __init__(self, client: discord.Client) -> None:
        self.client = client

    async def _channel(self, subscriber: Subscriber) -> discord.abc.Messageable:
        if self.client.user is None:
            # Not logged in (yet, or Discord refused the start): nothing was sent.
            raise PostRejected("discord is not connected")
        if subscriber.kind == "user":
            return await self.client.create_dm(discord.Object(int(subscriber.address)))
        return self.client.get_partial_messageable(int(subscriber.address))

    def render(self, digest: Digest, key: str) -> list[str]:
        """The digest as messages of embeds and buttons, each marked with its key and part."""
        return [
            json.dumps({"embeds": m.embeds, "buttons": [astuple(b) for b in m.buttons()]})
            for m in digest_messages(digest, key)
        ]

    async def post(self, subscriber: Subscriber, body: str) -> str:
        """Post one rendered message; returns its id."""
        message = json.loads(body)
        view = discord.ui.View(timeout=None) if message["buttons"] else MISSING
        for kind, value, label, row in message["buttons"]:
            view.add_item(PaperButton(kind, value, label, row))
        try:
            channel = await self._channel(subscriber)
            embeds = [discord.Embed.from_dict(embed) for embed in message["embeds"]]
            sent = await channel.send(embeds=embeds, view=view)
        except discord.HTTPException as exc:
            self._raise_if_gone(subscriber, exc)
            raise PostRejected(f"discord answered {exc.status} ({exc.code})") from exc
        return str(sent.id)

    async def find_posted(
        self, subscriber: Subscriber, key: str, part: int, since: datetime, until: datetime
    ) -> str | None:
        """The id of part `part` of digest `key` if it was posted between `since` and `until`."""
        marker = digest_marker(key, part)
        me = self.client.user
        try:
            channel = await self._channel(subscriber)
            async for message in channel.history(limit=None, after=since, before=until):
                if me is not None and message.author.id != me.id:
                    continue
                if message.embeds and has_marker(dict(message.embeds[0].to_dict()), marker):
                    return str(message.id)
        except discord.HTTPException as exc:
            if exc.code in NO_HISTORY_CODES:
                # It may still post there; it only cannot read back what it posted.
                raise LookupUnavailable(
                    f"reading the channel's history was refused ({exc.code}): the bot needs "
                    "Read Message History there"
                ) from exc
            self._raise_if_gone(subscriber, exc)
            raise PostRejected(f"discord answered {exc.status} ({exc.code})") from exc
        return None

    @staticmethod
    def _raise_if_gone(subscriber: Subscriber, exc: discord.HTTPException) -> None:
        reason = GONE_CODES.get(exc.code)
        if reason is not None:
            log.warning("discord destination %s is gone: %s", subscriber.label, reason)
            raise DestinationGone(f"{reason} ({exc.code})") from exc


class DiscordAdapter(Adapter):
    """The Discord client, started in the background (`run_discord`), and its destination."""

    platform = "discord"

    def __init__(self, client: PaperbotClient, token: str) -> None:
        self.client = client
        self.destination = DiscordDestination(client)
        self._token = token
        self._running: asyncio.Task[None] | None = None

    async def start(self) -> str:
        """Log in, sync and connect in the background: nothing waits for Discord."""
        supervisor = Supervisor(self.platform, self.client.adapters)
        running = run_discord(self.client, self._token, supervisor)
        self._running = asyncio.create_task(running, name="discord")
        return "Discord adapter starting (log in, command sync, gateway)."

    async def stop(self) -> None:
        """Stop the start-up or the gateway, and close the client."""
        if self._running is not None:
            await cancelled(self._running)
        await self.client.close()


def discord_adapter(settings: Settings, bot: PaperBot, registry: Adapters) -> DiscordAdapter:
    """The Discord adapter as the settings describe it.

    A failing or slow Discord is retried (or given up with one ERROR line) while Slack,
    digests, ingest and /healthz carry on.
    """
    assert settings.discord_token is not None
    client = PaperbotClient(bot, guild_id=settings.discord_guild_id, adapters=registry)
    return DiscordAdapter(client, settings.discord_token.get_secret_value())
