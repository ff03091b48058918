"""Slack adapter on slack-bolt's AsyncApp: `/papers`, buttons, and digests by DM or channel.

Thin by design: it turns Slack payloads into core calls (`PaperBot`) and core replies into
Block Kit (`adapters.slack_blocks`). A bolt middleware makes each payload's `Caller` and
`Command` (the `/papers` text parsed once, or a button's) for every listener. `/papers` is acked
at once and answered afterwards, ephemerally. Web API calls retry on 429 (honouring
Retry-After) and connection errors.

Channel subscriptions: a workspace admin or owner (Slack's `users.info`) or the person who
added the bot to the channel (the `member_joined_channel` event's inviter) may change them.

Two modes: one workspace with `SLACK_BOT_TOKEN`, or many with OAuth (`SLACK_CLIENT_ID` and
`SLACK_CLIENT_SECRET`; `adapters.slack_oauth`). Either way every call uses the token of the
team the payload or the subscriber belongs to, and subscribers are keyed by team.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from adapters import supervise
from adapters.base import Adapter, Misconfigured
from adapters.signals import signal_command
from adapters.slack_blocks import (
    MAX_BLOCKS,
    digest_messages,
    fallback_text,
    header,
    reply_messages,
    section,
)
from adapters.slack_oauth import INSTALL_PATH, REDIRECT_PATH, SlackOAuth, oauth_problem
from bot.commands import Action, Command, parse_command
from bot.config import Settings
from bot.errors import DestinationGone, LookupUnavailable, PostRejected
from bot.health import Adapters
from bot.models import Caller, Digest, Reply, Subscriber
from bot.service import PaperBot

log = logging.getLogger(__name__)

# Errors meaning the destination is gone for good: stop sending there.
GONE_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "account_inactive",
        "user_not_found",
        "cannot_dm_bot",
        "user_disabled",
    }
)
CHANNEL_POST_INTERVAL = 1.0  # Slack allows about one message per second per channel
# conversations.history for apps outside the Marketplace (2025): 1 call a minute, 15 messages.
HISTORY_INTERVAL_SECONDS = 60.0
HISTORY_PAGE = 15
# What crash recovery needs to look a digest message up, by where digests go.
RECOVERY_SCOPES = ("im:history", "channels:history", "groups:history")
# What each button asks of the core; the button's value is the command's argument (a topic,
# the look-up's query, or a paper id), or for the signal buttons `<topic_id>:<paper_id>`.
BUTTON_ACTIONS: dict[str, Action] = {
    "subscribe_topic": "subscribe",
    "relevant": "relevant",
    "not_relevant": "mute",
    "more_like_this": "more",
    "share_lookup": "lookup",
}
SHARE = "share_lookup"


def error_code(exc: SlackApiError) -> str:
    """Slack's error code (`channel_not_found`, ...) or the HTTP status when there is none."""
    data = getattr(exc.response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return f"http_{getattr(exc.response, 'status_code', '?')}"


def missing_recovery_scopes(granted: str) -> list[str]:
    """The history scopes crash recovery needs that a token's `X-OAuth-Scopes` lacks."""
    have = {scope.strip() for scope in granted.split(",")}
    return [scope for scope in RECOVERY_SCOPES if scope not in have]


def guarantee(missing: list[str]) -> str:
    """Which delivery promise holds for a token lacking these history scopes, and why."""
    if not missing:
        return "exactly once (a message cut by a crash is looked up in the conversation's history)"
    return (
        f"at least once: the token lacks {', '.join(missing)}, so a message cut by a crash "
        "is sent again (reinstall the app from deploy/slack-manifest.yml)"
    )


async def log_guarantee(client: AsyncWebClient) -> None:
    """Say in one log line which delivery promise this workspace's token allows."""
    try:
        response = await client.auth_test()
    except SlackApiError as exc:
        log.error("slack: auth.test refused the bot token (%s)", error_code(exc))
        return
    except Exception as exc:  # unreachable: the adapter's own calls will say more
        log.warning("slack: could not check the token's scopes: %r", exc)
        return
    missing = missing_recovery_scopes(str(response.headers.get("x-oauth-scopes", "")))
    if missing:
        log.warning("slack digests are %s", guarantee(missing))
    else:
        log.info("slack digests are %s", guarantee(missing))


def web_client(token: str | None, api_url: str | None = None) -> AsyncWebClient:
    """A Web API client with retries for rate limits and dropped connections (no token: OAuth
    mode's client for what no team's token is needed, `oauth.v2.access`)."""
    client = AsyncWebClient(token=token, base_url=api_url or AsyncWebClient.BASE_URL)
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    client.retry_handlers.append(AsyncConnectionErrorRetryHandler(max_retry_count=2))
    return client


# The Web API client of a team: the one client in single-workspace mode, else its own token's.
TeamClient = Callable[[str], Awaitable[AsyncWebClient]]


def one_workspace(client: AsyncWebClient) -> TeamClient:
    """Every team's client is this one (single-workspace mode, `SLACK_BOT_TOKEN`)."""

    async def client_for(team: str) -> AsyncWebClient:
        return client

    return client_for


class SlackDestination:
    """Delivers digests: by DM (`conversations.open`) or to a channel, paced per channel.

    Each message carries its ledger key and part in Slack message metadata, so a message cut
    by a crash can be found with `conversations.history` (scopes `im:history`,
    `channels:history`, `groups:history`). Those calls are paced to one per
    `history_interval` seconds for each team: Slack's 2025 limit for apps outside the
    Marketplace is one a minute per workspace, with at most 15 messages each.

    Each subscriber's team (its `workspace`) picks the client, and so the token, through
    `clients`: an `AsyncWebClient` serves every team (single-workspace mode).
    """

    platform = "slack"

    def __init__(
        self,
        clients: TeamClient | AsyncWebClient,
        history_interval: float = HISTORY_INTERVAL_SECONDS,
    ) -> None:
        if isinstance(clients, AsyncWebClient):
            clients = one_workspace(clients)
        self.client_for = clients
        self.history_interval = history_interval
        # By (team, channel or user): ids are unique within a team only.
        self._last_post: dict[tuple[str, str], float] = {}
        self._dm_channels: dict[tuple[str, str], str] = {}
        self._history_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last_history: dict[str, float] = {}

    async def _pace(self, team: str, channel: str) -> None:
        last = self._last_post.get((team, channel))
        if last is not None:
            wait = CHANNEL_POST_INTERVAL - (time.monotonic() - last)
            if wait > 0:
                await asyncio.sleep(wait)
        self._last_post[team, channel] = time.monotonic()

    async def _channel_for(self, client: AsyncWebClient, subscriber: Subscriber) -> str:
        if subscriber.kind != "user":
            return subscriber.address
        key = (subscriber.workspace, subscriber.address)
        channel = self._dm_channels.get(key)
        if channel is None:
            opened = await client.conversations_open(users=subscriber.address)
            channel = self._dm_channels[key] = str(opened["channel"]["id"])
        return channel

    def render(self, digest: Digest, key: str) -> list[str]:
        """The digest as Block Kit messages, each with its key and part in its metadata."""
        messages = digest_messages(digest)
        return [
            json.dumps(
                {
                    "blocks": blocks,
                    "text": fallback_text(blocks),
                    "metadata": {
                        "event_type": "paperbot_digest",
                        "event_payload": {"key": key, "part": n, "parts": len(messages)},
                    },
                }
            )
            for n, blocks in enumerate(messages)
        ]

    async def post(self, subscriber: Subscriber, body: str) -> str:
        """Post one rendered message; returns its ts."""
        message = json.loads(body)
        try:
            client = await self.client_for(subscriber.workspace)
            channel = await self._channel_for(client, subscriber)
            await self._pace(subscriber.workspace, channel)
            posted = await client.chat_postMessage(channel=channel, **message)
            return str(posted["ts"])
        except SlackApiError as exc:
            raise _translated(subscriber, exc) from exc

    async def find_posted(
        self, subscriber: Subscriber, key: str, part: int, since: datetime, until: datetime
    ) -> str | None:
        """The ts of part `part` of digest `key` if it was posted between `since` and `until`."""
        try:
            client = await self.client_for(subscriber.workspace)
            channel = await self._channel_for(client, subscriber)
            cursor: str | None = None
            while True:
                page = await self._history(
                    client, subscriber.workspace, channel, since, until, cursor
                )
                for message in page.get("messages") or []:
                    payload = (message.get("metadata") or {}).get("event_payload") or {}
                    # Digests posted before parts were recorded carry no part: they were one.
                    if payload.get("key") == key and payload.get("part", 0) == part:
                        return str(message.get("ts"))
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if not page.get("has_more") or cursor is None:
                    return None
        except SlackApiError as exc:
            if error_code(exc) == "missing_scope":
                needed = (getattr(exc.response, "data", None) or {}).get("needed", "?")
                raise LookupUnavailable(
                    f"conversations.history refused: the token lacks the {needed} scope"
                ) from exc
            raise _translated(subscriber, exc) from exc

    async def _history(
        self,
        client: AsyncWebClient,
        team: str,
        channel: str,
        since: datetime,
        until: datetime,
        cursor: str | None,
    ) -> Any:
        # One call at a time per team, `history_interval` apart (Tier 1); a 429 beyond that is
        # waited out by the client's retry handler, which honours Retry-After.
        async with self._history_locks[team]:
            last = self._last_history.get(team)
            if last is not None:
                wait = self.history_interval - (time.monotonic() - last)
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                return await client.conversations_history(
                    channel=channel,
                    oldest=f"{since.timestamp():.6f}",
                    latest=f"{until.timestamp():.6f}",
                    inclusive=True,
                    limit=HISTORY_PAGE,
                    include_all_metadata=True,
                    cursor=cursor,
                )
            finally:
                self._last_history[team] = time.monotonic()


def _translated(subscriber: Subscriber, exc: SlackApiError) -> Exception:
    """Slack's answer as the core's error: gone for good, or refused for now."""
    error = error_code(exc)
    if error in GONE_ERRORS:
        log.warning("slack destination %s is gone: %s", subscriber.label, error)
        return DestinationGone(error)
    return PostRejected(f"slack answered {error}")


def slack_adapter(settings: Settings, bot: PaperBot, registry: Adapters) -> SlackAdapter:
    """The Slack adapter as the settings describe it: OAuth mode with a client id (HTTP, many
    workspaces), else one workspace's bot token by Socket Mode with an app token, else HTTP."""
    signing = settings.slack_signing_secret
    secret = signing.get_secret_value() if signing else ""
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    history = settings.slack_history_interval_seconds
    if settings.slack_client_id:
        problem = oauth_problem(settings)
        if problem:
            raise Misconfigured(problem)
        assert settings.slack_client_secret is not None
        oauth = SlackOAuth(
            settings.db_path,
            settings.slack_client_id,
            settings.slack_client_secret.get_secret_value(),
            functools.partial(web_client, api_url=settings.slack_api_url),
        )
        return SlackAdapter(
            bot, oauth.client, secret, oauth=oauth, registry=registry, history_interval=history
        )
    assert settings.slack_bot_token is not None
    client = web_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)
    if not app_token and not secret:
        raise Misconfigured("Slack HTTP mode needs SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN).")
    return SlackAdapter(
        bot,
        client,
        secret or "socket-mode",
        app_token=app_token,
        registry=registry,
        history_interval=history,
    )


Listener = Callable[..., Awaitable[None]]


def _id(value: Any) -> str:
    # Commands name users, channels and teams by id; actions by an object holding the id.
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def caller_of(body: dict[str, Any]) -> Caller:
    """Who is asking and where, from any payload: a command, an action or an event.

    Whether the caller may manage the channel is left False: it costs a look-up, made only for
    a command that needs it (`SlackAdapter._answer`).
    """
    event = body.get("event") or {}
    user = body.get("user_id") or _id(body.get("user")) or _id(event.get("user"))
    channel = body.get("channel_id") or _id(body.get("channel"))
    team = body.get("team_id") or _id(body.get("team"))
    return Caller("slack", str(user), str(channel), str(team))


def command_of(body: dict[str, Any]) -> Command | None:
    """What a payload asks the core: the `/papers` text parsed once, or a button's command."""
    if body.get("command"):
        return parse_command(str(body.get("text") or ""))
    actions = body.get("actions") or []
    action = BUTTON_ACTIONS.get(str(actions[0].get("action_id"))) if actions else None
    if action is None:
        return None
    value = str(actions[0].get("value", ""))
    if action in ("relevant", "mute"):
        # Values come back from Slack as sent, or forged: a garbled one is answered, not run.
        return signal_command(action, value)
    return Command(action, arg=value)


class SlackAdapter(Adapter):
    """The `/papers` command, buttons and App Home, wired to the core; digests by its destination.

    A listener that fails is answered (ephemerally, through the payload's response_url when it
    has one) and logged once, by `_on_error`, Bolt's global error handler.
    """

    SORRY = "Sorry, something went wrong on my side. Please try again."

    # apps.connections.open errors meaning SLACK_APP_TOKEN itself is refused: not retried.
    APP_TOKEN_REFUSED = frozenset(
        {
            "invalid_auth",
            "not_authed",
            "account_inactive",
            "token_revoked",
            "token_expired",
            "not_allowed_token_type",
        }
    )

    platform = "slack"
    PATH = "/slack/events"

    def __init__(
        self,
        bot: PaperBot,
        client: AsyncWebClient,
        signing_secret: str,
        *,
        oauth: SlackOAuth | None = None,
        app_token: str | None = None,
        registry: Adapters | None = None,
        history_interval: float = HISTORY_INTERVAL_SECONDS,
    ) -> None:
        self.bot = bot
        self.client = client  # the one workspace's; in OAuth mode a base with no token
        self.oauth = oauth
        # With an app-level token Slack is reached by Socket Mode, else it posts to PATH.
        self.app_token = app_token
        self.registry = registry or Adapters()
        self.destination = SlackDestination(
            oauth.teams.client if oauth else client, history_interval
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._socket: AsyncSocketModeHandler | None = None
        if oauth is None:
            self.app = AsyncApp(client=client, signing_secret=signing_secret)
        else:
            # bolt's install pages and `authorize`: each request gets its team's client.
            self.app = AsyncApp(
                client=client,
                signing_secret=signing_secret,
                oauth_settings=oauth.settings,
                # bolt takes an AsyncAuthorize instance as it is, whatever its annotation says.
                authorize=oauth.authorize,  # type: ignore[arg-type]
            )
            self.app.event("app_uninstalled")(self._answering(self._uninstalled))
            self.app.event("tokens_revoked")(self._answering(self._tokens_revoked))
        self.app.middleware(self._identify)
        self.app.command("/papers")(self._answering(self._command))
        for action_id in BUTTON_ACTIONS:
            self.app.action(action_id)(self._answering(self._button))
        self.app.event("app_home_opened")(self._answering(self._home_opened))
        self.app.event("member_joined_channel")(self._answering(self._member_joined))
        self.app.error(self._on_error)

    def _answering(self, listener: Listener) -> Listener:
        """The listener, answering its own failure through `_on_error` rather than raising it.

        Raised to Bolt, a failure within ~10 ms of ack() loses the acknowledgement (Bolt's
        runner then sets it to None), so Slack gets a 404 after 3 s and retries events.
        Bolt reads the listener's arguments through `__wrapped__`.
        """

        @functools.wraps(listener)
        async def answering(**kwargs: Any) -> None:
            try:
                await listener(**kwargs)
            except Exception as error:
                # Not every listener asks for the body; the event names the listener then.
                body = kwargs.get("body") or {"event": kwargs.get("event") or {}}
                await self._on_error(error, body, kwargs.get("respond"))

        return answering

    @staticmethod
    def _listener(body: dict[str, Any]) -> str:
        # Which listener a payload went to, for a log line (never the user's text).
        if body.get("command"):
            return f"command {body['command']}"
        actions = body.get("actions") or []
        if actions:
            return f"action {actions[0].get('action_id', '?')}"
        event = body.get("event") or {}
        return f"event {event.get('type') or body.get('type') or '?'}"

    async def _on_error(self, error: Exception, body: dict[str, Any], respond: Any) -> None:
        # Bolt's global error handler (middleware and listeners), instead of its own log line.
        untold = ""
        # Events (and App Home buttons) carry no response_url: there is nobody to answer.
        if respond is not None and body.get("response_url"):
            try:
                await respond(text=self.SORRY, response_type="ephemeral", replace_original=False)
            except Exception as exc:
                untold = f"; the user could not be told: {exc!r}"
        log.error("slack %s failed: %r%s", self._listener(body), error, untold, exc_info=error)

    def mount(self, web_app: web.Application) -> bool:
        """In HTTP mode, Slack's requests arrive at PATH on the bot's server (with /healthz);
        in OAuth mode the install page and its redirect are served there too."""
        if self.app_token:
            return False
        server = self.app.server(path=self.PATH)
        web_app.router.add_post(self.PATH, server.handle_post_requests)
        if self.oauth is not None:
            web_app.router.add_get(INSTALL_PATH, server.handle_get_requests)
            web_app.router.add_get(REDIRECT_PATH, server.handle_get_requests)
        return True

    async def start(self) -> str:
        """Connect Socket Mode in the background, or be ready for HTTP mode's requests."""
        if self.oauth is not None:
            self.registry.set(self.platform, "ok")
            return (
                f"Slack adapter started (OAuth mode, many workspaces: install at "
                f"{INSTALL_PATH}, events at {self.PATH})."
            )
        # In the background: a slow Slack must not hold up the start.
        self._tasks.append(asyncio.create_task(log_guarantee(self.client), name="slack-scopes"))
        if not self.app_token:
            self.registry.set(self.platform, "ok")
            return f"Slack adapter started (HTTP mode, at {self.PATH})."
        self._socket = AsyncSocketModeHandler(self.app, self.app_token)
        supervisor = supervise.Supervisor(self.platform, self.registry)
        connecting = self.connect_socket_mode(self._socket, supervisor)
        self._tasks.append(asyncio.create_task(connecting, name="slack-socket-mode"))
        return "Slack adapter starting (Socket Mode)."

    async def stop(self) -> None:
        """Stop connecting (or the connection) and the scope check."""
        for task in reversed(self._tasks):
            await supervise.cancelled(task)
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]

    async def connect_socket_mode(
        self, handler: AsyncSocketModeHandler, supervisor: supervise.Supervisor
    ) -> None:
        """Connect Socket Mode, retrying while Slack cannot be reached; stop if it is refused."""
        client = handler.client

        async def open_url() -> None:
            # Asked for here, because connect() retries even a refused token forever (logging
            # each time); connect() then uses this URL.
            try:
                opened = await client.web_client.apps_connections_open(app_token=client.app_token)
                client.wss_uri = str(opened["url"])
            except SlackApiError as exc:
                code = error_code(exc)
                if code in self.APP_TOKEN_REFUSED:
                    raise supervise.Permanent(
                        f"Slack refused SLACK_APP_TOKEN ({code}): create an app-level token "
                        "with connections:write (Basic Information > App-Level Tokens) and "
                        "set SLACK_APP_TOKEN"
                    ) from exc
                raise

        try:
            supervisor.starting("opening a Socket Mode connection")
            await supervisor.step("apps.connections.open", open_url)
            await handler.connect_async()  # type: ignore[no-untyped-call]
        except supervise.Permanent as exc:
            supervisor.failed(str(exc))
            return
        supervisor.ok()

    @staticmethod
    async def _identify(
        body: dict[str, Any], context: AsyncBoltContext, next_: Callable[[], Awaitable[None]]
    ) -> None:
        """Bolt middleware: the caller, and the command when there is one, for every listener."""
        context["caller"] = caller_of(body)
        command = command_of(body)
        if command is not None:
            context["command"] = command
        await next_()

    async def _can_manage(self, caller: Caller, client: AsyncWebClient) -> bool:
        if caller.channel_id and await self.bot.is_channel_manager(caller):
            return True
        try:
            info = await client.users_info(user=caller.user_id)
        except SlackApiError as exc:
            log.warning("users.info failed: %s", error_code(exc))
            return False
        user = info.get("user") or {}
        return bool(user.get("is_admin") or user.get("is_owner"))

    # The listeners ask for `body` (unused) so that `_answering` can answer their failure.

    async def _command(
        self, ack: Any, body: dict[str, Any], context: AsyncBoltContext, respond: Any
    ) -> None:
        await ack()  # within 3 seconds, always: the work happens after
        await self._answer(context, respond, shareable=True)

    async def _button(
        self,
        ack: Any,
        body: dict[str, Any],
        context: AsyncBoltContext,
        respond: Any,
        action: dict[str, Any],
    ) -> None:
        await ack()
        await self._answer(context, respond, share=action.get("action_id") == SHARE)

    async def _answer(
        self, context: AsyncBoltContext, respond: Any, shareable: bool = False, share: bool = False
    ) -> None:
        """Run the payload's command for its caller and answer; App Home follows any change."""
        caller: Caller = context["caller"]
        command: Command = context["command"]
        if command.needs_channel_permission:
            # Asked after the ack, not in the middleware: users.info must not hold up the 3 s.
            manager = await self._can_manage(caller, context.client)
            caller = replace(caller, can_manage_channel=manager)
        reply = await self.bot.run(caller, command)
        if share:
            await self._respond(respond, shared(reply, command.arg), public=not reply.error)
        else:
            await self._respond(respond, reply, shareable=shareable)
        if command.changes_subscriptions and not command.channel and not reply.error:
            await self.publish_home(caller, context.client)

    async def publish_home(self, caller: Caller, client: AsyncWebClient) -> None:
        """Show the user's topics and settings on the App Home tab (with their team's client)."""
        reply = await self.bot.run(caller, Command("list"))
        blocks = [header("Your paper digest"), *reply_messages(reply)[0]]
        blocks.append(section("`/papers help` lists every command."))
        try:
            await client.views_publish(
                user_id=caller.user_id, view={"type": "home", "blocks": blocks[:MAX_BLOCKS]}
            )
        except SlackApiError as exc:
            log.warning("views.publish failed: %s", error_code(exc))

    async def _member_joined(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        # When the bot itself joins, whoever invited it may manage the channel's digests.
        if event.get("user") == context.get("bot_user_id") and event.get("inviter"):
            team = context["caller"].workspace
            inviter = Caller("slack", str(event["inviter"]), str(event.get("channel")), team)
            await self.bot.record_channel_manager(inviter)

    async def _home_opened(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        if event.get("tab", "home") != "home":
            return
        await self.publish_home(context["caller"], context.client)

    # -- OAuth mode: a workspace leaving -----------------------------------------------------------

    async def _uninstalled(self, body: dict[str, Any], context: AsyncBoltContext) -> None:
        """The app was uninstalled from a workspace: forget its tokens and its data."""
        assert self.oauth is not None
        await self.oauth.installations.async_delete_all(
            enterprise_id=context.enterprise_id, team_id=context.team_id
        )
        await self._forget(context.team_id, "uninstalled the app")

    async def _tokens_revoked(
        self, body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        """Tokens were revoked: without the bot's, nothing can be sent there any more."""
        assert self.oauth is not None
        tokens = event.get("tokens") or {}
        for user_id in tokens.get("oauth") or []:
            await self.oauth.installations.async_delete_installation(
                enterprise_id=context.enterprise_id, team_id=context.team_id, user_id=user_id
            )
        if tokens.get("bot"):
            await self.oauth.installations.async_delete_all(
                enterprise_id=context.enterprise_id, team_id=context.team_id
            )
            await self._forget(context.team_id, "revoked the bot's token")

    async def _forget(self, team: str | None, why: str) -> None:
        if not team:
            return
        gone = await self.bot.forget_workspace(self.platform, team)
        log.info(
            "slack workspace %s %s: its installation and %d subscribers (topics, mutes, "
            "signals, digests pending) are deleted",
            team,
            why,
            gone,
        )

    @staticmethod
    async def _respond(
        respond: Any, reply: Reply, shareable: bool = False, public: bool = False
    ) -> None:
        response_type = "in_channel" if public else "ephemeral"
        for blocks in reply_messages(reply, shareable=shareable):
            await respond(blocks=blocks, text=fallback_text(blocks), response_type=response_type)


def shared(reply: Reply, query: str) -> Reply:
    """A look-up's reply as the Share button posts it in the channel."""
    return Reply(
        f"Papers for `{query}` (shared from a look-up):" if not reply.error else reply.text,
        cards=reply.cards,
        error=reply.error,
        subscribe_topic=reply.subscribe_topic,
    )
