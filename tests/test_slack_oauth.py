"""Slack OAuth mode: installs through bolt's flow against a strict fake `oauth.v2.access`, a
token per team for requests and digests, and an uninstall that ends one team's digests."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from adapters.slack_app import SlackAdapter, slack_adapter
from adapters.slack_oauth import SCOPES
from bot.config import load_settings
from bot.digests import DigestRunner
from bot.health import Adapters
from bot.logs import RedactSecrets
from bot.runtime import StoreRunner
from bot.service import PaperBot
from bot.storage import Store
from tests.conftest import SLACK_TEST_SIGNING_SECRET
from tests.fakes.core import add_paper
from tests.fakes.slack import FakeSlack, manifest_scopes
from tests.test_slack_app import signed, wait_for

CLIENT_ID, CLIENT_SECRET = "1111.2222", "client-secret-7c6b5a4d3e2f"
MONDAY = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
STATE_COOKIE = "slack-app-oauth-state"
T = TypeVar("T")


@dataclass
class Oauth:
    fake: FakeSlack
    server: TestServer
    adapter: SlackAdapter
    runner: StoreRunner

    async def install(self, team: str) -> tuple[int, str]:
        """Open the install page, allow the app as a user of `team`, follow the redirect."""
        state, cookie, scopes = await self.start()
        return await self.redirect(self.fake.authorize(team, scopes), state, cookie)

    async def start(self) -> tuple[str, str, frozenset[str]]:
        """The install page: the state in its "Add to Slack" link and cookie, and the scopes."""
        async with ClientSession() as session, session.get(self.url("/slack/install")) as page:
            assert page.status == 200
            text = await page.text()
            cookie = page.cookies[STATE_COOKIE].value
        link = re.search(r'href="(https://slack.com/oauth/v2/authorize\?[^"]+)"', text)
        assert link is not None, text
        query = parse_qs(urlsplit(html.unescape(link.group(1))).query)
        assert query["client_id"] == [CLIENT_ID]
        return query["state"][0], cookie, frozenset(query["scope"][0].split(","))

    async def redirect(self, code: str, state: str, cookie: str | None) -> tuple[int, str]:
        """Slack sends the browser back with the code and the state."""
        headers = {"Cookie": f"{STATE_COOKIE}={cookie}"} if cookie is not None else {}
        query = urlencode({"code": code, "state": state})
        async with (
            ClientSession() as session,
            session.get(self.url(f"/slack/oauth_redirect?{query}"), headers=headers) as answer,
        ):
            return answer.status, await answer.text()

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def send(self, body: str, json_body: bool = False) -> int:
        headers = signed(body)
        if json_body:
            headers["Content-Type"] = "application/json"
        async with (
            ClientSession() as session,
            session.post(self.url("/slack/events"), data=body, headers=headers) as answer,
        ):
            return answer.status

    async def command(self, team: str, user: str, text: str) -> str:
        """Run `/papers text` as `user` of `team`; the answer's text."""
        before = len(self.fake.of("respond"))
        body = urlencode(
            {
                "command": "/papers",
                "text": text,
                "user_id": user,
                "channel_id": "C1",
                "team_id": team,
                "response_url": self.fake.url + "respond",
                "trigger_id": "t",
            }
        )
        assert await self.send(body) == 200
        await wait_for(lambda: len(self.fake.of("respond")) > before)
        return json.dumps(self.fake.of("respond")[before])

    async def event(self, team: str, event: dict[str, object]) -> None:
        body = {
            "type": "event_callback",
            "team_id": team,
            "api_app_id": "A1",
            "event_id": f"Ev{team}{event['type']}",
            "event_time": 1,
            "token": "x",
            "event": event,
        }
        assert await self.send(json.dumps(body), json_body=True) == 200

    def bot_token(self, team: str) -> str | None:
        bot = self.adapter.oauth.installations.find_bot(enterprise_id=None, team_id=team)  # type: ignore[union-attr]
        return bot.bot_token if bot else None


async def _oauth(tmp_path: Path, fake: FakeSlack) -> AsyncIterator[Oauth]:
    await fake.server.start_server()
    db = tmp_path / "paperbot.db"
    store = Store.open(db)
    add_paper(
        store, "2611.00001", "KV cache eviction for long contexts", MONDAY - timedelta(hours=2)
    )
    add_paper(store, "2611.00002", "Sparse mixture of experts routing", MONDAY - timedelta(hours=2))
    runner = StoreRunner(store)
    settings = load_settings(
        db_path=db,
        slack_client_id=CLIENT_ID,
        slack_client_secret=CLIENT_SECRET,
        slack_signing_secret=SLACK_TEST_SIGNING_SECRET,
        slack_api_url=fake.url + "api/",
    )
    bot = PaperBot(runner, clock=lambda: MONDAY - timedelta(days=3))
    adapter = slack_adapter(settings, bot, Adapters())
    web_app = web.Application()
    assert adapter.mount(web_app)
    server = TestServer(web_app, host="127.0.0.1", port=0)
    await server.start_server()
    assert "OAuth mode" in await adapter.start()
    try:
        yield Oauth(fake, server, adapter, runner)
    finally:
        await adapter.stop()
        await server.close()
        await runner.close()
        await fake.server.close()


@pytest.fixture
async def oauth(tmp_path: Path) -> AsyncIterator[Oauth]:
    async for found in _oauth(tmp_path, FakeSlack(oauth=(CLIENT_ID, CLIENT_SECRET))):
        yield found


async def eventually(read: Callable[[], Awaitable[T]], timeout: float = 5.0) -> T:
    """What `read` gives once it stops changing (an event is handled after its ack)."""
    deadline = time.monotonic() + timeout
    last = await read()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        now = await read()
        if now == last:
            return now
        last = now
    return last


async def test_an_install_through_the_redirect_keeps_the_teams_token(oauth: Oauth) -> None:
    state, cookie, scopes = await oauth.start()
    assert scopes == manifest_scopes() == frozenset(SCOPES)  # minimal: what the manifest asks
    status, page = await oauth.redirect(oauth.fake.authorize("T2", scopes), state, cookie)
    assert status == 200, page
    token = oauth.bot_token("T2")
    assert token is not None and token.startswith("xoxb-T2-")
    exchange = oauth.fake.of("oauth.v2.access")
    assert len(exchange) == 1 and exchange[0]["code"].startswith("code-T2-")
    # The new workspace's requests are authorized with its token.
    assert "Subscribed" in await oauth.command("T2", "U1", "subscribe kv-cache")


@pytest.mark.parametrize("attack", ["forged", "replayed", "cookie of another browser"])
async def test_a_forged_or_replayed_state_is_refused(oauth: Oauth, attack: str) -> None:
    state, cookie, scopes = await oauth.start()
    if attack == "forged":
        state = cookie = "0f6f2ad2-5d7e-4b3f-9d55-17b6e1b39a0c"  # never issued
    elif attack == "replayed":
        status, _ = await oauth.redirect(oauth.fake.authorize("T1", scopes), state, cookie)
        assert status == 200
    else:
        _, cookie, _ = await oauth.start()  # the state is real, the browser is not its own
    exchanges = len(oauth.fake.of("oauth.v2.access"))
    status, page = await oauth.redirect(oauth.fake.authorize("T9", scopes), state, cookie)
    # bolt's answers: a state it never issued or already used, or not this browser's.
    assert status in (400, 401) and re.search(r"invalid_(state|browser)", page), page
    assert len(oauth.fake.of("oauth.v2.access")) == exchanges  # no code was exchanged
    assert oauth.bot_token("T9") is None


async def test_two_teams_each_get_their_own_digest_with_their_own_token(oauth: Oauth) -> None:
    for team in ("T1", "T2"):
        assert (await oauth.install(team))[0] == 200
    # The same user id in both workspaces, as Enterprise Grid has: two subscribers.
    assert "Subscribed" in await oauth.command("T1", "U1", "subscribe kv cache")
    assert "Subscribed" in await oauth.command("T2", "U1", "subscribe mixture of experts")
    t1_list = await oauth.command("T1", "U1", "list")
    assert "kv cache" in t1_list and "mixture of experts" not in t1_list
    digests = DigestRunner(oauth.runner, {"slack": oauth.adapter.destination})
    report = await digests.tick(MONDAY + timedelta(hours=1, minutes=1))
    assert report.sent == 2 and report.failed == 0
    by_team = {post["team"]: post for post in oauth.fake.delivered}
    assert "KV cache eviction" in json.dumps(by_team["T1"]["blocks"])
    assert "mixture of experts" in json.dumps(by_team["T2"]["blocks"]).lower()
    # Each DM was opened and posted with that team's own token.
    opened = {call["users"] for call in oauth.fake.of("conversations.open")}
    assert opened == {"U1"} and len(oauth.fake.of("conversations.open")) == 2


@pytest.mark.parametrize("leaving", ["app_uninstalled", "tokens_revoked"])
async def test_an_uninstall_ends_that_teams_digests_and_data_only(
    oauth: Oauth, leaving: str, caplog: pytest.LogCaptureFixture
) -> None:
    for team in ("T1", "T2"):
        await oauth.install(team)
        assert "Subscribed" in await oauth.command(team, "U1", "subscribe kv cache")
    await wait_for(lambda: len(oauth.fake.of("views.publish")) == 2)  # App Home, then it goes
    event: dict[str, object] = {"type": leaving}
    if leaving == "tokens_revoked":
        event["tokens"] = {"bot": ["UBOT"]}
    oauth.fake.revoke("T2")
    await oauth.event("T2", event)
    await wait_for(lambda: oauth.bot_token("T2") is None)

    def left(store: Store) -> list[tuple[str, str]]:
        rows = store.conn.execute("SELECT workspace, address FROM subscribers").fetchall()
        return [tuple(row) for row in rows]

    assert await eventually(lambda: oauth.runner.call(left)) == [("T1", "U1")]
    assert oauth.bot_token("T1") is not None
    digests = DigestRunner(oauth.runner, {"slack": oauth.adapter.destination})
    report = await digests.tick(MONDAY + timedelta(hours=1, minutes=1))
    assert report.sent == 1 and report.failed == 0 and report.retrying == 0
    assert [post["team"] for post in oauth.fake.delivered] == ["T1"]
    assert not oauth.fake.refused  # nothing was even tried with T2's dead token
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_rotating_tokens_are_refreshed_for_requests_and_digests(tmp_path: Path) -> None:
    # Tokens that live an hour are always within bolt's two hours of expiring: each use
    # refreshes first. The first one has even expired already at Slack.
    fake = FakeSlack(oauth=(CLIENT_ID, CLIENT_SECRET), rotation_seconds=3600)
    async for oauth in _oauth(tmp_path, fake):
        await oauth.install("T1")
        first = oauth.bot_token("T1")
        assert first is not None and first.startswith("xoxe.xoxb-T1-")
        fake.expires[first] = 0.0
        assert "Subscribed" in await oauth.command("T1", "U1", "subscribe kv cache")
        digests = DigestRunner(oauth.runner, {"slack": oauth.adapter.destination})
        report = await digests.tick(MONDAY + timedelta(hours=1, minutes=1))
        assert report.sent == 1
        assert oauth.bot_token("T1") not in (None, first)
        grants = [call.get("grant_type") for call in fake.of("oauth.v2.access")]
        assert grants[0] is None and grants[1:] and set(grants[1:]) == {"refresh_token"}
        assert fake.refused == []  # no call went out with an expired token


def test_issued_tokens_never_reach_a_log_line_at_debug() -> None:
    line = (
        "Received the following response - body: {'access_token': 'xoxe.xoxb-T1-7', "
        "'refresh_token': 'xoxe-1-T1-7', 'app': 'xapp-1-A1-99'}"
    )
    record = logging.LogRecord("slack_sdk", logging.DEBUG, "", 0, line, None, None)
    RedactSecrets([]).filter(record)
    assert "xox" not in record.getMessage() and "xapp" not in record.getMessage()


def test_the_manifest_has_the_redirect_and_the_uninstall_events_and_no_more_scopes() -> None:
    import yaml

    from tests.fakes.slack import MANIFEST

    manifest = yaml.safe_load(MANIFEST.read_text())
    assert [urlsplit(u).path for u in manifest["oauth_config"]["redirect_urls"]] == [
        "/slack/oauth_redirect"
    ]
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {"app_uninstalled", "tokens_revoked"} <= set(events)
    assert frozenset(SCOPES) == manifest_scopes()  # an install asks for these and no more
    assert "user" not in manifest["oauth_config"]["scopes"]  # no user tokens are kept
