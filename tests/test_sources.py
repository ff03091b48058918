"""HF and arXiv sources, retries and ingest, against recorded payloads (no network)."""

import json
import logging
from datetime import UTC, date, datetime

import httpx
import pytest

from bot import http
from bot.errors import SourceError
from bot.ingest import ingest_arxiv, ingest_hf
from bot.runtime import StoreRunner
from bot.sources.arxiv import ArxivSource, parse_feed, tidy_title
from bot.sources.hf import HuggingFaceSource
from bot.storage import Store
from tests.conftest import FIXTURES

NOW = datetime(2026, 7, 13, 18, 0, tzinfo=UTC)
HF_DAY = json.loads((FIXTURES / "hf_daily_papers_latest_limit30_2026-06-12.json").read_text())
ARXIV = (FIXTURES / "arxiv_query_cat-cs.LG-OR-cat-cs.AI_max20_2026-04-30.atom.xml").read_bytes()


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def client(handler) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_retry_after_429_then_success() -> None:
    answers = iter(
        [httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json=[])]
    )
    sleeps = Sleeps()
    async with client(lambda request: next(answers)) as c:
        response = await http.get(c, "http://127.0.0.1/x", what="t", sleep=sleeps)
    assert response.status_code == 200
    assert sleeps.calls == [7.0]


async def test_503_then_success_and_user_agent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503) if len(seen) == 1 else httpx.Response(200, json=[])

    sleeps = Sleeps()
    async with client(handler) as c:
        await http.get(c, "http://127.0.0.1/x", what="t", sleep=sleeps)
    assert len(seen) == 2 and len(sleeps.calls) == 1 and 0 < sleeps.calls[0] <= 3
    assert seen[0].headers["User-Agent"].startswith("paperbot/")


async def test_timeouts_exhaust_retries_with_a_clear_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with client(handler) as c:
        with pytest.raises(SourceError, match="the thing failed after 4 attempts: slow"):
            await http.get(c, "http://127.0.0.1/x", what="the thing", sleep=Sleeps())
    # The caller logs the failure once for its whole run (run_ingest), not each request.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_404_is_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(404)

    async with client(handler) as c:
        with pytest.raises(SourceError, match="404"):
            await http.get(c, "http://127.0.0.1/x", what="t", sleep=Sleeps())
    assert len(calls) == 1


async def test_hf_daily_pages_and_skips_bad_items(caplog: pytest.LogCaptureFixture) -> None:
    broken = [*HF_DAY[:2], {"paper": {"id": "not-an-id", "title": "x"}}, {"nope": 1}]
    pages: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        pages.append(request.url.params["p"])
        assert request.url.params["date"] == "2026-06-12"
        return httpx.Response(200, json=broken)

    async with client(handler) as c:
        papers = await HuggingFaceSource(c, "http://127.0.0.1/api").daily(date(2026, 6, 12))
    assert pages == ["0"]  # a short page is the last one
    assert [p.id for p in papers] == [HF_DAY[0]["paper"]["id"], HF_DAY[1]["paper"]["id"]]
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert any("item 3" in w for w in warnings) and any("item 4" in w for w in warnings)


async def test_hf_rejects_a_non_array() -> None:
    async with client(lambda r: httpx.Response(200, json={"error": "x"})) as c:
        with pytest.raises(SourceError, match="JSON array"):
            await HuggingFaceSource(c, "http://127.0.0.1/api").daily(date(2026, 6, 12))
    async with client(lambda r: httpx.Response(200, text="<html>")) as c:
        with pytest.raises(SourceError, match="not valid JSON"):
            await HuggingFaceSource(c, "http://127.0.0.1/api").search("x")


def test_arxiv_feed_parsing() -> None:
    papers = parse_feed(ARXIV)
    assert len(papers) == 20
    first = papers[0]
    assert first.id == "2604.26951"  # version dropped
    assert first.categories[:2] == ("cs.CL", "cs.AI")
    assert first.authors[0] == "Gongbo Zhang" and first.published == "2026-04-29"
    assert first.pdf_url == "https://arxiv.org/pdf/2604.26951"
    assert tidy_title("A Note on the $\\ln\\ln T$\n  Term") == "A Note on the ln ln T Term"
    with pytest.raises(SourceError):
        parse_feed(b"<feed><entry>")


def test_arxiv_skips_a_broken_entry(caplog: pytest.LogCaptureFixture) -> None:
    text = ARXIV.decode().replace("http://arxiv.org/abs/2604.26951v1", "nothing-here", 1)
    papers = parse_feed(text)
    assert len(papers) == 19
    assert any("entry 1" in r.message for r in caplog.records)


async def test_arxiv_spacing_and_paging() -> None:
    starts: list[str] = []
    clock = [100.0]

    def handler(request: httpx.Request) -> httpx.Response:
        starts.append(request.url.params["start"])
        assert request.url.params["search_query"] == "cat:cs.LG OR cat:cs.AI"
        return httpx.Response(200, content=ARXIV)

    sleeps = Sleeps()
    async with client(handler) as c:
        source = ArxivSource(
            c, "http://127.0.0.1/q", ("cs.LG", "cs.AI"), clock=lambda: clock[0], sleep=sleeps
        )
        papers = await source.recent(since=date(2026, 1, 1), max_pages=3, page_size=20)
    assert starts == ["0", "20", "40"]
    assert sleeps.calls == [3.0, 3.0]  # the fake clock never moves: full 3 s between calls
    assert len(papers) == 60


async def test_arxiv_stops_at_since() -> None:
    async with client(lambda r: httpx.Response(200, content=ARXIV)) as c:
        source = ArxivSource(c, "http://127.0.0.1/q", sleep=Sleeps())
        papers = await source.recent(since=date(2026, 4, 29), max_pages=5, page_size=20)
    assert papers and all(p.published and p.published >= "2026-04-29" for p in papers)


@pytest.fixture
async def runner():  # type: ignore[no-untyped-def]
    r = StoreRunner(Store.open(":memory:"))
    yield r
    await r.close()


async def test_ingest_merges_sources_and_keeps_cursors(runner: StoreRunner) -> None:
    hf_item = dict(HF_DAY[0])
    hf_item["paper"] = dict(HF_DAY[0]["paper"], id="2604.26951", upvotes=42)
    days: list[str] = []

    def hf_handler(request: httpx.Request) -> httpx.Response:
        days.append(request.url.params["date"])
        return httpx.Response(
            200, json=[hf_item] if request.url.params["date"] == "2026-07-13" else []
        )

    async with client(hf_handler) as c:
        report = await ingest_hf(runner, HuggingFaceSource(c, "http://127.0.0.1/api"), NOW)
    assert days == [
        "2026-07-10",
        "2026-07-11",
        "2026-07-12",
        "2026-07-13",
    ]  # weekend lists are empty
    assert report.stats.new == 1
    async with client(lambda r: httpx.Response(200, content=ARXIV)) as c:
        arxiv = ArxivSource(c, "http://127.0.0.1/q", sleep=Sleeps())
        areport = await ingest_arxiv(runner, arxiv, NOW, since=date(2026, 4, 1), max_pages=1)
    assert (areport.stats.new, areport.stats.updated) == (19, 1)
    merged = await runner.call(lambda s: s.papers.get("2604.26951"))
    assert merged.sources == ("arxiv", "hf") and merged.upvotes == 42 and merged.categories
    assert await runner.call(lambda s: s.sources.cursor("hf")) == "2026-07-13"
    assert await runner.call(lambda s: s.sources.cursor("arxiv")) == "2026-04-29"
    days.clear()
    async with client(hf_handler) as c:  # a restart resumes from the cursor day
        await ingest_hf(runner, HuggingFaceSource(c, "http://127.0.0.1/api"), NOW)
    assert days == ["2026-07-13"]


async def test_a_source_that_is_down_changes_nothing(runner: StoreRunner) -> None:
    async with client(lambda r: httpx.Response(500)) as c:
        hf = HuggingFaceSource(c, "http://127.0.0.1/api", sleep=Sleeps())
        report = await ingest_hf(runner, hf, NOW)
        arxiv = ArxivSource(c, "http://127.0.0.1/q", sleep=Sleeps())
        areport = await ingest_arxiv(runner, arxiv, NOW)
    assert report.failed and areport.failed
    assert await runner.call(lambda s: s.papers.count()) == 0
    assert await runner.call(lambda s: s.sources.cursor("hf")) is None


async def test_run_ingest_with_settings(runner: StoreRunner) -> None:
    from bot.config import load_settings
    from bot.ingest import run_ingest

    settings = load_settings(
        hf_api_url="http://127.0.0.1:9/api", arxiv_api_url="http://127.0.0.1:9/q"
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/daily_papers":
            return httpx.Response(
                200, json=HF_DAY if request.url.params["date"] == "2026-07-13" else []
            )
        return httpx.Response(200, content=ARXIV)

    async with client(handler) as c:
        report = await run_ingest(settings, runner, NOW, "all", since=date(2026, 4, 1), client=c)
    assert report.failed == []
    assert report.sources["hf"].stats.new == 30
    assert report.sources["arxiv"].stats.new == 20


def test_arxiv_broken_entity_skips_only_that_entry(caplog: pytest.LogCaptureFixture) -> None:
    text = ARXIV.decode()
    marker = "Hyper Input Convex Neural Networks"
    text = text.replace(marker, marker + " &bogus;", 1)
    papers = parse_feed(text)
    assert len(papers) == 19
    assert not any(marker in p.title for p in papers)
    assert any("entry 2" in r.message and "not valid XML" in r.message for r in caplog.records)


async def test_ingest_analyses_papers_before_look_ups_see_them(
    runner: StoreRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot import search
    from bot.topics import scoring

    async with client(lambda r: httpx.Response(200, json=HF_DAY)) as c:
        hf = HuggingFaceSource(c, "http://127.0.0.1/api")
        report = await ingest_hf(runner, hf, NOW, since=NOW.date(), until=NOW.date())
    assert report.stats.new == len(HF_DAY)
    analysed: list[str] = []
    real = scoring.analyze

    def counting(title: str, *args: object, **kwargs: object) -> object:
        analysed.append(title)
        return real(title, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scoring, "analyze", counting)
    warm = await runner.call(lambda s: search.search(s, "LLM agents", today=NOW.date()))
    assert warm and analysed == []  # every paper it scored was analysed during the ingest
    # ... and the ingest's analyses are the ones a look-up would have made itself.
    scoring._analyzed.cache_clear()
    cold = await runner.call(lambda s: search.search(s, "LLM agents", today=NOW.date()))
    assert analysed and cold == warm


async def test_an_ingest_run_with_every_source_down_logs_one_warning(
    runner: StoreRunner, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.config import load_settings
    from bot.ingest import run_ingest

    settings = load_settings(
        hf_api_url="http://127.0.0.1:9/api", arxiv_api_url="http://127.0.0.1:9/q"
    )
    calls = []

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return httpx.Response(503, headers={"Retry-After": "0"})

    async with client(down) as c:
        report = await run_ingest(settings, runner, NOW, client=c)
    assert report.failed == ["hf", "arxiv"] and len(calls) == 8  # 4 attempts each
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("ingest: hf: Hugging Face daily papers")
    assert "; arxiv: arXiv query" in warnings[0]
    assert warnings[0].count("failed after 4 attempts: HTTP 503") == 2
