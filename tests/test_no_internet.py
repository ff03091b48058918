"""The suite's guard: a test that tries to reach beyond 127.0.0.1 fails, however it tries."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests import netguard


def _tried() -> list[str]:
    """What the guard caught so far in this test; cleared, so this test itself passes."""
    tried = list(netguard.reached)
    netguard.reached.clear()
    return tried


def test_resolving_a_public_name_is_refused_and_recorded() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("huggingface.co", 443)
    assert _tried() == ["resolve 'huggingface.co' (port 443)"]


def test_connecting_to_a_public_address_is_refused_and_recorded() -> None:
    # 192.0.2.1 is a documentation address: unguarded, this would hang until a timeout.
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("192.0.2.1", 80))
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.ConnectError):
        client.get("http://192.0.2.1:80/")
    assert _tried() == ["connect ('192.0.2.1', 80)", "resolve '192.0.2.1' (port 80)"]


async def test_async_clients_reach_a_local_server() -> None:
    app = web.Application()

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        for host in ("127.0.0.1", "localhost"):
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"http://{host}:{port}/")).text == "hi"
        with pytest.raises(httpx.ConnectError):  # a closed local port: refused, not guarded
            async with httpx.AsyncClient() as client:
                await client.get("http://127.0.0.1:9/")
    finally:
        await runner.cleanup()
    assert _tried() == []


def test_a_test_that_reaches_out_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(Path(netguard.__file__).read_text())
    pytester.makepyfile(
        """
        import httpx

        def test_swallows():
            try:
                httpx.get("https://huggingface.co/api/daily_papers", timeout=1)
            except Exception:
                pass
        """
    )
    # In a subprocess: its own guard, independent of the one guarding this test.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the test tried to reach the internet*huggingface.co*"])
