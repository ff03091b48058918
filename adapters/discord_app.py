"""Discord adapter on discord.py: the `/papers` command group, paper buttons, and digests.

Thin by design: options become a core `Command`, `PaperBot` answers with a `Reply`, and
`adapters.discord_embeds` turns it into embeds and buttons. Every command defers (ephemerally)
before asking the core, so a slow look-up never misses Discord's 3-second window.

Buttons carry everything they need in their custom_id (`paperbot:<kind>:<value>`) and are
`DynamicItem`s, so they keep working on messages sent before a restart.

Channel subscriptions need Manage Server or Manage Channels in that channel; the adapter reports
that as `Caller.can_manage_channel` and the core decides. Discord applies default member
permissions only to top-level commands, so `/papers channel ...` cannot be hidden from members
without moving it out of `/papers`; members who try it get the core's refusal instead.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from dataclasses import astuple
from datetime import datetime
from typing import Any, Literal, cast

import discord
from discord import app_commands
from discord.utils import MISSING

from adapters.discord_embeds import (
    Message,
    digest_marker,
    digest_messages,
    has_marker,
    reply_messages,
)
from bot.commands import Command
from bot.errors import DestinationGone, LookupUnavailable, PostRejected
from bot.models import Caller, Digest, Reply, Subscriber
from bot.service import PaperBot

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
        workspace=str(interaction.guild_id or ""),
        can_manage_channel=in_guild and (perms.manage_guild or perms.manage_channels),
        user_name=interaction.user.name,
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
    await send_reply(interaction, await _bot(interaction).run(caller_of(interaction), command))


_STYLES = {
    "sub": discord.ButtonStyle.primary,
    "more": discord.ButtonStyle.secondary,
    "mute": discord.ButtonStyle.secondary,
}


class PaperButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"paperbot:(?P<kind>sub|more|mute):(?P<value>.+)",
):
    """Subscribe to a topic, more like a paper, or not relevant; rebuilt from its custom_id."""

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
        await interaction.response.defer(ephemeral=True, thinking=True)
        bot, caller = _bot(interaction), caller_of(interaction)
        if self.kind == "sub":
            reply = await bot.run(caller, Command("subscribe", arg=self.value))
        elif self.kind == "more":
            reply = await bot.more_like(caller, self.value)
        else:
            reply = await bot.mute(caller, self.value)
        await send_reply(interaction, reply)


def _choices(pairs: list[tuple[str, str]]) -> list[app_commands.Choice[str]]:
    return [
        app_commands.Choice(name=name[:MAX_CHOICE_CHARS], value=value)
        for name, value in pairs
        if value and len(value) <= MAX_CHOICE_CHARS
    ][:MAX_CHOICES]


async def _suggest(interaction: discord.Interaction[Any], current: str) -> list[Any]:
    pairs = await _bot(interaction).suggest_topics("discord", current, MAX_CHOICES)
    return _choices(pairs)


async def _own(interaction: discord.Interaction[Any], current: str, channel: bool) -> list[Any]:
    topics = await _bot(interaction).own_topics(caller_of(interaction), channel=channel)
    typed = current.lower().strip()
    return _choices([(t, t) for t in topics if typed in t.lower()])


Topic = app_commands.Range[str, 1, 300]
SettingsField = Literal["time", "tz", "days", "max", "pause", "resume"]
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

    @app_commands.command(name="unsubscribe", description="Stop a topic in this channel")
    @app_commands.describe(topic="The topic or its number in /papers channel list")
    async def unsubscribe(self, interaction: discord.Interaction[Any], topic: Topic) -> None:
        """`/papers channel unsubscribe <topic|number>`."""
        await run_command(interaction, Command("unsubscribe", arg=topic, channel=True))

    @unsubscribe.autocomplete("topic")
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

    @unsubscribe.autocomplete("topic")
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

    @app_commands.command(name="help", description="What paperbot can do")
    async def help(self, interaction: discord.Interaction[Any]) -> None:
        """`/papers help`."""
        await run_command(interaction, Command("help"))


class PaperbotClient(discord.Client):
    """The Discord client: default (unprivileged) intents, the `/papers` tree, the buttons."""

    def __init__(self, bot: PaperBot, guild_id: int | None = None, **options: Any) -> None:
        super().__init__(intents=discord.Intents.default(), **options)
        self.bot = bot
        self.guild_id = guild_id
        self.tree = app_commands.CommandTree(self)
        self.tree.add_command(PapersGroup())
        self.tree.on_error = self._on_tree_error  # type: ignore[method-assign]

    async def setup_hook(self) -> None:
        """Register the buttons and sync the commands (never in on_ready: it runs again)."""
        self.add_dynamic_items(PaperButton)
        if self.guild_id:
            guild = discord.Object(self.guild_id)
            self.tree.copy_global_to(guild=guild)
            synced = await self.tree.sync(guild=guild)
        else:
            synced = await self.tree.sync()
        log.info("discord commands synced: %d (guild=%s)", len(synced), self.guild_id or "global")

    async def _on_tree_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        log.error("discord command failed: %r", error, exc_info=error)
        if not interaction.response.is_done():
            await interaction.response.send_message(
                "Sorry, something went wrong on my side. Please try again.", ephemeral=True
            )


class DiscordDestination:
    """Delivers digests by DM to users and by message to channels."""

    platform = "discord"

    def __init__(self, client: discord.Client) -> None:
        self.client = client

    async def _channel(self, subscriber: Subscriber) -> discord.abc.Messageable:
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
