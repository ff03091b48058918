"""Operating paperbot: health, metrics, logs, backups and `paperbot doctor`."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from prometheus_client import REGISTRY

from adapters.cli import cli
from adapters.ops_http import add_ops_routes, healthz_url
from bot.commands import Command
from bot.config import Settings
from bot.health import Adapters, Health, check_health
from bot.ingest import run_ingest
from bot.logs import JsonFormatter, RedactSecrets
from bot.models import Caller, DigestSettings
from bot.runtime import StoreRunner
from bot.service import PaperBot
from bot.storage import Store
from bot.storage.backup import BackupError, backup
from tests.conftest import DISCORD_TEST_TOKEN, FIXTURES, SEED, SLACK_TEST_TOKEN
from tests.fakes.core import FakeDestination, add_paper, add_subscriber

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def runner() -> Iterator[StoreRunner]:  # type: ignore[misc]
    r = StoreRunner(Store.open(":memory:"))
    yield r
    await r.close()


# -- health ---------------------------------------------------------------------------------


async def test_health_is_ok_then_degraded_when_ingest_goes_stale(runner: StoreRunner) -> None:
    await runner.call(lambda s: s.sources.record_ingest("hf", None, NOW))
    await runner.call(lambda s: s.sources.record_ingest("arxiv", None, NOW))
    fresh = await check_health(runner, True, NOW + timedelta(minutes=5), NOW, 60)
    assert fresh.status == "ok" and fresh.checks["store"] == "ok"
    assert fresh.checks["ingest"]["hf"]["last_success_age_seconds"] == 300.0
    await runner.call(lambda s: s.sources.record_ingest("hf", "HTTP 503", NOW + timedelta(hours=1)))
    later = await check_health(runner, True, NOW + timedelta(hours=4), NOW, 60)
    assert later.status == "degraded" and not later.failing
    assert later.checks["ingest"]["hf"] == {
        "last_success_age_seconds": 14400.0,
        "last_error": "HTTP 503",
        "stale": True,
    }


async def test_a_new_process_is_not_stale_before_its_first_ingest(runner: StoreRunner) -> None:
    health = await check_health(runner, True, NOW + timedelta(minutes=10), NOW, 60)
    assert health.status == "ok"
    assert health.checks["ingest"]["arxiv"]["last_success_age_seconds"] is None


async def test_a_stopped_scheduler_or_a_dead_store_is_failing() -> None:
    runner = StoreRunner(Store.open(":memory:"))
    assert (await check_health(runner, False, NOW, NOW, 60)).failing
    await runner.close()
    dead = await check_health(runner, True, NOW, NOW, 60)
    assert dead.failing and dead.checks["store"].startswith("unreachable")


async def test_an_adapter_that_is_not_ok_degrades_health_with_its_reason(
    runner: StoreRunner,
) -> None:
    adapters = Adapters()
    adapters.set("slack", "ok")
    adapters.set("discord", "starting")
    starting = await check_health(runner, True, NOW, NOW, 60, adapters=adapters)
    assert starting.status == "degraded" and starting.checks["reasons"] == ["discord: starting"]
    adapters.set("discord", "failed", "Discord refused DISCORD_TOKEN (401): reset the token")
    failed = await check_health(runner, True, NOW, NOW, 60, adapters=adapters)
    assert failed.status == "degraded" and not failed.failing  # a restart would not fix it
    assert failed.checks["adapters"] == {
        "slack": {"state": "ok"},
        "discord": {
            "state": "failed",
            "reason": "Discord refused DISCORD_TOKEN (401): reset the token",
        },
    }
    assert failed.checks["reasons"] == [
        "discord: failed: Discord refused DISCORD_TOKEN (401): reset the token"
    ]
    state = "paperbot_adapter_state"
    assert metric(state, adapter="discord", paperbot_adapter_state="failed") == 1.0
    assert metric(state, adapter="discord", paperbot_adapter_state="starting") == 0.0
    assert metric(state, adapter="slack", paperbot_adapter_state="ok") == 1.0
    adapters.set("discord", "ok", "ignored: ok has no reason")
    ok = await check_health(runner, True, NOW, NOW, 60, adapters=adapters)
    assert ok.status == "ok" and "reasons" not in ok.checks
    assert ok.checks["adapters"]["discord"] == {"state": "ok"}


async def test_healthz_and_metrics_over_http(runner: StoreRunner) -> None:
    verdicts = iter([Health("ok", {"store": "ok"}), Health("failing", {"store": "gone"})])

    async def health() -> Health:
        return next(verdicts)

    app = web.Application()
    add_ops_routes(app, health)
    bot = PaperBot(runner, clock=lambda: NOW)
    await bot.run(Caller("slack", "U1"), Command("help"))
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        ok = await client.get("/healthz")
        assert ok.status == 200 and (await ok.json()) == {"status": "ok", "store": "ok"}
        failing = await client.get("/healthz")
        assert failing.status == 503
        scraped = await client.get("/metrics")
        assert scraped.status == 200
        assert scraped.headers["Content-Type"].startswith("text/plain")
        text = await scraped.text()
    assert 'paperbot_command_seconds_count{action="help",platform="slack"}' in text
    for name in ("paperbot_papers_ingested", "paperbot_digests_sent", "paperbot_source_errors"):
        assert f"# TYPE {name}_total counter" in text
    assert "process_resident_memory_bytes" in text


# -- metrics move with the work ---------------------------------------------------------------


async def test_ingest_counts_new_papers_and_source_errors(
    runner: StoreRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    daily = (FIXTURES / "hf_daily_papers_latest_limit30_2026-06-12.json").read_text()

    def handler(request: httpx.Request) -> httpx.Response:
        if "daily_papers" in request.url.path:
            p = int(request.url.params.get("p", "0"))
            return httpx.Response(200, text=daily if p == 0 else "[]")
        return httpx.Response(404)  # arXiv: a 4xx is not retried, so this fails at once

    monkeypatch.setenv("PAPERBOT_ARXIV_API_URL", "http://127.0.0.1:9/api/query")
    before_new, before_err = (
        metric("paperbot_papers_ingested_total", source="hf"),
        metric("paperbot_source_errors_total", source="arxiv"),
    )
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        report = await run_ingest(
            Settings(), runner, NOW, since=NOW.date() - timedelta(1), client=client
        )
    assert report.new > 0 and report.failed == ["arxiv"]
    assert metric("paperbot_papers_ingested_total", source="hf") - before_new == report.new
    assert metric("paperbot_source_errors_total", source="arxiv") - before_err == 1
    status = await runner.call(lambda s: s.sources.ingest_status())
    assert status["hf"].last_success == NOW and status["arxiv"].last_error


async def test_digests_sent_and_failed_are_counted(runner: StoreRunner) -> None:
    from bot.digests import DigestRunner
    from tests.fakes.core import FakeClock

    clock = FakeClock(NOW)
    destination = FakeDestination("console", clock)
    settings = DigestSettings(digest_time="12:30")
    a = await runner.call(lambda s: add_subscriber(s, "a", ["MoE"], NOW, settings))
    b = await runner.call(lambda s: add_subscriber(s, "b", ["MoE"], NOW, settings))
    await runner.call(
        lambda s: add_paper(s, "2611.00001", "Sparse MoE routing", NOW + timedelta(minutes=5))
    )
    destination.make_gone(b.id)
    sent, gone = (
        metric("paperbot_digests_sent_total", platform="console"),
        metric("paperbot_digests_failed_total", platform="console", kind="gone"),
    )
    clock.now = NOW + timedelta(minutes=31)
    await DigestRunner(runner, {"console": destination}, clock).tick()
    assert len(destination.to(a.id)) == 1
    assert metric("paperbot_digests_sent_total", platform="console") - sent == 1
    assert metric("paperbot_digests_failed_total", platform="console", kind="gone") - gone == 1


# -- logs ---------------------------------------------------------------------------------------


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("token xoxb-1234567890-secret in an exception")
        except RuntimeError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("paperbot", logging.ERROR, __file__, 1, message, args, exc_info)


def test_json_logs_are_one_object_per_line_with_the_traceback_inside() -> None:
    line = JsonFormatter().format(record("two\nlines %s", "here", exc=True))
    assert "\n" not in line
    event = json.loads(line)
    assert event["message"] == "two\nlines here" and event["level"] == "ERROR"
    assert "RuntimeError" in event["exception"]


def test_configured_secrets_are_redacted_from_messages_and_tracebacks() -> None:
    redact = RedactSecrets(["xoxb-1234567890-secret", "short"])
    rec = record("calling with %s", "xoxb-1234567890-secret", exc=True)
    redact.filter(rec)
    text = logging.Formatter().format(rec)
    # The message, the traceback's source line and the exception's text.
    assert "xoxb-1234567890-secret" not in text and text.count("[redacted]") == 3
    assert "short" not in redact.secrets  # too short to redact safely


def test_a_private_feeds_secret_is_redacted_from_log_lines() -> None:
    secret = "Ab3_-" + "x" * 38
    rec = record(
        "respond body: {'text': 'Your feed:\\n`https://p.example.org/feeds/digests/%s.atom`'}",
        secret,
    )
    RedactSecrets([]).filter(rec)
    text = logging.Formatter().format(rec)
    assert secret not in text and "/feeds/digests/[redacted].atom" in text


# -- backup ---------------------------------------------------------------------------------------


def test_backup_while_the_bot_writes_and_restore(tmp_path: Path) -> None:
    db = tmp_path / "paperbot.db"
    store = Store.open(db)
    from bot.importer import import_files

    import_files(store, [SEED], NOW)
    stop = threading.Event()
    written = []

    def writer() -> None:
        # Another connection, like the running bot, keeps writing during the backup.
        own = Store.open(db)
        i = 0
        while not stop.is_set():
            add_paper(own, f"2612.{i:05d}", f"Paper being written {i}", NOW)
            written.append(i)
            i += 1
        own.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        report = backup(db, tmp_path, NOW)
    finally:
        stop.set()
        thread.join()
    assert report.path == tmp_path / "paperbot-20261120T120000Z.db"
    assert 315 <= report.papers <= 315 + len(written)
    restored = Store.open(report.path)  # the documented restore: the copy is a database
    assert restored.papers.count() == report.papers
    assert sqlite3.connect(report.path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with pytest.raises(BackupError, match="exists"):
        backup(db, report.path, NOW)
    with pytest.raises(BackupError, match="no database"):
        backup(tmp_path / "missing.db", tmp_path / "x.db", NOW)
    store.close()
    restored.close()


def test_backup_command(tmp_path: Path) -> None:
    db = tmp_path / "paperbot.db"
    Store.open(db).close()
    result = CliRunner().invoke(cli, ["--db", str(db), "backup", str(tmp_path / "b.db")])
    assert result.exit_code == 0, result.output
    assert "Backed up 0 papers and 0 subscribers" in result.output
    again = CliRunner().invoke(cli, ["--db", str(db), "backup", str(tmp_path / "b.db")])
    assert again.exit_code == 1 and "--force" in again.output


# -- doctor ---------------------------------------------------------------------------------------


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def source_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def doctor(env: dict[str, str], tmp_path: Path, base: str) -> tuple[int, str]:
    full = {
        "PAPERBOT_DB": str(tmp_path / "paperbot.db"),
        "PAPERBOT_HF_API_URL": f"{base}/api",
        "PAPERBOT_ARXIV_API_URL": "http://127.0.0.1:9/api/query",  # nothing listens there
        "PAPERBOT_HTTP_PORT": "0",
        "PAPERBOT_PUBLIC_URL": "",
        "SLACK_BOT_TOKEN": "",
        "SLACK_APP_TOKEN": "",
        "SLACK_SIGNING_SECRET": "",
        "SLACK_API_URL": "http://127.0.0.1:9/api/",  # nothing listens there
        "SLACK_CLIENT_ID": "",
        "SLACK_CLIENT_SECRET": "",
        "DISCORD_TOKEN": "",
        **env,
    }
    result = CliRunner().invoke(cli, ["doctor"], env=full)
    return result.exit_code, result.output


def test_doctor_with_no_tokens_starts_the_console(tmp_path: Path, source_server: str) -> None:
    code, out = doctor({}, tmp_path, source_server)
    assert code == 0, out
    assert "ok    console   will start" in out
    assert "--    slack     will not start: SLACK_BOT_TOKEN is not set" in out
    assert "will be created at first start" in out
    assert "ok    hf        HTTP 200" in out
    assert "warn  arxiv     unreachable" in out
    assert out.strip().endswith("paperbot run can start.")


def test_doctor_reads_an_existing_database(tmp_path: Path, source_server: str) -> None:
    store = Store.open(tmp_path / "paperbot.db")
    add_paper(store, "2611.00001", "A paper", NOW)
    store.sources.record_ingest("hf", None, NOW)
    store.close()
    code, out = doctor({}, tmp_path, source_server)
    assert code == 0, out
    assert "1 papers" in out and "migrations are current" in out
    assert "last successful ingest 2026-11-20" in out


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "FAIL  slack     SLACK_BOT_TOKEN is not a bot"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "FAIL  slack     HTTP mode needs SLACK_SIGNING_SECRET"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-2"},
            "FAIL  slack     SLACK_APP_TOKEN is not an app token",
        ),
        ({"DISCORD_TOKEN": "not-a-token"}, "FAIL  discord   DISCORD_TOKEN is not a bot token"),
    ],
)
def test_doctor_fails_on_tokens_that_block_a_start(
    tmp_path: Path, source_server: str, env: dict[str, str], expected: str
) -> None:
    code, out = doctor(env, tmp_path, source_server)
    assert code == 1 and expected in out
    assert "would not start" in out
    for value in env.values():
        assert value not in out  # never echoes a token back


def test_doctor_approves_well_formed_tokens(tmp_path: Path, source_server: str) -> None:
    env = {
        "SLACK_BOT_TOKEN": SLACK_TEST_TOKEN,
        "SLACK_APP_TOKEN": "xapp-1-A1-2-abc",
        "DISCORD_TOKEN": DISCORD_TEST_TOKEN,
    }
    code, out = doctor(env, tmp_path, source_server)
    assert code == 0, out
    assert "ok    slack     will start in Socket Mode" in out
    assert "ok    discord   will start (application 111111111111111111" in out
    assert "console" not in out


def test_doctor_fails_when_slack_http_cannot_get_its_port(
    tmp_path: Path, source_server: str
) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        env = {
            "SLACK_BOT_TOKEN": "xoxb-1",
            "SLACK_SIGNING_SECRET": "0" * 32,
            "PAPERBOT_HTTP_PORT": port,
        }
        code, out = doctor(env, tmp_path, source_server)
    assert code == 1 and f"FAIL  http      cannot listen on 127.0.0.1:{port}" in out


OAUTH = {"SLACK_CLIENT_ID": "1111.2222", "SLACK_CLIENT_SECRET": "s" * 32}


@pytest.mark.parametrize(
    ("env", "code", "line"),
    [
        (
            {**OAUTH, "SLACK_SIGNING_SECRET": "0" * 32},
            0,
            "ok    slack     will start in OAuth mode (many workspaces): they install at "
            "127.0.0.1:0/slack/install",
        ),
        (
            {"SLACK_CLIENT_ID": "1111.2222", "SLACK_SIGNING_SECRET": "0" * 32},
            1,
            "FAIL  slack     Slack OAuth mode needs SLACK_CLIENT_SECRET with SLACK_CLIENT_ID.",
        ),
        (OAUTH, 1, "FAIL  slack     Slack OAuth mode needs SLACK_SIGNING_SECRET"),
        (
            {**OAUTH, "SLACK_SIGNING_SECRET": "0" * 32, "SLACK_APP_TOKEN": "xapp-1"},
            1,
            "FAIL  slack     Slack OAuth mode serves installs and events over HTTP",
        ),
        (
            {**OAUTH, "SLACK_SIGNING_SECRET": "0" * 32, "SLACK_BOT_TOKEN": "xoxb-1"},
            0,
            "warn  slack     SLACK_BOT_TOKEN is not used in OAuth mode",
        ),
    ],
)
def test_doctor_says_whether_slack_oauth_mode_is_complete(
    tmp_path: Path, source_server: str, env: dict[str, str], code: int, line: str
) -> None:
    exit_code, out = doctor(env, tmp_path, source_server)
    assert exit_code == code and line in out, out
    assert "console" not in out and "s" * 32 not in out


class _Healthz(BaseHTTPRequestHandler):
    report: ClassVar[dict[str, object]] = {}

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(self.report).encode())

    def log_message(self, *args: object) -> None:
        pass


def test_doctor_reports_a_running_bots_adapters(tmp_path: Path, source_server: str) -> None:
    refused = "Discord refused DISCORD_TOKEN (401 Unauthorized): reset the bot token"
    _Healthz.report = {
        "status": "degraded",
        "adapters": {"slack": {"state": "ok"}, "discord": {"state": "failed", "reason": refused}},
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    env = {"PAPERBOT_HTTP_PORT": str(port), "SLACK_BOT_TOKEN": "xoxb-1"}
    try:
        code, out = doctor({**env, "SLACK_SIGNING_SECRET": "0" * 32}, tmp_path, source_server)
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1, out
    assert f"warn  running   http://127.0.0.1:{port}/healthz: degraded" in out
    assert "ok    slack     running: ok" in out
    assert f"FAIL  discord   running: failed: {refused}" in out
    # The port is the running bot's, not a conflict (Slack HTTP mode would FAIL on a taken one).
    assert f"ok    http      127.0.0.1:{port} is served by the running paperbot" in out


def test_doctor_without_a_running_bot_says_so(tmp_path: Path, source_server: str) -> None:
    code, out = doctor({}, tmp_path, source_server)
    assert code == 0 and "--    running   no paperbot answers at http://127.0.0.1:0/healthz" in out


def endpoint_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    """Settings with exactly these HTTP endpoint variables (none from the environment or .env)."""
    for name in ("PAPERBOT_HTTP_HOST", "PAPERBOT_HTTP_PORT", "PAPERBOT_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("env", "base"),
    [
        ({}, "http://127.0.0.1:3000"),
        ({"PAPERBOT_HTTP_HOST": "0.0.0.0", "PAPERBOT_HTTP_PORT": "8080"}, "http://127.0.0.1:8080"),
        ({"PAPERBOT_HTTP_HOST": "::1"}, "http://[::1]:3000"),
        ({"PAPERBOT_HTTP_HOST": "192.0.2.7"}, "http://192.0.2.7:3000"),
        (
            {"PAPERBOT_PUBLIC_URL": "https://papers.example.org/pb/"},
            "https://papers.example.org/pb",
        ),
    ],
)
def test_the_feeds_base_address_is_the_public_url_or_the_endpoints_own(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], base: str
) -> None:
    settings = endpoint_settings(monkeypatch, env)
    assert settings.public_base_url == base
    assert healthz_url(settings) == f"{settings.local_url}/healthz"


@pytest.mark.parametrize("url", ["papers.example.org", "ftp://x", "https://", "https://a b"])
def test_a_public_url_that_is_no_http_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("PAPERBOT_PUBLIC_URL", url)
    with pytest.raises(ValidationError, match="PAPERBOT_PUBLIC_URL"):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {},
            "--    feeds     only this machine can read /feeds/ (bound to 127.0.0.1:3000): for "
            "readers elsewhere set PAPERBOT_HTTP_HOST=0.0.0.0",
        ),
        (
            {"PAPERBOT_HTTP_HOST": "localhost", "PAPERBOT_PUBLIC_URL": "https://p.example.org"},
            "ok    feeds     readers use https://p.example.org/feeds/; bound to localhost:3000, so "
            "only this machine connects: a reverse proxy here must forward /feeds/ to it",
        ),
        (
            {"PAPERBOT_HTTP_HOST": "0.0.0.0"},
            "warn  feeds     reachable from other machines on port 3000, but /papers feed shows "
            "http://127.0.0.1:3000/feeds/...: set PAPERBOT_PUBLIC_URL",
        ),
        (
            {"PAPERBOT_HTTP_HOST": "0.0.0.0", "PAPERBOT_PUBLIC_URL": "https://p.example.org"},
            "ok    feeds     reachable from other machines at https://p.example.org/feeds/ "
            "(0.0.0.0:3000)",
        ),
        (
            {"PAPERBOT_HTTP_HOST": "::", "PAPERBOT_PUBLIC_URL": "http://127.0.0.1:3000"},
            "warn  feeds     reachable from other machines (bound to :::3000), but "
            "PAPERBOT_PUBLIC_URL (http://127.0.0.1:3000) is this machine's own",
        ),
        (
            {"PAPERBOT_HTTP_HOST": "192.0.2.7"},
            "ok    feeds     reachable from other machines at http://192.0.2.7:3000/feeds/",
        ),
    ],
)
def test_doctor_says_whether_feed_readers_elsewhere_can_reach_the_feeds(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], line: str
) -> None:
    from adapters.doctor import check_feeds

    (finding,) = check_feeds(endpoint_settings(monkeypatch, env))
    assert finding.line().startswith(line), finding.line()


def test_doctor_prints_the_feeds_finding(tmp_path: Path, source_server: str) -> None:
    code, out = doctor({"PAPERBOT_HTTP_HOST": "0.0.0.0"}, tmp_path, source_server)
    assert code == 0, out
    assert "ok    http      /healthz, /metrics and /feeds/ will be served on 0.0.0.0:0" in out
    assert "warn  feeds     reachable from other machines on port 0" in out
