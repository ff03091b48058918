"""The small contract every adapter keeps, so `adapters/cli.py` wires them all alike.

An adapter is one platform the bot serves (Slack, Discord, the terminal): it answers commands
through `bot.service.PaperBot` and delivers digests through its `Destination`. The composition
root builds the adapters whose credentials are set, lets each add its routes to the bot's one
HTTP server (`mount`), starts them, hands their destinations to the digest runner, and stops
them in reverse order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from aiohttp import web

from bot.digests import Destination


class Misconfigured(Exception):
    """The settings cannot start this adapter; the message says what to set."""


class Adapter(ABC):
    """One platform the bot serves.

    `start` returns at once: what may be slow or fail (logging in, connecting) goes on in the
    background, retried by `adapters.supervise`, with its state in the core's adapter registry.
    """

    platform: ClassVar[str]
    destination: Destination

    def mount(self, web_app: web.Application) -> bool:
        """Add the adapter's routes to the bot's HTTP server; whether it needs that server."""
        return False

    @abstractmethod
    async def start(self) -> str:
        """Start serving in the background; returns a line for the operator ("" for none)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop serving and let go of what `start` opened, background tasks included."""
