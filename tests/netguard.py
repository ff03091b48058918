"""The suite's guard against the internet: a test that resolves or connects to anything beyond
this machine fails, even if the code under test swallowed the error.

An audit hook (PEP 578) sees every name resolution and connect, in any thread and any library;
it refuses them as an offline machine would (so the code under test takes its offline path) and
the autouse `no_internet` fixture then fails the test, naming what it tried. pytest-socket's
`--allow-hosts` was tried first: it checks connect() only, so on an offline machine (resolving
huggingface.co fails first) a test calling Hugging Face still passed, and its RuntimeError is
swallowed by click's CliRunner. Subprocesses a test starts are not covered: they are pointed at
local fakes or at a closed local port (http://127.0.0.1:9).
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Iterator

import pytest

# Besides loopback addresses: None, "" and the wildcards are what a server binding resolves.
LOCAL_HOSTS = {None, "", "localhost", "0.0.0.0", "::"}
reached: list[str] = []
_guarding = False


def is_local(host: object) -> bool:
    """Whether a host (name or address) is this machine."""
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse_the_internet(event: str, args: tuple[object, ...]) -> None:
    if not _guarding:
        return
    if event == "socket.getaddrinfo":
        host, port = args[0], args[1]
        if not is_local(host):
            reached.append(f"resolve {host!r} (port {port})")
            raise socket.gaierror(socket.EAI_NONAME, "tests may not reach the internet")
    elif event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and not is_local(address[0]):
            reached.append(f"connect {address!r}")
            raise ConnectionRefusedError("tests may not reach the internet")


sys.addaudithook(_refuse_the_internet)


@pytest.fixture(autouse=True)
def no_internet() -> Iterator[None]:
    """Fail the test if it tried to reach anything but 127.0.0.1, ::1 or localhost."""
    global _guarding
    reached.clear()
    _guarding = True
    try:
        yield
    finally:
        _guarding = False
    tried = list(reached)
    reached.clear()
    assert not tried, f"the test tried to reach the internet: {tried[:3]}"
