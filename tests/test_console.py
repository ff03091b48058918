"""The console adapter delivers due digests by printing them, once."""

import asyncio
import io
import os
import pty
import select
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.console import (
    CALLER,
    ConsoleAdapter,
    ConsoleDestination,
    Shown,
    answer,
    command_of,
    render_reply,
    run_lines,
    strip_command,
)
from bot.digests import DigestRunner
from bot.models import DigestSettings, Reply
from bot.runtime import StoreRunner
from bot.service import PaperBot
from bot.storage import Store
from tests.fakes.core import add_paper, add_subscriber

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
    text = render_reply(await bot.run(CALLER, command_of("/papers MoE")))
    assert "1. Mixture of experts routing" in text and "why:" in text
    assert strip_command("papers list") == "list" and strip_command("  /papers  ") == ""
    await runner.close()


async def test_log_lines_print_above_the_prompt_not_inside_it() -> None:
    import asyncio
    import logging

    from prompt_toolkit import PromptSession
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.data_structures import Size
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output.vt100 import Vt100_Output

    from adapters.console import run_interactive

    screen = io.StringIO()
    output = Vt100_Output(screen, lambda: Size(rows=24, columns=100), term="xterm")
    handler = logging.StreamHandler(sys.__stderr__)
    logging.getLogger().addHandler(handler)
    store = Store.open(":memory:")
    runner = StoreRunner(store)
    try:
        # The session's terminal is `screen`: the prompt and what prints above it both go there.
        with create_pipe_input() as keys, create_app_session(input=keys, output=output):
            session: PromptSession[str] = PromptSession()
            typing = asyncio.create_task(run_interactive(PaperBot(runner), session))
            await asyncio.sleep(0.3)
            keys.send_text("/papers he")  # half a line typed when the log line comes
            await asyncio.sleep(0.2)
            logging.getLogger("bot.ingest").warning("ingest: hf: unreachable")
            await asyncio.sleep(0.3)
            keys.send_text("lp\rquit\r")
            await asyncio.wait_for(typing, 5)
    finally:
        logging.getLogger().removeHandler(handler)
        await runner.close()
    assert handler.stream is sys.__stderr__  # given back after the session
    raw = screen.getvalue()
    _, _, after = raw.partition("ingest: hf: unreachable\n")
    assert after, "the log line went around the prompt, straight to the terminal"
    # The prompt is drawn again below the line, with what was typed so far.
    assert "\x1b[J\x1b[0mpapers> /papers help" in after


async def test_offline_first_run_prompts_before_the_sources_answer_and_quits_cleanly(
    tmp_path: Path,
) -> None:
    """`paperbot run` in a terminal on an empty store, with Hugging Face holding every request
    open: the prompt comes while the fetch is still waiting (the sample is loaded first), a
    look-up answers from it, and `quit` leaves with exit 0 and no error line."""
    held = asyncio.Event()

    async def daily(request: web.Request) -> web.Response:
        held.set()
        await asyncio.sleep(3600)  # never answers while the test runs
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/api/daily_papers", daily)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    env = {
        **os.environ,
        "PAPERBOT_DB": str(tmp_path / "paperbot.db"),
        "PAPERBOT_HF_API_URL": str(server.make_url("/api")),
        "PAPERBOT_ARXIV_API_URL": "http://127.0.0.1:9/api/query",  # nothing listens there
        "PAPERBOT_HTTP_PORT": "0",
        "PAPERBOT_SEMANTIC": "off",
        "SLACK_BOT_TOKEN": "",
        "DISCORD_TOKEN": "",
        "TERM": "dumb",
    }
    leader, follower = pty.openpty()  # a terminal, so the console adapter starts
    bot = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "paperbot"), "run",
        stdin=follower, stdout=follower, stderr=follower, env=env,
    )  # fmt: skip
    os.close(follower)
    screen = bytearray()

    async def until(text: bytes, timeout: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while text not in screen:
            assert asyncio.get_running_loop().time() < deadline, bytes(screen).decode()[-2000:]
            try:
                screen.extend(await asyncio.to_thread(_read_some, leader))
            except OSError:  # the terminal closed: the bot exited
                assert text in screen, bytes(screen).decode()[-2000:]

    try:
        # Waiting for the fetch first took 20 s (its time-out); the prompt now comes in ~2 s.
        await until(b"papers>", timeout=15)
        await asyncio.wait_for(held.wait(), 30)
        assert b"Loaded the bundled sample corpus (315 papers)" in screen
        os.write(leader, b"/papers kv-cache\r")
        await until(b"why:")
        os.write(leader, b"quit\r")
        await until(b"Bye.")
        assert await asyncio.wait_for(bot.wait(), 30) == 0
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
        os.close(leader)
        await server.close()
    text = bytes(screen).decode(errors="replace")
    assert "Traceback" not in text and " ERROR " not in text, text[-2000:]


def _read_some(fd: int) -> bytes:
    ready, _, _ = select.select([fd], [], [], 0.5)
    return os.read(fd, 4096) if ready else b""


# -- marking papers by their number -------------------------------------------------------------


async def console_with_papers() -> tuple[PaperBot, StoreRunner]:
    store = Store.open(":memory:")
    for n, title in enumerate(
        ["KV cache eviction", "KV cache quantization", "KV cache offloading", "MoE routing"]
    ):
        add_paper(store, f"2611.0000{n}", title, MONDAY_0850 - timedelta(hours=n + 1))
    add_subscriber(store, "console", ["kv cache"], MONDAY_0850 - timedelta(days=2))
    runner = StoreRunner(store)
    return PaperBot(runner, clock=lambda: MONDAY_0850), runner


def numbered(text: str) -> dict[int, str]:
    """The papers a rendered answer numbers: number -> title."""
    found = {}
    for line in text.splitlines():
        head, dot, title = line.partition(". ")
        if dot and head.isdigit():
            found[int(head)] = title
    return found


async def signals(runner: StoreRunner) -> tuple[set[tuple[str, bool]], set[str]]:
    def read(store: Store) -> tuple[set[tuple[str, bool]], set[str]]:
        subscriber = store.subscribers.find("console", "user", "console")
        assert subscriber is not None
        (topic,) = store.subscribers.topics(subscriber.id)
        found = store.signals.of_topics([topic.id]).get(topic.id, [])
        return {(s.paper_id, s.relevant) for s in found}, store.subscribers.muted(subscriber.id)

    return await runner.call(read)


async def test_relevant_and_not_relevant_n_mark_the_nth_paper_of_the_last_look_up() -> None:
    bot, runner = await console_with_papers()
    shown = Shown()
    early = await answer(bot, shown, "/papers relevant 3")
    assert early.startswith("Error: There is no list of papers to pick from yet")
    lookup = await answer(bot, shown, "/papers kv cache")
    papers = numbered(lookup)
    assert len(papers) == 3 and "/papers relevant N" in lookup
    titles = ["KV cache eviction", "KV cache quantization", "KV cache offloading"]
    ids = {title: f"2611.0000{n}" for n, title in enumerate(titles)}
    thanks = await answer(bot, shown, "/papers relevant 3")
    assert f"`kv cache` will bring more papers like “{papers[3]}”" in thanks
    muted = await answer(bot, shown, "not relevant 1")
    assert "won't show you" in muted and "`kv cache` will leave out papers like it" in muted
    for line in ("/papers relevant 4", "/papers not-relevant 0", "/papers relevant", "relevant 99"):
        assert (await answer(bot, shown, line)).startswith("Error: ")
    assert await signals(runner) == (
        {(ids[papers[3]], True), (ids[papers[1]], False)},
        {ids[papers[1]]},
    )
    await runner.close()


async def test_a_look_up_of_a_topic_not_followed_only_mutes() -> None:
    bot, runner = await console_with_papers()
    shown = Shown()
    lookup = await answer(bot, shown, "/papers MoE routing")
    assert numbered(lookup) and "Subscribe with" in lookup
    refused = await answer(bot, shown, "/papers relevant 1")
    assert refused.startswith("Error: Paper 1 was not shown under a topic you follow")
    assert "won't show you" in await answer(bot, shown, "/papers not-relevant 1")
    assert await signals(runner) == (set(), {"2611.00003"})
    await runner.close()


async def test_a_digest_preview_is_numbered_across_topics_and_teaches_each_papers_topic() -> None:
    store = Store.open(":memory:")
    add_paper(store, "2611.00001", "KV cache eviction", MONDAY_0850 - timedelta(hours=3))
    add_paper(store, "2611.00002", "Mixture of experts routing", MONDAY_0850 - timedelta(hours=2))
    add_subscriber(store, "console", ["kv cache", "MoE"], MONDAY_0850 - timedelta(days=2))
    runner = StoreRunner(store)
    bot = PaperBot(runner, clock=lambda: MONDAY_0850)
    shown = Shown()
    preview = await answer(bot, shown, "/papers digest")
    assert numbered(preview) == {1: "KV cache eviction", 2: "Mixture of experts routing"}
    await answer(bot, shown, "/papers relevant 2")

    def topic_signals(store: Store) -> dict[str, set[str]]:
        subscriber = store.subscribers.find("console", "user", "console")
        assert subscriber is not None
        topics = store.subscribers.topics(subscriber.id)
        found = store.signals.of_topics([t.id for t in topics])
        return {t.text: {s.paper_id for s in found.get(t.id, [])} for t in topics}

    assert await runner.call(topic_signals) == {"kv cache": set(), "MoE": {"2611.00002"}}
    await runner.close()


def test_a_preview_names_what_learning_left_out() -> None:
    from bot.models import Digest, DigestSection

    section = DigestSection("kv cache", (), topic_id=3, left_out=("Paged attention", "X" * 500))
    text = render_reply(Reply("Your next digest", digest=Digest(1, "2026-11-23", (section,))))
    assert "== kv cache ==" in text
    assert "Left out: “Paged attention”" in text
    assert "(close to papers you marked not relevant)" in text
    assert max(len(line) for line in text.splitlines()) <= 310


async def test_a_printed_digest_is_the_list_relevant_n_picks_from() -> None:
    bot, runner = await console_with_papers()
    out = io.StringIO()
    adapter = ConsoleAdapter(out)
    digests = DigestRunner(runner, {"console": adapter.destination})
    await digests.tick(MONDAY_0850 + timedelta(minutes=10))
    printed = numbered(out.getvalue())
    assert len(printed) == 3 and "/papers relevant N" in out.getvalue()
    assert "Thanks" in await answer(bot, adapter.shown, "/papers relevant 2")
    (marked,), _ = await signals(runner)
    assert (
        marked[1] is True
        and marked[0]
        == {
            "KV cache eviction": "2611.00000",
            "KV cache quantization": "2611.00001",
            "KV cache offloading": "2611.00002",
        }[printed[2]]
    )
    await runner.close()


async def test_run_lines_keeps_the_last_list_between_lines() -> None:
    bot, runner = await console_with_papers()
    out = io.StringIO()
    await run_lines(bot, ["/papers kv cache", "/papers help", "/papers relevant 1"], out)
    assert "Thanks" in out.getvalue()
    await runner.close()
