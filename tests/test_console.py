"""The console adapter delivers due digests by printing them, once."""

import io
from datetime import UTC, datetime, timedelta

from adapters.console import CALLER, ConsoleDestination, render_reply, strip_command
from bot.digest import DigestRunner
from bot.models import DigestSettings
from bot.runtime import StoreRunner
from bot.service import PaperBot
from bot.store import Store
from bot.testing import add_paper, add_subscriber

MONDAY_0850 = datetime(2026, 11, 23, 8, 50, tzinfo=UTC)


async def test_due_digest_is_printed_once_by_the_scheduler_tick() -> None:
    store = Store.open(":memory:")
    add_paper(
        store, "2611.00001", "KV cache eviction for long contexts", MONDAY_0850 - timedelta(hours=3)
    )
    add_subscriber(
        store, "console", ["kv cache"], MONDAY_0850 - timedelta(days=2), DigestSettings()
    )
    runner = StoreRunner(store)
    out = io.StringIO()
    digests = DigestRunner(runner, {"console": ConsoleDestination(out)})
    await digests.tick(MONDAY_0850)
    assert out.getvalue() == ""  # 09:00 has not come yet
    await digests.tick(MONDAY_0850 + timedelta(minutes=10))
    await digests.tick(MONDAY_0850 + timedelta(minutes=11))
    printed = out.getvalue()
    assert printed.count("Your paper digest for 2026-11-23") == 1
    assert "KV cache eviction for long contexts" in printed
    await runner.close()


async def test_replies_render_as_text() -> None:
    store = Store.open(":memory:")
    add_paper(store, "2611.00002", "Mixture of experts routing", MONDAY_0850)
    runner = StoreRunner(store)
    bot = PaperBot(runner, clock=lambda: MONDAY_0850)
    text = render_reply(await bot.handle(CALLER, strip_command("/papers MoE")))
    assert "1. Mixture of experts routing" in text and "why:" in text
    assert strip_command("papers list") == "list" and strip_command("  /papers  ") == ""
    await runner.close()
