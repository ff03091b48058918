"""Slack OAuth mode: the app installed in many workspaces, a bot token per team.

bolt runs the install flow (`INSTALL_PATH` shows "Add to Slack", `REDIRECT_PATH` exchanges the
code through `oauth.v2.access`) and authorizes every request with the installing team's
token. The tokens live in slack_sdk's SQLite installation store and the one-time OAuth states
in its state store, both in paperbot's own database file (slack_sdk creates its tables
`slack_installations`, `slack_bots` and `oauth_states` there), so a backup holds them too.

Digests are posted outside any request, so `TeamClients` finds the team's bot token itself,
refreshing a rotating one before it expires, as bolt's `authorize` does for requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.sqlite3 import SQLite3InstallationStore
from slack_sdk.oauth.state_store.sqlite3 import SQLite3OAuthStateStore
from slack_sdk.oauth.token_rotation.async_rotator import AsyncTokenRotator
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.errors import DestinationGone

log = logging.getLogger(__name__)

INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
# The bot scopes an install asks for: those of deploy/slack-manifest.yml (a test checks).
SCOPES = (
    "commands",
    "chat:write",
    "im:write",
    "im:history",
    "channels:history",
    "groups:history",
    "users:read",
    "channels:read",
    "groups:read",
)
STATE_SECONDS = 600  # an install started and not finished within 10 minutes starts over
# A rotating token is refreshed this long before it expires (bolt's default for requests).
ROTATE_MINUTES = 120


def oauth_problem(settings: Settings) -> str | None:
    """What OAuth mode (`SLACK_CLIENT_ID` set) still lacks, or None when it is complete."""
    if not settings.slack_client_secret:
        return "Slack OAuth mode needs SLACK_CLIENT_SECRET with SLACK_CLIENT_ID."
    if not settings.slack_signing_secret:
        return "Slack OAuth mode needs SLACK_SIGNING_SECRET (Slack posts events over HTTP)."
    if settings.slack_app_token:
        return (
            "Slack OAuth mode serves installs and events over HTTP: unset SLACK_APP_TOKEN "
            "(Socket Mode is for one workspace)."
        )
    return None


class Installations(SQLite3InstallationStore):
    """slack_sdk's SQLite installation store with its blocking calls moved off the event loop,
    and the deletes its async interface lacks (bolt's uninstall listeners need them)."""

    async def async_save(self, installation: Installation) -> None:
        """Store an installation and its bot."""
        await asyncio.to_thread(self.save, installation)

    async def async_save_bot(self, bot: Bot) -> None:
        """Store a bot (a refreshed token)."""
        await asyncio.to_thread(self.save_bot, bot)

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        """The team's latest bot installation, if any."""
        return await asyncio.to_thread(
            self.find_bot,
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """The team's latest installation (by a user, when given), if any."""
        return await asyncio.to_thread(
            self.find_installation,
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Forget the team's bot tokens."""
        await asyncio.to_thread(self.delete_bot, enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        """Forget the team's installations (by one user, when given)."""
        await asyncio.to_thread(
            self.delete_installation, enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
        )


class States(SQLite3OAuthStateStore):
    """slack_sdk's SQLite OAuth state store, off the event loop. A state is used once: the
    callback consumes it, so a replayed or forged one is refused."""

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        """A new state for an install about to start."""
        return await asyncio.to_thread(self.issue)

    async def async_consume(self, state: str) -> bool:
        """Whether the state was issued, is unexpired and unused (it is used up now)."""
        return await asyncio.to_thread(self.consume, state)


# Makes a Web API client for a token (None: no token), with paperbot's API URL and retries.
NewClient = Callable[[str | None], AsyncWebClient]


class SlackOAuth:
    """Everything OAuth mode needs: the stores on the database, bolt's settings and
    `authorize` (token rotation through `client`, a client with no token), and the digests'
    `TeamClients`."""

    def __init__(
        self, database: Path, client_id: str, client_secret: str, new_client: NewClient
    ) -> None:
        self.client = client = new_client(None)
        self.installations = Installations(database=str(database), client_id=client_id)
        self.settings = AsyncOAuthSettings(
            client_id=client_id,
            client_secret=client_secret,
            scopes=list(SCOPES),
            install_path=INSTALL_PATH,
            redirect_uri_path=REDIRECT_PATH,
            installation_store=self.installations,
            state_store=States(database=str(database), expiration_seconds=STATE_SECONDS),
            installation_store_bot_only=True,
            token_rotation_expiration_minutes=ROTATE_MINUTES,
        )
        # bolt's own authorize would refresh rotating tokens at slack.com whatever
        # SLACK_API_URL says; this one goes through `client`. Its cache saves an auth.test
        # per request (keyed by token, so a refreshed token is checked once).
        self.authorize = AsyncInstallationStoreAuthorize(
            logger=log,
            installation_store=self.installations,
            client_id=client_id,
            client_secret=client_secret,
            token_rotation_expiration_minutes=ROTATE_MINUTES,
            bot_only=True,
            cache_enabled=True,
            client=client,
        )
        self.teams = TeamClients(self.installations, client_id, client_secret, client, new_client)


class TeamClients:
    """A Web API client with the team's bot token, for what no request carries (digests)."""

    def __init__(
        self,
        installations: Installations,
        client_id: str,
        client_secret: str,
        client: AsyncWebClient,
        new_client: NewClient,
    ) -> None:
        self.installations = installations
        self.new_client = new_client
        self._rotator = AsyncTokenRotator(
            client_id=client_id, client_secret=client_secret, client=client
        )
        self._clients: dict[str, AsyncWebClient] = {}  # by team, for its current token

    async def client(self, team: str) -> AsyncWebClient:
        """The team's client; DestinationGone when the app is not installed there."""
        bot = await self.installations.async_find_bot(enterprise_id=None, team_id=team)
        if bot is None:
            raise DestinationGone(f"the app is not installed in workspace {team}")
        refreshed = await self._rotator.perform_bot_token_rotation(
            bot=bot, minutes_before_expiration=ROTATE_MINUTES
        )
        if refreshed is not None:
            await self.installations.async_save_bot(refreshed)
            log.info("slack: refreshed the bot token of workspace %s", team)
            bot = refreshed
        token = bot.bot_token or ""
        client = self._clients.get(team)
        if client is None or client.token != token:
            client = self._clients[team] = self.new_client(token)
        return client
