"""`paperbot doctor`: what will start, what will not and why, one verdict per line.

Each check returns `Finding`s. `FAIL` means `paperbot run` would refuse to start (or start
without something it was configured for); `warn` means it starts but something is off; `ok`
and `--` (not configured) are informational. Nothing here changes the database. When a
paperbot already runs on the configured port, its /healthz says how each of its chat adapters
is doing: a failed one (say, a refused token) is a `FAIL` with the reason.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from adapters.discord_app import client_id_from_token
from adapters.ops_http import healthz_url
from bot import semantic
from bot.config import WILDCARD_HOSTS, Settings
from bot.semantic import ann
from bot.storage import NotADatabase, summarize, utc_iso

REACH_TIMEOUT_SECONDS = 3.0
# The running bot's /healthz answers within its 2-second store check.
RUNNING_TIMEOUT_SECONDS = 2.5
ADAPTER_LEVELS = {"ok": "ok", "failed": "FAIL"}  # starting and retrying: warn
SIGNING_SECRET = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Finding:
    """One line of the report."""

    level: str  # ok, --, warn, FAIL
    subject: str
    text: str

    def line(self) -> str:
        """The finding as printed."""
        return f"{self.level:<4}  {self.subject:<9} {self.text}"


def _secret(value: object) -> str:
    return value.get_secret_value() if hasattr(value, "get_secret_value") else ""


def check_adapters(settings: Settings) -> list[Finding]:
    """Which chat adapters `run` starts, judged from the tokens' presence and format."""
    found: list[Finding] = []
    bot_token = _secret(settings.slack_bot_token)
    app_token = _secret(settings.slack_app_token)
    signing = _secret(settings.slack_signing_secret)
    if settings.slack_client_id:
        found += check_slack_oauth(settings)
    elif not bot_token:
        found.append(Finding("--", "slack", "will not start: SLACK_BOT_TOKEN is not set"))
    elif not bot_token.startswith("xoxb-"):
        found.append(Finding("FAIL", "slack", "SLACK_BOT_TOKEN is not a bot token (xoxb-...)"))
    elif app_token and not app_token.startswith("xapp-"):
        found.append(Finding("FAIL", "slack", "SLACK_APP_TOKEN is not an app token (xapp-...)"))
    elif app_token:
        found.append(Finding("ok", "slack", "will start in Socket Mode"))
    elif not signing:
        found.append(
            Finding("FAIL", "slack", "HTTP mode needs SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN)")
        )
    else:
        port = f"{settings.http_host}:{settings.http_port}"
        found.append(Finding("ok", "slack", f"will start in HTTP mode on {port}/slack/events"))
        if not SIGNING_SECRET.match(signing):
            found.append(
                Finding("warn", "slack", "SLACK_SIGNING_SECRET is not 32 hex digits as Slack's are")
            )
    discord_token = _secret(settings.discord_token)
    if not discord_token:
        found.append(Finding("--", "discord", "will not start: DISCORD_TOKEN is not set"))
    elif discord_token.count(".") != 2 or client_id_from_token(discord_token) is None:
        found.append(
            Finding(
                "FAIL", "discord", "DISCORD_TOKEN is not a bot token (three dot-separated parts)"
            )
        )
    else:
        app_id = client_id_from_token(discord_token)
        where = f"guild {settings.discord_guild_id}" if settings.discord_guild_id else "globally"
        found.append(
            Finding("ok", "discord", f"will start (application {app_id}; commands sync {where})")
        )
    if not bot_token and not settings.slack_client_id and not discord_token:
        found.append(Finding("ok", "console", "will start: no chat tokens are set"))
    return found


def check_slack_oauth(settings: Settings) -> list[Finding]:
    """OAuth mode (`SLACK_CLIENT_ID`): complete or not, and where workspaces install."""
    from adapters.slack_oauth import INSTALL_PATH, oauth_problem

    problem = oauth_problem(settings)
    if problem:
        return [Finding("FAIL", "slack", problem)]
    where = f"{settings.http_host}:{settings.http_port}"
    found = [
        Finding(
            "ok",
            "slack",
            f"will start in OAuth mode (many workspaces): they install at {where}{INSTALL_PATH}",
        )
    ]
    if settings.slack_bot_token:
        found.append(
            Finding(
                "warn",
                "slack",
                "SLACK_BOT_TOKEN is not used in OAuth mode (each workspace's token comes "
                "from its install): unset it, or unset SLACK_CLIENT_ID for one workspace",
            )
        )
    if not SIGNING_SECRET.match(_secret(settings.slack_signing_secret)):
        found.append(
            Finding("warn", "slack", "SLACK_SIGNING_SECRET is not 32 hex digits as Slack's are")
        )
    return found


def check_database(path: Path) -> list[Finding]:
    """Writable, migrations current, how many papers, and when each source last ingested."""
    if not path.exists():
        parent = next((p for p in [path, *path.parents] if p.exists()), Path("."))
        if not os.access(parent, os.W_OK):
            return [Finding("FAIL", "database", f"cannot create {path}: {parent} is not writable")]
        return [Finding("ok", "database", f"{path} will be created at first start")]
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        return [Finding("FAIL", "database", f"{path} (or its directory) is not writable")]
    try:
        summary = summarize(path)
        pending, papers, ingests = summary.pending_migrations, summary.papers, summary.ingests
    except NotADatabase as exc:
        return [Finding("FAIL", "database", f"{path} is not a paperbot database: {exc}")]
    found = [Finding("ok", "database", f"{path}: {papers} papers")]
    if pending:
        found.append(
            Finding("warn", "database", f"migrations to apply at start: {', '.join(pending)}")
        )
    else:
        found.append(Finding("ok", "database", "migrations are current"))
    for source, status in ingests.items():
        success = utc_iso(status.last_success) if status.last_success else None
        error = status.last_error
        text = f"last successful ingest {success or 'never'}"
        found.append(
            Finding(
                "ok" if success else "warn",
                source,
                text + (f"; last error: {error}" if error else ""),
            )
        )
    return found


def _reach(client: httpx.Client, name: str, url: str, params: dict[str, str]) -> Finding:
    started = time.perf_counter()
    try:
        response = client.get(url, params=params)
    except httpx.HTTPError as exc:
        return Finding(
            "warn", name, f"unreachable ({type(exc).__name__}); papers in the store still work"
        )
    ms = (time.perf_counter() - started) * 1000
    level = "ok" if response.status_code < 400 else "warn"
    return Finding(level, name, f"HTTP {response.status_code} in {ms:.0f} ms from {url}")


def check_sources(
    settings: Settings, transport: httpx.BaseTransport | None = None
) -> list[Finding]:
    """Whether Hugging Face and arXiv answer, with a short timeout and no retries."""
    with httpx.Client(timeout=REACH_TIMEOUT_SECONDS, transport=transport) as client:
        return [
            _reach(client, "hf", f"{settings.hf_api_url}/daily_papers", {"limit": "1"}),
            _reach(
                client,
                "arxiv",
                settings.arxiv_api_url,
                {"search_query": f"cat:{settings.categories[0]}", "max_results": "1"},
            ),
        ]


def check_slack_scopes(
    settings: Settings, transport: httpx.BaseTransport | None = None
) -> list[Finding]:
    """Which delivery promise the Slack token's scopes allow (asks Slack's `auth.test`)."""
    from adapters.slack_app import guarantee, missing_recovery_scopes

    token = _secret(settings.slack_bot_token)
    if not token.startswith("xoxb-") or settings.slack_client_id:
        return []
    url = (settings.slack_api_url or "https://slack.com/api/").rstrip("/") + "/auth.test"
    try:
        with httpx.Client(timeout=REACH_TIMEOUT_SECONDS, transport=transport) as client:
            response = client.post(url, headers={"Authorization": f"Bearer {token}"})
            answer = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return [Finding("warn", "slack", f"could not ask Slack for the token's scopes: {exc}")]
    if not answer.get("ok"):
        error = answer.get("error", f"HTTP {response.status_code}")
        return [Finding("FAIL", "slack", f"Slack refused SLACK_BOT_TOKEN: {error}")]
    missing = missing_recovery_scopes(response.headers.get("x-oauth-scopes", ""))
    return [Finding("warn" if missing else "ok", "slack", f"digests {guarantee(missing)}")]


def check_running(
    settings: Settings, transport: httpx.BaseTransport | None = None
) -> tuple[list[Finding], bool]:
    """What a paperbot running on the configured port says of its adapters; whether one runs."""
    url = healthz_url(settings)
    try:
        with httpx.Client(timeout=RUNNING_TIMEOUT_SECONDS, transport=transport) as client:
            report = client.get(url).json()
        status, adapters = report["status"], report.get("adapters") or {}
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return [Finding("--", "running", f"no paperbot answers at {url}")], False
    found = [Finding("ok" if status == "ok" else "warn", "running", f"{url}: {status}")]
    for name, adapter in adapters.items():
        state, reason = adapter.get("state", "?"), adapter.get("reason")
        level = ADAPTER_LEVELS.get(state, "warn")
        found.append(Finding(level, name, f"running: {state}" + (f": {reason}" if reason else "")))
    return found, True


def check_port(settings: Settings, running: bool = False) -> list[Finding]:
    """Whether the HTTP endpoint's port is free to listen on (or the running bot holds it)."""
    where = f"{settings.http_host}:{settings.http_port}"
    if running:
        return [Finding("ok", "http", f"{where} is served by the running paperbot")]
    slack_http = bool(settings.slack_bot_token or settings.slack_client_id) and not (
        settings.slack_app_token
    )
    try:
        with socket.create_server((settings.http_host, settings.http_port)):
            pass
    except OSError as exc:
        level = "FAIL" if slack_http else "warn"
        return [Finding(level, "http", f"cannot listen on {where}: {exc.strerror}")]
    return [Finding("ok", "http", f"/healthz, /metrics and /feeds/ will be served on {where}")]


def _loopback(host: str | None) -> bool:
    return host is not None and (host in ("localhost", "::1") or host.startswith("127."))


def check_feeds(settings: Settings) -> list[Finding]:
    """Whether feed readers on other machines can reach /feeds/: the address the endpoint
    binds to (PAPERBOT_HTTP_HOST) and the one chat shows (PAPERBOT_PUBLIC_URL)."""
    bound = f"{settings.http_host}:{settings.http_port}"
    public = settings.public_url
    public_host = urlsplit(public).hostname if public else None
    if _loopback(settings.http_host):
        if public and not _loopback(public_host):
            return [
                Finding(
                    "ok",
                    "feeds",
                    f"readers use {public}/feeds/; bound to {bound}, so only this machine "
                    "connects: a reverse proxy here must forward /feeds/ to it",
                )
            ]
        return [
            Finding(
                "--",
                "feeds",
                f"only this machine can read /feeds/ (bound to {bound}): for readers elsewhere "
                "set PAPERBOT_HTTP_HOST=0.0.0.0 or put a reverse proxy in front, and "
                "PAPERBOT_PUBLIC_URL to the address they use",
            )
        ]
    if public and _loopback(public_host):
        return [
            Finding(
                "warn",
                "feeds",
                f"reachable from other machines (bound to {bound}), but PAPERBOT_PUBLIC_URL "
                f"({public}) is this machine's own: readers elsewhere cannot use it",
            )
        ]
    if public:
        return [
            Finding("ok", "feeds", f"reachable from other machines at {public}/feeds/ ({bound})")
        ]
    if settings.http_host in WILDCARD_HOSTS:
        return [
            Finding(
                "warn",
                "feeds",
                f"reachable from other machines on port {settings.http_port}, but /papers feed "
                f"shows {settings.local_url}/feeds/...: set PAPERBOT_PUBLIC_URL to the address "
                "readers use",
            )
        ]
    return [Finding("ok", "feeds", f"reachable from other machines at {settings.local_url}/feeds/")]


def check_semantic(settings: Settings) -> list[Finding]:
    """Whether look-ups and digests will also match by meaning (the optional extra)."""
    if settings.semantic == "off":
        return [Finding("--", "semantic", "off (PAPERBOT_SEMANTIC=off): words only")]
    why = semantic.missing()
    if why is not None:
        return [Finding("--", "semantic", f"words only; {why}")]
    found = [Finding("ok", "semantic", f"matching by meaning too ({semantic.MODEL_NAME}, offline)")]
    return found + check_vector_index(Path(settings.db_path))


def check_vector_index(path: Path) -> list[Finding]:
    """How the papers' vectors are searched: exactly, or through the index (`bot.semantic.ann`)."""
    try:
        summary = summarize(path) if path.exists() else None
    except NotADatabase:
        return []
    count, seq = summary.vectors.get(semantic.MODEL_NAME, (0, 0)) if summary else (0, 0)
    reindex = "`paperbot reindex --semantic`"
    if count == 0:
        why = f"no paper embedded yet: the bot embeds new ones, {reindex} a whole store"
        return [Finding("--", "vectors", why)]
    if count < ann.ANN_MIN:
        why = f"{count:,} papers embedded, searched exactly (an index pays from {ann.ANN_MIN:,})"
        return [Finding("ok", "vectors", why)]
    newest = ann.newest(ann.directory(path), semantic.MODEL_NAME)
    if newest is None or not ann.available():
        why = f"{count:,} papers embedded and no vector index: {reindex} builds it"
        return [Finding("warn", "vectors", why)]
    behind = "" if newest[1] >= seq else f"; newer vectors are searched exactly until {reindex}"
    return [Finding("ok", "vectors", f"{count:,} papers embedded; index {newest[0].name}{behind}")]


def diagnose(settings: Settings, transport: httpx.BaseTransport | None = None) -> list[Finding]:
    """Every check, in the order they are printed."""
    running, is_running = check_running(settings, transport)
    return [
        *check_adapters(settings),
        *check_slack_scopes(settings, transport),
        *running,
        *check_database(Path(settings.db_path)),
        *check_semantic(settings),
        *check_port(settings, is_running),
        *check_feeds(settings),
        *check_sources(settings, transport),
    ]
