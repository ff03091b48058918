"""A local fake of the Slack Web API, as strict as Slack for the calls paperbot makes.

- Tokens: a call without the workspace's bot token gets `invalid_auth`.
- Scopes: each method needs the scope Slack's reference names for it; by default the token has
  exactly the scopes of `deploy/slack-manifest.yml`, so an app that calls a method its
  manifest does not grant fails here as on Slack: HTTP 200, `ok: false, error: missing_scope`
  with `needed` and `provided`. Every answer carries `X-OAuth-Scopes`, as Slack's do.
- `conversations.history` with `tier1_interval` set: one call per interval per token, else
  HTTP 429 `ratelimited` with Retry-After (Slack's 2025 limit for apps outside the
  Marketplace is one a minute: tests shorten the minute, the rule is the same), and at most
  15 messages a page whatever `limit` asks, with `has_more` and a `next_cursor`.
- History holds what was posted, newest first, filtered by `oldest`/`latest` (exclusive unless
  `inclusive`), with metadata only under `include_all_metadata`.
- `chat.postMessage`: at most 50 blocks (`invalid_blocks`), an unknown or gone channel is
  `channel_not_found`; `post_delay` makes each post take that long.
- Blocks (posts and response_url answers): an actions block holds 1 to 25 elements whose
  action_ids are unique within it, button text at most 75 characters and value at most 2000;
  otherwise `invalid_blocks` (a response_url answers it with HTTP 400, as incoming webhooks do).
- `errors` queues answers per method: 429 (with Retry-After 0) or an error code.
- Many workspaces: `tokens` maps each bot token to its team; `auth.test` answers with the
  token's team, posts record it, and the Tier 1 history limit is per token. OAuth
  (`oauth=(client_id, client_secret)`): `authorize(team, scopes)` is a user clicking Allow
  on Slack's authorize page and gives a one-time code; `oauth.v2.access` checks the client
  credentials (HTTP Basic or form) and the code (`invalid_code` when unknown or used) and
  installs a new bot token for the team with those scopes. With `rotation_seconds` the token
  expires then (`token_expired`) and comes with a refresh token, which
  `grant_type=refresh_token` exchanges for a new one. `revoke(team)` makes the team's tokens
  answer `token_revoked`, as after an uninstall.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import math
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import ROOT, SLACK_TEST_TOKEN

MANIFEST = ROOT / "deploy" / "slack-manifest.yml"
# The scope each method needs (api.slack.com/methods), by channel type where it differs.
METHOD_SCOPES: dict[str, str | None] = {
    "auth.test": None,
    "chat.postMessage": "chat:write",
    "conversations.open": "im:write",
    "users.info": "users:read",
    "views.publish": None,
}
HISTORY_SCOPES = {"C": "channels:history", "G": "groups:history", "D": "im:history"}
HISTORY_PAGE_MAX = 15
MAX_BLOCKS = 50
MAX_ACTIONS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000


def manifest_scopes(path: Path = MANIFEST) -> frozenset[str]:
    """The bot scopes the app's manifest asks for."""
    manifest = yaml.safe_load(path.read_text())
    return frozenset(manifest["oauth_config"]["scopes"]["bot"])


async def api_params(request: web.Request) -> dict[str, Any]:
    """A Web API call's parameters, from the query string and a JSON or form body."""
    data: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        data.update(await request.json())
    else:
        data.update(await request.post())
    return data


def blocks_problem(blocks: list[dict[str, Any]]) -> str | None:
    """What Slack would refuse in these blocks (None when they are valid)."""
    if len(blocks) > MAX_BLOCKS:
        return f"more than {MAX_BLOCKS} blocks"
    for n, block in enumerate(blocks):
        if block.get("type") != "actions":
            continue
        elements = block.get("elements") or []
        if not 1 <= len(elements) <= MAX_ACTIONS:
            return f"block {n}: {len(elements)} elements"
        action_ids = [e.get("action_id") for e in elements]
        if len(set(action_ids)) != len(action_ids):
            return f"block {n}: action_id repeated"
        for element in elements:
            if len(str(element.get("value", ""))) > MAX_BUTTON_VALUE:
                return f"block {n}: value too long"
            if len(str((element.get("text") or {}).get("text", ""))) > MAX_BUTTON_TEXT:
                return f"block {n}: button text too long"
    return None


def _flag(value: Any) -> bool:
    return str(value).lower() in ("1", "true")


class FakeSlack:
    """Records every Web API call and response_url post; answers like Slack."""

    def __init__(
        self,
        scopes: frozenset[str] | None = None,
        tier1_interval: float | None = None,
        post_delay: float = 0.0,
        token: str = SLACK_TEST_TOKEN,
        oauth: tuple[str, str] | None = None,
        rotation_seconds: float | None = None,
    ) -> None:
        self.token = token
        self.scopes = manifest_scopes() if scopes is None else scopes
        self.tokens: dict[str, str] = {token: "T1"}  # bot token -> its team
        self.token_scopes: dict[str, frozenset[str]] = {}  # installed tokens' grants
        self.expires: dict[str, float] = {}  # rotating tokens: when they expire
        self.revoked: set[str] = set()
        self.oauth = oauth
        self.rotation_seconds = rotation_seconds
        self.codes: dict[str, tuple[str, frozenset[str]]] = {}  # one-time code -> grant
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> team
        self._serial = itertools.count(1)
        self.tier1_interval = tier1_interval
        self.post_delay = post_delay
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.errors: dict[str, list[Any]] = {}
        self.delivered: list[dict[str, Any]] = []  # posts that succeeded, oldest first
        self.gone: set[str] = set()  # channels that answer channel_not_found
        self.refused: list[tuple[str, str]] = []  # (method, error) of every refusal
        self._last_history: dict[str, float] = {}
        self._last_ts = 0.0
        self.app = web.Application()
        self.app.router.add_route("*", "/api/{method}", self.api)
        self.app.router.add_post("/respond", self.respond)
        self.server = TestServer(self.app, host="127.0.0.1", port=0)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/"))

    def _answer(self, body: dict[str, Any], status: int = 200, **headers: str) -> web.Response:
        headers = {"X-OAuth-Scopes": ",".join(sorted(self.scopes)), **headers}
        return web.json_response(body, status=status, headers=headers)

    def _refuse(self, method: str, error: str, **extra: Any) -> web.Response:
        self.refused.append((method, error))
        return self._answer({"ok": False, "error": error, **extra})

    def _next_ts(self) -> str:
        # Slack's ts is the post time in microseconds, unique within a channel.
        self._last_ts = max(time.time(), self._last_ts + 1e-6)
        return f"{self._last_ts:.6f}"

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        data = await api_params(request)
        self.calls.append((method, data))
        auth = request.headers.get("Authorization", "")
        if method == "oauth.v2.access":
            return self._oauth_access(auth, data)
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else data.get("token")
        team = self.tokens.get(str(token))
        if team is None:
            return self._refuse(method, "invalid_auth")
        if token in self.revoked:
            return self._refuse(method, "token_revoked")
        if token in self.expires and time.time() >= self.expires[token]:
            return self._refuse(method, "token_expired")
        scopes = self.token_scopes.get(token, self.scopes)
        needed = METHOD_SCOPES.get(method)
        if method == "conversations.history":
            needed = HISTORY_SCOPES.get(str(data.get("channel", "C"))[:1], "channels:history")
        if needed is not None and needed not in scopes:
            provided = ",".join(sorted(scopes))
            return self._refuse(method, "missing_scope", needed=needed, provided=provided)
        queued = self.errors.get(method)
        if queued:
            error = queued.pop(0)
            if error == 429:
                self.refused.append((method, "ratelimited"))
                return self._answer(
                    {"ok": False, "error": "ratelimited"}, status=429, **{"Retry-After": "0"}
                )
            return self._refuse(method, str(error))
        if method == "auth.test":
            return self._answer(
                {"ok": True, "user_id": "UBOT", "team_id": team, "bot_id": f"B{team}"}
            )
        if method == "users.info":
            admin = data.get("user") == "UADMIN"
            return self._answer({"ok": True, "user": {"id": data.get("user"), "is_admin": admin}})
        if method == "conversations.open":
            return self._answer({"ok": True, "channel": {"id": "D" + str(data.get("users"))}})
        if method == "conversations.history":
            return self._history(data, str(token))
        if method == "chat.postMessage":
            return await self._post({**data, "team": team})
        return self._answer({"ok": True})

    # -- OAuth ---------------------------------------------------------------------------------

    def authorize(self, team: str, scopes: frozenset[str]) -> str:
        """A user of `team` allowed the app these scopes: the one-time code Slack redirects
        with."""
        code = f"code-{team}-{next(self._serial)}"
        self.codes[code] = (team, scopes)
        return code

    def revoke(self, team: str) -> None:
        """The team's tokens stop working (the app was uninstalled there)."""
        self.revoked |= {token for token, owner in self.tokens.items() if owner == team}

    def _client(self, auth: str, data: dict[str, Any]) -> tuple[str, str]:
        if auth.startswith("Basic "):
            try:
                pair = base64.b64decode(auth.removeprefix("Basic ")).decode()
            except (binascii.Error, UnicodeDecodeError):
                return "", ""
            client_id, _, secret = pair.partition(":")
            return client_id, secret
        return str(data.get("client_id") or ""), str(data.get("client_secret") or "")

    def _oauth_access(self, auth: str, data: dict[str, Any]) -> web.Response:
        method = "oauth.v2.access"
        client_id, secret = self._client(auth, data)
        if self.oauth is None or client_id != self.oauth[0]:
            return self._refuse(method, "invalid_client_id")
        if secret != self.oauth[1]:
            return self._refuse(method, "bad_client_secret")
        grant = data.get("grant_type") or "authorization_code"
        if grant == "refresh_token":
            team = self.refresh_tokens.get(str(data.get("refresh_token")))
            if team is None:
                return self._refuse(method, "invalid_refresh_token")
            scopes = next(
                (self.token_scopes[t] for t in self.token_scopes if self.tokens[t] == team),
                self.scopes,
            )
        elif grant == "authorization_code":
            found = self.codes.pop(str(data.get("code")), None)  # a code works once
            if found is None:
                return self._refuse(method, "invalid_code")
            team, scopes = found
        else:
            return self._refuse(method, "invalid_grant_type")
        n = next(self._serial)
        rotating = self.rotation_seconds is not None
        token = f"xoxe.xoxb-{team}-{n}" if rotating else f"xoxb-{team}-{n}"
        self.tokens[token] = team
        self.token_scopes[token] = scopes
        answer: dict[str, Any] = {
            "ok": True,
            "access_token": token,
            "token_type": "bot",
            "scope": ",".join(sorted(scopes)),
            "bot_user_id": "UBOT",
            "app_id": "A1",
            "team": {"id": team, "name": f"Team {team}"},
            "enterprise": None,
            "is_enterprise_install": False,
            "authed_user": {"id": "UINSTALLER"},
        }
        if self.rotation_seconds is not None:
            refresh = f"xoxe-1-{team}-{n}"
            self.refresh_tokens[refresh] = team
            self.expires[token] = time.time() + self.rotation_seconds
            answer |= {"refresh_token": refresh, "expires_in": int(self.rotation_seconds)}
        return self._answer(answer)

    async def _post(self, data: dict[str, Any]) -> web.Response:
        channel = str(data.get("channel") or "")
        if not channel or channel in self.gone:
            return self._refuse("chat.postMessage", "channel_not_found")
        blocks = data.get("blocks")
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
        if blocks is not None and blocks_problem(blocks):
            return self._refuse("chat.postMessage", "invalid_blocks")
        await asyncio.sleep(self.post_delay)
        metadata = data.get("metadata")
        metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        ts = self._next_ts()
        self.delivered.append({**data, "channel": channel, "metadata": metadata, "ts": ts})
        return self._answer({"ok": True, "ts": ts, "channel": channel})

    def _history(self, data: dict[str, Any], token: str) -> web.Response:
        channel = str(data.get("channel") or "")
        if self.tier1_interval is not None:
            now = time.monotonic()
            last = self._last_history.get(token)
            if last is not None and now - last < self.tier1_interval:
                wait = math.ceil(self.tier1_interval - (now - last))
                self.refused.append(("conversations.history", "ratelimited"))
                return self._answer(
                    {"ok": False, "error": "ratelimited"}, status=429, **{"Retry-After": str(wait)}
                )
            self._last_history[token] = now
        if channel in self.gone:
            return self._refuse("conversations.history", "channel_not_found")
        inclusive = _flag(data.get("inclusive"))
        oldest = float(data.get("oldest") or 0)
        latest = float(data.get("latest") or math.inf)

        def within(ts: float) -> bool:
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        team = self.tokens[token]
        found = [
            d
            for d in reversed(self.delivered)
            if d["channel"] == channel and d.get("team", "T1") == team and within(float(d["ts"]))
        ]
        start = int(data.get("cursor") or 0)
        size = min(int(data.get("limit") or 100), HISTORY_PAGE_MAX)
        page = found[start : start + size]
        with_metadata = _flag(data.get("include_all_metadata"))
        messages = [
            {
                "type": "message",
                "ts": d["ts"],
                "text": d.get("text", ""),
                **({"metadata": d["metadata"]} if with_metadata and d.get("metadata") else {}),
            }
            for d in page
        ]
        more = start + size < len(found)
        return self._answer(
            {
                "ok": True,
                "messages": messages,
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + size) if more else ""},
            }
        )

    def add_message(self, channel: str, text: str) -> str:
        """A message someone else wrote in a conversation (it shows in its history)."""
        ts = self._next_ts()
        self.delivered.append({"channel": channel, "text": text, "metadata": None, "ts": ts})
        return ts

    async def respond(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.calls.append(("respond", data))
        if blocks_problem(data.get("blocks") or []):
            self.refused.append(("respond", "invalid_blocks"))
            return web.Response(status=400, text="invalid_blocks")
        return web.json_response({"ok": True})

    def of(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every call of `method`, in order."""
        return [data for name, data in self.calls if name == method]

    def keys(self) -> dict[tuple[str, int], int]:
        """How many times each digest message (ledger key, part) was posted."""
        counts: dict[tuple[str, int], int] = {}
        for post in self.delivered:
            payload = (post.get("metadata") or {}).get("event_payload") or {}
            if "key" in payload:
                ident = (str(payload["key"]), int(payload.get("part", 0)))
                counts[ident] = counts.get(ident, 0) + 1
        return counts
