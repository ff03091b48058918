from datetime import UTC, datetime

import pytest

from bot.commands import Command, parse_command
from bot.errors import SourceError
from bot.importer import import_files
from bot.models import Caller, Paper
from bot.runtime import StoreRunner
from bot.service import PaperBot
from bot.storage import Store
from tests.conftest import SEED

NOW = datetime(2026, 11, 20, tzinfo=UTC)
ME = Caller(platform="console", user_id="me")


@pytest.fixture
async def runner():  # type: ignore[no-untyped-def]
    store = Store.open(":memory:")
    import_files(store, [SEED], NOW)
    r = StoreRunner(store)
    yield r
    await r.close()


async def test_fallback_fills_a_thin_lookup_and_says_so(runner: StoreRunner) -> None:
    asked: list[str] = []

    async def remote(query: str, limit: int) -> list[Paper]:
        asked.append(query)
        return [
            Paper(
                id="2601.00001",
                title="Kazakh speech corpus",
                abs_url="https://arxiv.org/abs/2601.00001",
            )
        ]

    bot = PaperBot(runner, clock=lambda: NOW, fallback=remote)
    reply = await bot.run(ME, parse_command("kazakh"))
    assert asked == ["kazakh"]
    assert "Hugging Face" in reply.text and reply.cards[-1].title == "Kazakh speech corpus"
    assert reply.cards[-1].why == "found by Hugging Face paper search"
    full = await bot.run(ME, parse_command("kv-cache"))  # enough local results: no remote call
    assert asked == ["kazakh"] and len(full.cards) == 5


async def test_fallback_failure_keeps_the_local_answer(runner: StoreRunner) -> None:
    async def down(query: str, limit: int) -> list[Paper]:
        raise SourceError("down")

    bot = PaperBot(runner, clock=lambda: NOW, fallback=down)
    reply = await bot.run(ME, parse_command("kazakh"))
    assert "No papers" in reply.text and not reply.cards


async def test_a_bug_becomes_a_polite_reply(runner: StoreRunner, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from bot import commands

    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(commands.Handler, "handle", boom)
    reply = await PaperBot(runner, clock=lambda: NOW).run(ME, parse_command("help"))
    assert reply.error and "went wrong" in reply.text


async def test_mute_and_more_like_this(runner: StoreRunner) -> None:
    bot = PaperBot(runner, clock=lambda: NOW)
    first = (await bot.run(ME, parse_command("kv-cache"))).cards[0]
    assert "won't show you" in (await bot.run(ME, Command("mute", arg=first.paper_id))).text
    again = await bot.run(ME, parse_command("kv-cache"))
    assert first.paper_id not in [c.paper_id for c in again.cards]
    like = await bot.run(ME, Command("more", arg=again.cards[0].paper_id))
    assert like.cards and again.cards[0].paper_id not in [c.paper_id for c in like.cards]
    assert (await bot.run(ME, Command("mute", arg="nope"))).error


async def test_run_takes_a_parsed_command(runner: StoreRunner) -> None:
    bot = PaperBot(runner, clock=lambda: NOW)
    reply = await bot.run(ME, Command("subscribe", arg="MoE"))
    assert not reply.error
    assert await bot.own_topics(ME) == ["MoE"]
    assert await bot.own_topics(ME, channel=True) == []


async def test_topic_suggestions_put_popular_topics_before_the_lexicon(
    runner: StoreRunner,
) -> None:
    bot = PaperBot(runner, clock=lambda: NOW)
    for user in ("a", "b", "c"):
        await bot.run(Caller("discord", user), parse_command("subscribe kv cache compression"))
    await bot.run(Caller("discord", "d"), parse_command("subscribe kv cache eviction"))
    await bot.run(Caller("slack", "e"), parse_command("subscribe kv cache on slack"))
    suggestions = await bot.suggest_topics("discord", "KV", 25)
    assert suggestions[:2] == [
        ("kv cache compression", "kv cache compression"),
        ("kv cache eviction", "kv cache eviction"),
    ]
    assert ("KV cache", "KV cache") in suggestions  # from the lexicon
    assert all("slack" not in value for _, value in suggestions)
    assert len(await bot.suggest_topics("discord", "", 25)) == 25
    assert await bot.suggest_topics("discord", "zzzz-nothing", 25) == []
