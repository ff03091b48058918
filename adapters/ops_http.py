"""The operations endpoint: `/healthz` (JSON; 503 when failing) and `/metrics` (Prometheus).

It shares one aiohttp server and port with Slack's HTTP mode when that runs, so a deployment
opens a single port.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from bot.config import Settings
from bot.health import Health


def healthz_url(settings: Settings) -> str:
    """Where this machine reaches the bot's /healthz (a wildcard address through loopback)."""
    return f"{settings.local_url}/healthz"


def add_ops_routes(app: web.Application, health: Callable[[], Awaitable[Health]]) -> None:
    """Add `/healthz` and `/metrics` to an aiohttp application (before it starts)."""

    async def healthz(request: web.Request) -> web.Response:
        report = await health()
        body = {"status": report.status, **report.checks}
        return web.json_response(
            body, status=503 if report.failing else 200, dumps=lambda o: json.dumps(o, indent=1)
        )

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", make_aiohttp_handler())


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving the application; the returned runner's `cleanup()` stops it."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
