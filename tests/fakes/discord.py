"""A local fake of the parts of Discord's HTTP API and gateway paperbot uses, and raw payloads.

discord.py is pointed at it by replacing `discord.http.Route.BASE` (and, for the gateway,
`discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`), so tests drive real `Interaction` objects
through the real command tree and assert the JSON the library sends.

As strict as Discord, with its error shapes (`{"code", "message"}`, plus `errors` for 50035):

- An interaction's first callback must come within 3 s of its creation (the time in its
  snowflake id), else 404 10062 "Unknown interaction"; a second one is 400 40060 "Interaction
  has already been acknowledged."; a follow-up (webhook POST) before the callback is
  404 10015 "Unknown Webhook", and 401 50027 "Invalid Webhook Token" after the token's
  15 minutes.
- Messages (channel posts, follow-ups, callback data): content 2,000; 10 embeds; title 256,
  description 4,096, 25 fields, field name 256 (required) and value 1,024 (required), footer
  2,048, author name 256, and 6,000 characters in all embeds together; 5 action rows of at
  most 5 buttons, custom_id 100, label 80; autocomplete at most 25 choices. Otherwise 400
  50035 "Invalid Form Body" with an `errors` object naming each path.
- The gateway answers HELLO, then READY after IDENTIFY, or closes with `gateway_close`
  (4004 authentication failed, 4014 disallowed intents, ...).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from discord.utils import snowflake_time, time_snowflake

APP_ID = "111111111111111111"
BOT_USER = {"id": APP_ID, "username": "paperbot", "discriminator": "0", "avatar": None, "bot": True}
GUILD_ID = "222222222222222222"
CHANNEL_ID = "333333333333333333"
TIMESTAMP = "2026-11-20T12:00:00.000000+00:00"
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
SEND_MESSAGES = 1 << 11
CALLBACK_SECONDS = 3.0
TOKEN_MINUTES = 15
# Discord's messages for the codes tests queue, and for plain HTTP failures (code 0).
ERROR_MESSAGES = {
    10003: "Unknown Channel",
    10013: "Unknown User",
    50001: "Missing Access",
    50007: "Cannot send messages to this user",
    50013: "Missing Permissions",
    50035: "Invalid Form Body",
}
STATUS_MESSAGES = {
    401: "401: Unauthorized",
    500: "500: Internal Server Error",
    502: "502: Bad Gateway",
    503: "503: Service Unavailable",
}
CLOSE_REASONS = {
    4004: "Authentication failed.",
    4010: "Invalid shard.",
    4011: "Sharding required.",
    4012: "Invalid API version.",
    4013: "Invalid intent(s).",
    4014: "Disallowed intent(s).",
}


def _length(path: tuple[str, ...], limit: int) -> tuple[tuple[str, ...], str, str]:
    return path, "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."


def _required(path: tuple[str, ...]) -> tuple[tuple[str, ...], str, str]:
    return path, "BASE_TYPE_REQUIRED", "This field is required"


def _embed_problems(embeds: list[dict[str, Any]]) -> list[tuple[tuple[str, ...], str, str]]:
    problems = []
    if len(embeds) > 10:
        problems.append(_length(("embeds",), 10))
    total = 0
    for i, embed in enumerate(embeds):
        at = ("embeds", str(i))
        texts = {
            ("title",): (embed.get("title") or "", 256),
            ("description",): (embed.get("description") or "", 4096),
            ("footer", "text"): ((embed.get("footer") or {}).get("text") or "", 2048),
            ("author", "name"): ((embed.get("author") or {}).get("name") or "", 256),
        }
        fields = embed.get("fields") or []
        if len(fields) > 25:
            problems.append(_length((*at, "fields"), 25))
        for j, field in enumerate(fields):
            for key, limit in (("name", 256), ("value", 1024)):
                text = field.get(key) or ""
                if not text:
                    problems.append(_required((*at, "fields", str(j), key)))
                texts[("fields", str(j), key)] = (text, limit)
        for key, (text, limit) in texts.items():
            total += len(text)
            if len(text) > limit:
                problems.append(_length((*at, *key), limit))
    if total > 6000:
        problems.append(
            (("embeds",), "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
        )
    return problems


def _component_problems(rows: list[dict[str, Any]]) -> list[tuple[tuple[str, ...], str, str]]:
    problems = []
    if len(rows) > 5:
        problems.append(_length(("components",), 5))
    for i, row in enumerate(rows):
        items = row.get("components") or []
        if len(items) > 5:
            problems.append(_length(("components", str(i), "components"), 5))
        for j, item in enumerate(items):
            at = ("components", str(i), "components", str(j))
            for key, limit in (("custom_id", 100), ("label", 80)):
                if len(item.get(key) or "") > limit:
                    problems.append(_length((*at, key), limit))
    return problems


def form_errors(body: dict[str, Any] | None) -> dict[str, Any] | None:
    """Discord's `errors` object for a message body over its limits, or None when it is valid."""
    body = body or {}
    problems = _embed_problems(body.get("embeds") or [])
    problems += _component_problems(body.get("components") or [])
    if len(body.get("content") or "") > 2000:
        problems.append(_length(("content",), 2000))
    if len(body.get("choices") or []) > 25:
        problems.append(_length(("choices",), 25))
    if not problems:
        return None
    errors: dict[str, Any] = {}
    for path, code, text in problems:
        node = errors
        for key in path:
            node = node.setdefault(key, {})
        node.setdefault("_errors", []).append({"code": code, "message": text})
    return errors


def error_body(code: int, message: str, errors: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Discord error answer."""
    return {"code": code, "message": message, **({"errors": errors} if errors else {})}


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
    """Records every request; answers like Discord. `fail` queues errors per request kind.

    Kinds: `login` (GET /users/@me), `sync` (PUT of the command tree), `dm` (opening a DM),
    `send` (a channel message).
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.fail: dict[str, list[tuple[int, int]]] = {}  # kind -> [(status, code)]
        self.channel_messages: dict[str, list[dict[str, Any]]] = {}
        self.acknowledged: dict[str, datetime] = {}  # interaction token -> created at
        self.gateway_close: int | None = None  # close code after IDENTIFY; None: READY
        self.identified = 0
        self._ids = itertools.count(900000000000000000)
        app = web.Application()
        app.router.add_route("*", "/api/v10/{path:.*}", self.handle)
        app.router.add_get("/gateway", self.gateway)
        self.server = TestServer(app, host="127.0.0.1", port=0)

    @property
    def base(self) -> str:
        return str(self.server.make_url("/api/v10"))

    @property
    def gateway_url(self) -> str:
        return str(self.server.make_url("/gateway")).replace("http://", "ws://")

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
        if status == 429:
            # discord.py takes a 429 without `Via` for a Cloudflare ban, as Discord's carry one.
            headers = {"Retry-After": "0", "Via": "1.1 google"}
            body = {"message": "You are being rate limited.", "retry_after": 0, "global": False}
            return _json(body, status=status, headers=headers)
        message = ERROR_MESSAGES.get(code) or STATUS_MESSAGES.get(status, f"{status}: error")
        # A 50035 names what was invalid; here, as for a too-long command description.
        too_long = {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 100 or fewer in length."}
        errors = {"0": {"description": {"_errors": [too_long]}}}
        body = error_body(code, message, errors if code == 50035 else None)
        return _json(body, status=status)

    def _invalid(self, body: Any, prefix: str = "") -> web.Response | None:
        errors = form_errors(body)
        if errors is None:
            return None
        return _json(
            error_body(50035, "Invalid Form Body", {prefix: errors} if prefix else errors), 400
        )

    def _callback(self, interaction_id: str, token: str, body: dict[str, Any]) -> web.Response:
        created = snowflake_time(int(interaction_id))
        if token in self.acknowledged:
            return _json(error_body(40060, "Interaction has already been acknowledged."), 400)
        if datetime.now(UTC) - created > timedelta(seconds=CALLBACK_SECONDS):
            return _json(error_body(10062, "Unknown interaction"), 404)
        if (invalid := self._invalid(body.get("data"), "data")) is not None:
            return invalid
        self.acknowledged[token] = created
        return _json({"interaction": {"id": interaction_id, "type": body["type"]}})

    def _followup(self, token: str, body: dict[str, Any]) -> web.Response:
        created = self.acknowledged.get(token)
        if created is None:
            return _json(error_body(10015, "Unknown Webhook"), 404)
        if datetime.now(UTC) - created > timedelta(minutes=TOKEN_MINUTES):
            return _json(error_body(50027, "Invalid Webhook Token"), 401)
        if (invalid := self._invalid(body)) is not None:
            return invalid
        return _json(self._message(CHANNEL_ID, body))

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        """The gateway: HELLO, then READY after IDENTIFY (or `gateway_close`), heartbeat ACKs."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}})
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                break
            op = json.loads(frame.data)["op"]
            if op == 1:
                await ws.send_json({"op": 11, "d": None})
            elif op == 2:
                self.identified += 1
                if self.gateway_close is not None:
                    reason = CLOSE_REASONS.get(self.gateway_close, "").encode()
                    await ws.close(code=self.gateway_close, message=reason)
                    break
                ready = {
                    "v": 10,
                    "user": BOT_USER,
                    "guilds": [],
                    "session_id": "fake-session",
                    "resume_gateway_url": self.gateway_url,
                    "application": {"id": APP_ID, "flags": 0},
                }
                await ws.send_json({"op": 0, "t": "READY", "s": 1, "d": ready})
        return ws

    async def handle(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body = json.loads(await request.text() or "null")
        self.requests.append((request.method, path, body))
        parts = path.strip("/").split("/")
        if path == "/users/@me":
            if (error := self._error("login")) is not None:
                return error
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
            if (error := self._error("sync")) is not None:
                return error
            synced = [{**cmd, "id": str(next(self._ids)), "application_id": APP_ID} for cmd in body]
            for cmd in synced:
                cmd.setdefault("version", "1")
                cmd.setdefault("default_member_permissions", None)
            return _json(synced)
        if parts[0] == "interactions":
            return self._callback(parts[1], parts[2], body)
        if parts[0] == "webhooks" and request.method == "POST":
            return self._followup(parts[2], body)
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
            if (invalid := self._invalid(body)) is not None:
                return invalid
            message = self._message(channel_id, body)
            self.channel_messages.setdefault(channel_id, []).append(message)
            return _json(message)
        return _json({"code": 0, "message": "404: Not Found"}, status=404)


_sequence = itertools.count()


def interaction(
    data: dict[str, Any],
    *,
    kind: int = 2,
    user_id: str = "555555555555555555",
    permissions: int = SEND_MESSAGES,
    in_guild: bool = True,
    message: dict[str, Any] | None = None,
    age: float = 0.0,
) -> dict[str, Any]:
    """A raw INTERACTION_CREATE payload as the gateway delivers it, created `age` seconds ago."""
    created = datetime.now(UTC) - timedelta(seconds=age)
    # A snowflake holds its creation time; the low bits keep ids made in one millisecond apart.
    n = next(_sequence)
    payload: dict[str, Any] = {
        "id": str(time_snowflake(created) + n % 4096),
        "application_id": APP_ID,
        "type": kind,
        "token": f"interaction-token-{n}",
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
