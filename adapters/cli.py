"""The `paperbot` command: one click group, the composition root of the whole bot.

It lives here, above both `bot/` and `adapters/`, because the core must never import an adapter.
The group is composed at the end of this module, each command registered explicitly from the
module that defines it: the core's (`bot.cli`: import, search, match, ingest, reindex, backup)
and this module's (run, console, doctor, health, discord-invite), which wire the store, the
scheduler and the chat adapters.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import httpx
from aiohttp import web

from adapters.base import Adapter, Misconfigured
from adapters.console import USER, ConsoleAdapter, console_caller, run_interactive, run_lines
from adapters.feeds_http import add_feed_routes
from adapters.ops_http import add_ops_routes, healthz_url, serve
from bot import cli as core
from bot import logs
from bot.cli import load_semantic
from bot.config import Settings, load_settings
from bot.digests import DigestRunner
from bot.health import Adapters, Health, check_health
from bot.importer import load_sample_corpus
from bot.ingest import run_ingest
from bot.models import Paper
from bot.runtime import StoreRunner
from bot.scheduler import build_scheduler, scheduler_alive
from bot.service import PaperBot
from bot.sources.hf import HuggingFaceSource
from bot.startup import settle_gc
from bot.storage import Store

log = logging.getLogger("paperbot")


def _quiet_console_logs() -> None:
    # In a terminal session per-command log lines would interleave with the answers.
    if logging.getLogger().level <= logging.INFO:
        for name in ("bot.service", "apscheduler"):
            logging.getLogger(name).setLevel(logging.WARNING)


@click.group()
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite database file (default: $PAPERBOT_DB or data/paperbot.db).",
)
@click.pass_context
def cli(ctx: click.Context, db_path: Path | None) -> None:
    """paperbot: a research-paper digest bot for Slack, Discord and the terminal."""
    overrides: dict[str, Any] = {"db_path": db_path} if db_path else {}
    settings = load_settings(**overrides)
    logs.configure(settings.log_level, settings.log_format, settings.secret_values())
    ctx.obj = settings


async def _load_sample_if_empty(runner: StoreRunner) -> str | None:
    """Fill an empty store with the bundled sample corpus; returns what to tell the user."""

    def load(store: Store) -> str | None:
        if store.papers.count():
            return None
        report = load_sample_corpus(store, datetime.now(UTC))
        return f"Loaded the bundled sample corpus ({report.stats.new} papers)."

    return await runner.call(load)


@click.command("console")
@click.option(
    "--user",
    "user",
    metavar="NAME",
    default=USER,
    show_default=True,
    help="Who types (console:NAME).",
)
@click.pass_obj
def console_command(settings: Settings, user: str) -> None:
    """Answer `/papers ...` lines from standard input as the console user NAME, then exit."""

    _quiet_console_logs()

    async def main() -> None:
        runner = StoreRunner(Store.open(settings.db_path))
        try:
            message = await _load_sample_if_empty(runner)
            if message:
                click.echo(message + " (The store was empty.)", err=True)
            lines = sys.stdin.read().splitlines()
            bot = PaperBot(
                runner, semantic=load_semantic(settings), public_url=settings.public_base_url
            )
            await run_lines(bot, lines, sys.stdout, console_caller(user))
        finally:
            await runner.close()

    asyncio.run(main())


@click.command("run")
@click.pass_obj
def run_command(settings: Settings) -> None:
    """Start the scheduler, ingestion and every adapter whose credentials are set."""
    _quiet_console_logs()
    asyncio.run(_run(settings))


async def _first_start(runner: StoreRunner) -> None:
    """On an empty store load the bundled sample at once; the sources are fetched meanwhile.

    The scheduler's first ingest starts right after this, in the background, so the prompt (or
    a look-up in Slack) never waits for the network; offline, it fails with one log line.
    """
    message = await _load_sample_if_empty(runner)
    if message:
        click.echo(f"{message} Fetching recent papers in the background.")


FALLBACK_SECONDS = 4.0


async def _run(settings: Settings) -> None:
    started_at = datetime.now(UTC)
    # From the first moment: a stop during start-up is as graceful as one after it. (At the
    # console prompt Ctrl-C is a key the prompt reads; while a command runs, it is this signal.)
    stop_signal = _StopSignal()
    runner = StoreRunner(Store.open(settings.db_path))
    semantic = load_semantic(settings)
    client = httpx.AsyncClient(timeout=settings.http_timeout_seconds)
    hf = HuggingFaceSource(client, settings.hf_api_url, timeout=FALLBACK_SECONDS)

    async def fallback(query: str, limit: int) -> list[Paper]:
        return await asyncio.wait_for(hf.search(query, limit), FALLBACK_SECONDS)

    bot = PaperBot(
        runner, fallback=fallback, semantic=semantic, public_url=settings.public_base_url
    )
    registry = Adapters()
    stoppers: list[Callable[[], Awaitable[Any]]] = []
    scheduler = None
    digests: DigestRunner | None = None
    try:
        try:
            adapters = _chat_adapters(settings, bot, registry)
        except Misconfigured as exc:
            raise click.UsageError(str(exc)) from exc
        chat = bool(adapters)
        if not chat:
            click.echo("No chat tokens are set: starting the console adapter.")
            console = ConsoleAdapter()
            adapters = [console]
        web_app = web.Application()
        # Adapters that take requests over HTTP (Slack's HTTP mode) share the ops server.
        served = [adapter.platform.capitalize() for adapter in adapters if adapter.mount(web_app)]
        for adapter in adapters:
            stoppers.append(adapter.stop)
            started = await adapter.start()
            if started:
                click.echo(started)
        digests = DigestRunner(
            runner, {a.platform: a.destination for a in adapters}, semantic=semantic
        )

        async def ingest() -> None:
            await run_ingest(settings, runner, datetime.now(UTC), semantic=semantic)

        scheduler = build_scheduler(digests.tick, ingest, settings.ingest_interval_minutes)

        async def health() -> Health:
            assert scheduler is not None
            return await check_health(
                runner,
                scheduler_alive(scheduler),
                datetime.now(UTC),
                started_at,
                settings.ingest_interval_minutes,
                adapters=registry,
            )

        add_ops_routes(web_app, health)
        add_feed_routes(web_app, bot)
        try:
            stoppers.append((await serve(web_app, settings.http_host, settings.http_port)).cleanup)
            where = f"http://{settings.http_host}:{settings.http_port}"
            also = "".join(f" and {name}" for name in served)
            click.echo(f"Serving {where}/healthz, /metrics and /feeds/{also}")
        except OSError as exc:
            if served:
                raise click.ClickException(
                    f"{served[0]} HTTP mode cannot listen on {settings.http_host}:"
                    f"{settings.http_port}: {exc.strerror}. Set PAPERBOT_HTTP_PORT."
                ) from exc
            log.warning(
                "no /healthz, /metrics or /feeds/: port %d: %s", settings.http_port, exc.strerror
            )
        await _first_start(runner)
        settle_gc()
        scheduler.start()
        if chat or not sys.stdin.isatty():
            if not chat:
                click.echo("No terminal either: running headless (ingest, /healthz, /metrics).")
            # For the container's log: the start and the stop of a process nobody watches.
            log.info("paperbot is running: %s", ", ".join(sorted(a.platform for a in adapters)))
            await stop_signal.wait()
            log.info("paperbot is stopping")
        else:
            await run_interactive(bot, shown=console.shown)
    except asyncio.CancelledError:
        if not stop_signal.requested.is_set():
            raise
        stop_signal.stopped_early()
    finally:
        # Sends in flight finish and are recorded before anything else stops.
        if digests is not None:
            await digests.close()
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        for stop in reversed(stoppers):
            await stop()
        await client.aclose()
        await runner.close()


class _StopSignal:
    """SIGTERM and SIGINT (Ctrl-C) stop the bot gracefully whenever they come: during start-up
    or a console session they cancel it, while headless they end `wait`."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self._main = asyncio.current_task()
        self._waiting = False
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._signal)

    def _signal(self) -> None:
        if self.requested.is_set():
            return
        self.requested.set()
        if not self._waiting and self._main is not None:
            self._main.cancel()

    async def wait(self) -> None:
        """Wait until a stop is asked for (a container stop, Ctrl-C)."""
        self._waiting = True
        await self.requested.wait()
        click.echo("Stopping.")

    def stopped_early(self) -> None:
        """The stop came during start-up and cancelled it: carry on with the clean-up."""
        if self._main is not None:
            self._main.uncancel()
        click.echo("Stopping.")


def _chat_adapters(settings: Settings, bot: PaperBot, registry: Adapters) -> list[Adapter]:
    """The chat adapters whose credentials are set, built but not started.

    Each platform's module (and library: bolt, discord.py) is imported only when it is used.
    """
    found: list[Adapter] = []
    if settings.slack_bot_token or settings.slack_client_id:
        from adapters.slack_app import slack_adapter

        found.append(slack_adapter(settings, bot, registry))
    if settings.discord_token:
        from adapters.discord_app import discord_adapter

        found.append(discord_adapter(settings, bot, registry))
    return found


@click.command("doctor")
@click.pass_obj
def doctor_command(settings: Settings) -> None:
    """Check the configuration, database, port and sources; exit 1 if something blocks a start."""
    from adapters.doctor import diagnose

    findings = diagnose(settings)
    for finding in findings:
        click.echo(finding.line())
    if any(f.level == "FAIL" for f in findings):
        click.echo("paperbot run would not start as configured (see FAIL above).")
        raise SystemExit(1)
    click.echo("paperbot run can start.")


@click.command("health")
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for an answer.")
@click.pass_obj
def health_command(settings: Settings, timeout: float) -> None:
    """Ask the running bot's /healthz; exit 1 unless it answers healthy (for HEALTHCHECK)."""
    url = healthz_url(settings)
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        click.echo(f"{url}: no answer ({type(exc).__name__})", err=True)
        raise SystemExit(1) from exc
    click.echo(response.text)
    if response.status_code != 200:
        raise SystemExit(1)


@click.command("discord-invite")
@click.option("--client-id", type=int, help="Application id (default: read from DISCORD_TOKEN).")
@click.pass_obj
def discord_invite_command(settings: Settings, client_id: int | None) -> None:
    """Print the URL that adds the bot to a Discord server with exactly the permissions it needs."""
    from adapters.discord_app import client_id_from_token, invite_url

    token = settings.discord_token.get_secret_value() if settings.discord_token else ""
    client_id = client_id or client_id_from_token(token)
    if client_id is None:
        raise click.UsageError("Set DISCORD_TOKEN or pass --client-id (the application id).")
    click.echo(invite_url(client_id))


cli.add_command(core.import_command)
cli.add_command(core.search_command)
cli.add_command(core.match_command)
cli.add_command(core.feedback_command)
cli.add_command(core.ingest_command)
cli.add_command(core.reindex_command)
cli.add_command(core.backup_command)
cli.add_command(run_command)
cli.add_command(console_command)
cli.add_command(doctor_command)
cli.add_command(health_command)
cli.add_command(discord_invite_command)


def main() -> None:
    """Entry point of the `paperbot` console script (and of `python -m adapters`)."""
    cli(prog_name="paperbot")
