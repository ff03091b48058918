"""A local fake of the parts of Discord's HTTP API paperbot uses, and raw interaction payloads.

discord.py is pointed at it by replacing `discord.http.Route.BASE`, so tests drive real
`Interaction` objects through the real command tree and assert the JSON the library sends.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

APP_ID = "111111111111111111"
BOT_USER = {"id": APP_ID, "username": "paperbot", "discriminator": "0", "avatar": None, "bot": True}
GUILD_ID = "222222222222222222"
CHANNEL_ID = "333333333333333333"
TIMESTAMP = "2026-11-20T12:00:00.000000+00:00"
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
SEND_MESSAGES = 1 << 11


def user(user_id: str, name: str = "ada") -> dict[str, Any]:
    """A Discord user object."""
    return {"id": user_id, "username": name, "discriminator": "0", "avatar": None}


def message(message_id: str, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """A message object as Discord returns it, by the bot, with the body's embeds and components."""
    return {
        "id": message_id,
        "channel_id": channel_id,
        "author": BOT_USER,
        "content": body.get("content") or "",
        "timestamp": TIMESTAMP,
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": body.get("embeds") or [],
        "components": body.get("components") or [],
        "pinned": False,
        "type": 0,
        "flags": int(body.get("flags") or 0),
    }


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py parses a body as JSON only for exactly `application/json`, as Discord sends it.
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


class FakeDiscord:
    """Records every request; answers like Discord. `fail` queues errors per request kind."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.fail: dict[str, list[tuple[int, int]]] = {}  # kind -> [(status, code)]
        self.channel_messages: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(900000000000000000)
        app = web.Application()
        app.router.add_route("*", "/api/v10/{path:.*}", self.handle)
        self.server = TestServer(app, host="127.0.0.1", port=0)

    @property
    def base(self) -> str:
        return str(self.server.make_url("/api/v10"))

    def sent(self, method: str, prefix: str) -> list[Any]:
        """Bodies of the requests with this method whose path starts with prefix."""
        return [body for m, path, body in self.requests if m == method and path.startswith(prefix)]

    async def wait_for(self, check: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until `check()` is truthy (the tree runs commands in background tasks)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not (result := check()):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out; requests so far: {self.requests}")
            await asyncio.sleep(0.01)
        return result

    def _message(self, channel_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return message(str(next(self._ids)), channel_id, body)

    def _error(self, kind: str) -> web.Response | None:
        queued = self.fail.get(kind)
        if not queued:
            return None
        status, code = queued.pop(0)
        # discord.py takes a 429 without `Via` for a Cloudflare ban, as Discord's carry one.
        headers = {"Retry-After": "0", "Via": "1.1 google"} if status == 429 else {}
        body = {"code": code, "message": f"error {code}", "retry_after": 0, "global": False}
        return _json(body, status=status, headers=headers)

    async def handle(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body = json.loads(await request.text() or "null")
        self.requests.append((request.method, path, body))
        parts = path.strip("/").split("/")
        if path == "/users/@me":
            return _json(BOT_USER)
        if path == "/oauth2/applications/@me":
            return _json(
                {
                    "id": APP_ID,
                    "name": "paperbot",
                    "description": "",
                    "icon": None,
                    "bot_public": True,
                    "bot_require_code_grant": False,
                    "owner": user("1"),
                    "verify_key": "0" * 64,
                    "flags": 0,
                }
            )
        if request.method == "PUT" and parts[0] == "applications":
            synced = [{**cmd, "id": str(next(self._ids)), "application_id": APP_ID} for cmd in body]
            for cmd in synced:
                cmd.setdefault("version", "1")
                cmd.setdefault("default_member_permissions", None)
            return _json(synced)
        if parts[0] == "interactions":
            return _json({"interaction": {"id": parts[1], "type": body["type"]}})
        if parts[0] == "webhooks":
            return _json(self._message(CHANNEL_ID, body))
        if path == "/users/@me/channels":
            if (error := self._error("dm")) is not None:
                return error
            recipient = body["recipient_id"]
            return _json(
                {"id": "4" + str(recipient)[1:], "type": 1, "recipients": [user(recipient)]}
            )
        if parts[0] == "channels" and parts[-1] == "messages":
            channel_id = parts[1]
            if request.method == "GET":
                if (error := self._error("history")) is not None:
                    return error
                return _json(list(reversed(self.channel_messages.get(channel_id, []))))
            if (error := self._error("send")) is not None:
                return error
            message = self._message(channel_id, body)
            self.channel_messages.setdefault(channel_id, []).append(message)
            return _json(message)
        return _json({"code": 0, "message": "404: Not Found"}, status=404)


_interaction_ids = itertools.count(700000000000000000)


def interaction(
    data: dict[str, Any],
    *,
    kind: int = 2,
    user_id: str = "555555555555555555",
    permissions: int = SEND_MESSAGES,
    in_guild: bool = True,
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A raw INTERACTION_CREATE payload as the gateway delivers it."""
    payload: dict[str, Any] = {
        "id": str(next(_interaction_ids)),
        "application_id": APP_ID,
        "type": kind,
        "token": f"interaction-token-{next(_interaction_ids)}",
        "version": 1,
        "data": data,
        "locale": "en-US",
        "app_permissions": str(SEND_MESSAGES),
        "entitlements": [],
        "attachment_size_limit": 8 * 1024 * 1024,
        "authorizing_integration_owners": {"0": GUILD_ID} if in_guild else {"1": user_id},
        "context": 0 if in_guild else 1,
    }
    if in_guild:
        payload |= {
            "guild_id": GUILD_ID,
            "guild_locale": "en-US",
            "channel_id": CHANNEL_ID,
            "channel": {
                "id": CHANNEL_ID,
                "type": 0,
                "guild_id": GUILD_ID,
                "name": "papers",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
            },
            "member": {
                "user": user(user_id),
                "roles": [],
                "joined_at": TIMESTAMP,
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": str(permissions),
            },
        }
    else:
        dm = "4" + user_id[1:]
        payload |= {
            "channel_id": dm,
            "channel": {"id": dm, "type": 1, "recipients": [user(user_id)]},
            "user": user(user_id),
        }
    if message is not None:
        payload["message"] = message
    return payload


def command(*path: str, **options: Any) -> dict[str, Any]:
    """`data` of a `/papers <path...>` command with string options (or one focused option)."""
    focused = options.pop("_focused", None)
    leaf: list[dict[str, Any]] = [
        {"type": 3, "name": name, "value": value, **({"focused": True} if name == focused else {})}
        for name, value in options.items()
    ]
    *groups, name = path
    node: dict[str, Any] = {"type": 1, "name": name, "options": leaf}
    for group in reversed(groups):
        node = {"type": 2, "name": group, "options": [node]}
    return {"id": "1", "name": "papers", "type": 1, "options": [node]}
