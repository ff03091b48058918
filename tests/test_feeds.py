"""Atom feeds out: a topic's newest papers and each subscriber's digests, over real HTTP on
127.0.0.1 against a real SQLite store, parsed back with feedparser."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar

import feedparser
import pytest
import yarl
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.feeds_http import add_feed_routes
from bot import feeds
from bot.commands import Command, parse_command
from bot.digests import DigestRunner
from bot.models import Caller, DigestSettings, Paper
from bot.runtime import StoreRunner
from bot.service import PaperBot
from bot.storage import Store
from tests.fakes.core import FakeClock, FakeDestination, add_paper, add_subscriber

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
BASE = "https://papers.example.org/pb"
ALICE = Caller("console", "alice")
BOB = Caller("console", "bob")
T = TypeVar("T")


class CountingRunner(StoreRunner):
    """A StoreRunner that counts the calls made on the store thread."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.calls = 0

    async def call(self, fn: Callable[[Store], T]) -> T:  # type: ignore[override]
        self.calls += 1
        return await super().call(fn)


def kv_paper(store: Store, n: int, at: datetime, **fields: Any) -> Paper:
    """A paper on KV caches with an arXiv id, authors, links and a date."""
    pid = f"2611.{n:05d}"
    values: dict[str, Any] = {
        "authors": ("Ada Lovelace", "Alan Turing"),
        "published": at.date().isoformat(),
        "abs_url": f"https://arxiv.org/abs/{pid}",
        "pdf_url": f"https://arxiv.org/pdf/{pid}",
        "categories": ("cs.LG",),
        **fields,
    }
    return add_paper(
        store,
        pid,
        f"KV cache compression for long contexts, part {n}",
        at,
        "We compress the key-value cache of transformer inference. It saves memory.",
        **values,
    )


@pytest.fixture
async def runner() -> AsyncIterator[CountingRunner]:
    r = CountingRunner(Store.open(":memory:"))
    yield r
    await r.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def bot(runner: CountingRunner, clock: FakeClock) -> PaperBot:
    return PaperBot(runner, clock=clock, public_url=BASE)


@pytest.fixture
async def http(bot: PaperBot) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    add_feed_routes(app, bot)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


Http = TestClient[web.Request, web.Application]


async def fill(runner: StoreRunner, fn: Callable[[Store], object]) -> None:
    await runner.call(fn)


def path_of(url: str) -> str:
    """The path and query of a feed address (the test server stands for its host)."""
    parsed = yarl.URL(url)
    assert str(parsed.origin()) + "/pb" == BASE
    query = f"?{parsed.raw_query_string}" if parsed.raw_query_string else ""
    return parsed.raw_path.removeprefix("/pb") + query


# -- a topic's feed ----------------------------------------------------------------------------


async def test_search_feed_is_atom_with_every_required_element_and_why_each_matched(
    runner: CountingRunner, http: Http
) -> None:
    def papers(store: Store) -> None:
        for n in range(3):
            kv_paper(store, n, NOW - timedelta(days=3 - n))
        add_paper(store, "2611.09999", "Protein folding with diffusion", NOW, "Nothing on caches.")

    await fill(runner, papers)
    response = await http.get("/feeds/search.atom", params={"q": "kv-cache"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/atom+xml; charset=utf-8"
    body = await response.read()
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.version == "atom10"
    feed = parsed.feed
    assert feed.id == "tag:paperbot,2026:search:kv-cache"
    assert feed.title == "paperbot: kv-cache"
    assert feed.updated_parsed[:6] == (NOW - timedelta(days=1)).timetuple()[:6]
    self_link = next(link for link in feed.links if link.rel == "self")
    assert self_link.href == f"{BASE}/feeds/search.atom?q=kv-cache"
    # The newest first; the paper without the topic's words is not in it.
    assert [e.id for e in parsed.entries] == [
        f"https://arxiv.org/abs/2611.{n:05d}" for n in (2, 1, 0)
    ]
    for entry in parsed.entries:
        assert entry.title.startswith("KV cache compression")
        assert entry.link == entry.id  # the abstract page
        assert entry.updated_parsed and entry.published_parsed
        assert [a.name for a in entry.authors] == ["Ada Lovelace", "Alan Turing"]
        assert "Why it matched:" in entry.summary and "in title" in entry.summary
        assert "key-value cache of transformer inference" in entry.summary
        assert len(entry.links) == 1  # the one alternate; the PDF is linked in the summary
        assert f'<a href="{entry.id.replace("/abs/", "/pdf/")}">PDF</a>' in entry.summary
        assert {t.term for t in entry.tags} == {"cs.LG"}
    again = await http.get("/feeds/search.atom", params={"q": "kv-cache"})
    assert await again.read() == body  # ids, times and ETag are stable across requests
    assert again.headers["ETag"] == response.headers["ETag"]


async def test_conditional_requests_get_304(runner: CountingRunner, http: Http) -> None:
    await fill(runner, lambda store: kv_paper(store, 1, NOW - timedelta(hours=2)))
    first = await http.get("/feeds/search.atom", params={"q": "kv cache"})
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert etag.startswith('W/"') and first.headers["Cache-Control"] == "public, max-age=300"
    assert modified == format_datetime(NOW - timedelta(hours=2), usegmt=True)

    async def status(**headers: str) -> int:
        response = await http.get("/feeds/search.atom", params={"q": "kv cache"}, headers=headers)
        if response.status == 304:
            assert response.headers["ETag"] == etag and not await response.read()
        return response.status

    assert await status(**{"If-None-Match": etag}) == 304
    assert await status(**{"If-None-Match": f'"other", {etag.removeprefix("W/")}'}) == 304
    assert await status(**{"If-None-Match": '"other"'}) == 200
    assert await status(**{"If-Modified-Since": modified}) == 304
    earlier = format_datetime(NOW - timedelta(hours=3), usegmt=True)
    assert await status(**{"If-Modified-Since": earlier}) == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    assert await status(**{"If-None-Match": '"other"', "If-Modified-Since": modified}) == 200
    # A newer paper changes both validators.
    await fill(runner, lambda store: kv_paper(store, 2, NOW - timedelta(hours=1)))
    assert await status(**{"If-None-Match": etag}) == 200
    assert await status(**{"If-Modified-Since": modified}) == 200


async def test_the_feed_keeps_the_newest_50(runner: CountingRunner, http: Http) -> None:
    def papers(store: Store) -> None:
        for n in range(60):
            kv_paper(store, n, NOW - timedelta(hours=60 - n))

    await fill(runner, papers)
    body = await (await http.get("/feeds/search.atom", params={"q": "kv-cache"})).read()
    entries = feedparser.parse(body).entries
    assert len(entries) == feeds.MAX_ENTRIES == 50
    assert entries[0].id.endswith("2611.00059") and entries[-1].id.endswith("2611.00010")


async def test_a_feed_request_is_one_store_call_rendering_included_off_the_event_loop(
    runner: CountingRunner, bot: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(runner, lambda store: kv_paper(store, 1, NOW))
    rendered_on: list[threading.Thread] = []
    render = feeds.render

    def spy(data: feeds.FeedData) -> feeds.Feed:
        rendered_on.append(threading.current_thread())
        return render(data)

    monkeypatch.setattr(feeds, "render", spy)
    before = runner.calls
    feed = await bot.search_feed("kv cache")
    assert runner.calls - before == 1
    assert rendered_on and rendered_on[0] is not threading.main_thread()
    assert b"2611.00001" in feed.body


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "   "}])
async def test_an_empty_topic_is_a_400_saying_what_to_give(
    http: Http, params: dict[str, str]
) -> None:
    response = await http.get("/feeds/search.atom", params=params)
    assert response.status == 400
    assert "Which topic?" in await response.text()


HOSTILE = [
    '"',
    '"unclosed phrase',
    "*",
    "kv*",
    "NEAR(",
    "NEAR(kv cache, 3)",
    "a OR",
    "-",
    ")(",
    "title:",
    "author:",
    "'; DROP TABLE papers; --",
    "papers_fts MATCH 'x'",
    "kv\x00cache",
    "kv\ncache",
    "\x1b[31mred",
    "\ufffe\uffff",
    "<script>alert(1)</script>",
    "x" * 5000,
    "kv " * 200,
]


@pytest.mark.parametrize("q", HOSTILE)
async def test_hostile_topics_get_a_400_or_a_valid_feed_never_a_500(
    runner: CountingRunner, http: Http, q: str
) -> None:
    await fill(runner, lambda store: kv_paper(store, 1, NOW))
    response = await http.get("/feeds/search.atom", params={"q": q})
    body = await response.read()
    assert response.status in (200, 400), body
    if response.status == 200:
        parsed = feedparser.parse(body)
        assert not parsed.bozo, parsed.bozo_exception
        assert b"<script>" not in body  # a typed topic is text in the feed, never markup
    else:
        assert b"Traceback" not in body and len(body) < 500


async def test_bytes_that_are_not_utf8_in_q_are_answered(http: Http) -> None:
    response = await http.get(yarl.URL("/feeds/search.atom?q=%ff%fe%00", encoded=True))
    assert response.status in (200, 400)


async def test_papers_with_junk_in_their_text_still_make_valid_atom(
    runner: CountingRunner, http: Http
) -> None:
    def junk(store: Store) -> None:
        add_paper(
            store,
            "seed-0000000001",
            "KV cache \x00\x08 with \ufffe control characters & <tags>",
            NOW,
            "The key-value cache \x1b[0m of a model.",
            authors=("\x0cAda", "  ", "Grace <Hopper>"),
            categories=("cs.LG", "\x01"),
        )

    await fill(runner, junk)
    body = await (await http.get("/feeds/search.atom", params={"q": "kv cache"})).read()
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.bozo_exception
    (entry,) = parsed.entries
    assert entry.id == "tag:paperbot,2026:paper:seed-0000000001"
    assert entry.title == "KV cache  with  control characters & <tags>"
    assert [a.name for a in entry.authors] == ["Ada", "Grace <Hopper>"]
    # No link to give: the entry carries its content, as Atom asks then.
    assert entry.content[0].value.startswith("<p><b>Why it matched:</b>")


def test_the_same_data_renders_the_same_bytes_and_is_kept(store: Store) -> None:
    kv_paper(store, 1, NOW)
    data = feeds.search_feed(store, BASE, "kv cache", NOW.date())
    # Rendered afresh twice (not from the kept ones): nothing in it depends on the moment.
    first, second = feeds.render.__wrapped__(data), feeds.render.__wrapped__(data)
    assert first == second
    again = feeds.search_feed(store, BASE, "kv cache", NOW.date())
    assert again == data and again is not data
    assert feeds.render(again) is feeds.render(data)  # polled unchanged: not rendered again


def test_entry_ids_are_the_arxiv_abstract_or_a_tag_uri() -> None:
    assert feeds.entry_id("2401.12345") == "https://arxiv.org/abs/2401.12345"
    assert feeds.entry_id("cs/0112017") == "https://arxiv.org/abs/cs/0112017"
    assert feeds.entry_id("seed-1a2b") == "tag:paperbot,2026:paper:seed-1a2b"
    assert feeds.entry_id("a b/c") == "tag:paperbot,2026:paper:a%20b%2Fc"


# -- a subscriber's private feed ---------------------------------------------------------------


async def send_digest(
    runner: StoreRunner,
    clock: FakeClock,
    address: str,
    papers: list[int],
    day: int = 0,
    topic: str = "kv-cache",
) -> None:
    """Subscribe `address` to the topic (once) and send them a digest of those papers (on KV
    caches, or with the topic as their title)."""
    settings = DigestSettings(digest_time="12:30", days=tuple(range(7)))
    start = NOW + timedelta(days=day)

    def prepare(store: Store) -> None:
        if store.subscribers.find("console", "user", address) is None:
            add_subscriber(store, address, [topic], start, settings)
        for n in papers:
            at = start + timedelta(minutes=5)
            if topic == "kv-cache":
                kv_paper(store, n, at)
            else:
                add_paper(store, f"2611.{n:05d}", f"{topic} {n}", at, authors=("Grace Hopper",))

    await runner.call(prepare)
    clock.set(start + timedelta(minutes=31))
    destination = FakeDestination("console", clock)
    await DigestRunner(runner, {"console": destination}, clock).tick()
    assert destination.delivered, "no digest was sent"


async def feed_url(bot: PaperBot, caller: Caller, text: str = "feed") -> str:
    reply = await bot.run(caller, parse_command(text))
    assert not reply.error, reply.text
    (url,) = re.findall(r"`(https://\S+)`", reply.text)
    return url


async def test_papers_feed_gives_an_address_that_serves_the_digests(
    runner: CountingRunner, bot: PaperBot, clock: FakeClock, http: Http
) -> None:
    await send_digest(runner, clock, "alice", [1, 2])
    await send_digest(runner, clock, "alice", [3], day=1)
    url = await feed_url(bot, ALICE)
    assert url.startswith(f"{BASE}/feeds/digests/") and url.endswith(".atom")
    assert await feed_url(bot, ALICE) == url  # shown again, the same
    response = await http.get(path_of(url))
    assert response.status == 200
    assert response.headers["Cache-Control"] == "private, max-age=300"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    parsed = feedparser.parse(await response.read())
    assert not parsed.bozo, parsed.bozo_exception
    assert parsed.feed.id.startswith("tag:paperbot,2026:digests:")
    assert next(link.href for link in parsed.feed.links if link.rel == "self") == url
    # The latest digest's papers first, each as sent, with its topic and why.
    assert parsed.entries[0].id == "https://arxiv.org/abs/2611.00003"
    assert {e.id.rsplit("/", 1)[1] for e in parsed.entries} == {
        "2611.00001",
        "2611.00002",
        "2611.00003",
    }
    newest = parsed.entries[0]
    assert newest.updated_parsed[:5] == (NOW + timedelta(days=1, minutes=31)).timetuple()[:5]
    assert "In your digest of Sat 21 Nov 2026, for kv-cache" in newest.summary
    assert "Why it matched:" in newest.summary
    assert {t.term for t in newest.tags} == {"kv-cache", "cs.LG"}


async def test_feed_reset_retires_the_old_address(
    runner: CountingRunner, bot: PaperBot, clock: FakeClock, http: Http
) -> None:
    await send_digest(runner, clock, "alice", [1])
    old = await feed_url(bot, ALICE)
    new = await feed_url(bot, ALICE, "feed reset")
    assert new != old and "new address" in (await bot.run(ALICE, parse_command("feed reset"))).text
    newest = await feed_url(bot, ALICE)
    assert newest != new  # the second reset replaced it again
    assert (await http.get(path_of(old))).status == 404
    assert (await http.get(path_of(new))).status == 404
    ok = await http.get(path_of(newest))
    assert ok.status == 200 and b"2611.00001" in await ok.read()


async def test_a_token_shows_only_its_own_subscribers_digests(
    runner: CountingRunner, bot: PaperBot, clock: FakeClock, http: Http
) -> None:
    await send_digest(runner, clock, "alice", [1])
    await send_digest(runner, clock, "bob", [7], day=1, topic="protein folding")
    alice = feedparser.parse(await (await http.get(path_of(await feed_url(bot, ALICE)))).read())
    bob = feedparser.parse(await (await http.get(path_of(await feed_url(bot, BOB)))).read())
    assert [e.id for e in alice.entries] == ["https://arxiv.org/abs/2611.00001"]
    assert [e.id for e in bob.entries] == ["https://arxiv.org/abs/2611.00007"]
    assert alice.feed.id != bob.feed.id


async def test_muted_papers_leave_the_private_feed(
    runner: CountingRunner, bot: PaperBot, clock: FakeClock, http: Http
) -> None:
    await send_digest(runner, clock, "alice", [1, 2])
    await bot.run(ALICE, Command("mute", arg="2611.00001"))
    parsed = feedparser.parse(await (await http.get(path_of(await feed_url(bot, ALICE)))).read())
    assert [e.id for e in parsed.entries] == ["https://arxiv.org/abs/2611.00002"]


def test_the_topic_a_paper_was_sent_for_costs_about_one_score_each(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    subscriber = add_subscriber(store, "alice", ["protein folding", "kv-cache"], NOW)
    papers = [kv_paper(store, n, NOW).id for n in range(3)]
    store.conn.execute(
        "INSERT INTO deliveries (subscriber_id, local_date, status, window_start, window_end, "
        "claimed_at, finished_at, paper_ids) VALUES (?, '2026-11-20', 'sent', 'a', 'b', 'c', ?, ?)",
        [subscriber.id, NOW.isoformat(), json.dumps(papers)],
    )
    store.subscribers.set_feed_token(subscriber.id, "t" * 43)
    # The first paper tries both topics; the next ones start from kv-cache: 2 + 1 + 1 scores.
    monkeypatch.setattr(feeds, "TOPIC_SCORES", 4)
    data = feeds.digest_feed(store, BASE, "t" * 43)
    assert data is not None
    assert [e.topic for e in data.entries] == ["kv-cache"] * 3
    monkeypatch.setattr(feeds, "TOPIC_SCORES", 3)  # spent before the last paper
    data = feeds.digest_feed(store, BASE, "t" * 43)
    assert data is not None
    assert [e.topic for e in data.entries] == ["kv-cache", "kv-cache", None]
    assert "for kv-cache" not in data.entries[2].context and not data.entries[2].why


WRONG = [
    "/feeds/digests/" + "A" * 43 + ".atom",  # well formed, nobody's
    "/feeds/digests/short.atom",
    "/feeds/digests/" + "A" * 43,  # no .atom
    "/feeds/digests/" + "A" * 42 + "!.atom",
    "/feeds/digests/" + "A" * 500 + ".atom",
    "/feeds/digests/.atom",
    "/feeds/digests/%00.atom",
    "/feeds/digests/" + "A" * 43 + "%0A.atom",  # a newline after a well-formed secret
]


@pytest.mark.parametrize("path", WRONG)
async def test_any_wrong_secret_is_the_same_404(
    runner: CountingRunner, bot: PaperBot, clock: FakeClock, http: Http, path: str
) -> None:
    await send_digest(runner, clock, "alice", [1])
    real = await http.get(path_of(await feed_url(bot, ALICE)))
    assert real.status == 200
    response = await http.get(yarl.URL(path, encoded=True))
    assert response.status == 404
    assert await response.text() == (
        "There is no feed at this address. `/papers feed` in chat shows yours.\n"
    )


async def test_a_malformed_secret_costs_no_store_work(runner: CountingRunner, http: Http) -> None:
    before = runner.calls
    for path in ("nope.atom", "A" * 43 + "%0A.atom", "A" * 44 + ".atom"):
        response = await http.get(yarl.URL("/feeds/digests/" + path, encoded=True))
        assert response.status == 404
    assert runner.calls == before


async def test_papers_feed_without_a_subscription_says_how_to_subscribe(bot: PaperBot) -> None:
    reply = await bot.run(ALICE, parse_command("feed"))
    assert not reply.error
    assert "/papers subscribe <topic>" in reply.text
    assert f"{BASE}/feeds/search.atom?q=kv-cache" in reply.text
    reset = await bot.run(ALICE, parse_command("feed reset"))
    assert "/papers subscribe <topic>" in reset.text


async def test_a_store_that_fails_is_a_503_not_a_traceback(
    bot: PaperBot, http: Http, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(query: str) -> feeds.Feed:
        raise RuntimeError("the store thread is gone")

    monkeypatch.setattr(bot, "search_feed", broken)
    response = await http.get("/feeds/search.atom", params={"q": "kv-cache"})
    assert response.status == 503 and "Traceback" not in await response.text()


async def test_feeds_share_the_server_of_healthz(bot: PaperBot) -> None:
    from adapters.ops_http import add_ops_routes
    from bot.health import Health

    async def health() -> Health:
        return Health("ok", {"store": "ok"})

    app = web.Application()
    add_ops_routes(app, health)
    add_feed_routes(app, bot)
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/feeds/search.atom?q=kv")).status == 200
