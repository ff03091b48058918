"""The console adapter: type `/papers ...` in a terminal; digests are printed when due.

`paperbot console` reads commands from standard input and exits at its end (scriptable);
`paperbot run` with no chat tokens runs it interactively next to the scheduler, with a
prompt_toolkit prompt: what prints meanwhile (log lines, digests, start-up news) appears above
the prompt instead of inside the line being typed.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.patch_stdout import patch_stdout

from adapters.base import Adapter
from bot.commands import Command, parse_command
from bot.errors import LookupUnavailable
from bot.markup import plain
from bot.models import Caller, Digest, PaperCard, Reply, Subscriber
from bot.service import PaperBot

USER = "console"
CALLER = Caller(
    platform="console", user_id=USER, channel_id="console", workspace="", can_manage_channel=True
)
PROMPT = "papers> "


def strip_command(line: str) -> str:
    """The text after `/papers` (a bare line counts as a look-up or command too)."""
    text = line.strip()
    for prefix in ("/papers", "papers"):
        if text.lower() == prefix or text.lower().startswith(prefix + " "):
            return text[len(prefix) :].strip()
    return text


def command_of(line: str) -> Command:
    """The command a typed line asks for, `/papers` or not."""
    return parse_command(strip_command(line))


def render_card(number: int, card: PaperCard) -> str:
    """One paper as a few lines of text."""
    meta = card.meta("{} upvotes")
    lines = [f"{number}. {card.title}"]
    if meta:
        lines.append(f"   {meta}")
    if card.summary:
        lines.append(f"   {card.summary}")
    lines.append(f"   why: {card.why}")
    links = "  ".join(f"{kind}: {url}" for kind, url in card.links.items())
    if links:
        lines.append(f"   {links}")
    return "\n".join(lines)


def render_digest(digest: Digest) -> str:
    """A digest as text, grouped by topic."""
    lines = [f"Your paper digest for {digest.local_date}"]
    number = 0
    for section in digest.sections:
        if not section.cards:
            continue
        lines.append(f"\n== {section.topic} ==")
        for card in section.cards:
            number += 1
            lines.append(render_card(number, card))
        if section.more:
            lines.append(f"   … and {section.more} more: /papers {section.topic}")
    return "\n".join(lines)


def render_reply(reply: Reply) -> str:
    """A reply as text."""
    parts = []
    if reply.notice:
        parts.append(f"! {plain(reply.notice)}")
    parts.append(f"Error: {plain(reply.text)}" if reply.error else plain(reply.text))
    parts += [render_card(n, c) for n, c in enumerate(reply.cards, start=1)]
    if reply.digest is not None:
        parts.append(render_digest(reply.digest))
    if reply.subscribe_topic and reply.cards:
        parts.append(f"(Subscribe with: /papers subscribe {reply.subscribe_topic})")
    return "\n".join(parts)


class ConsoleDestination:
    """Delivers digests by printing them (the console's DM)."""

    platform = "console"

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out
        self.sent = 0

    @property
    def out(self) -> TextIO:
        """Where digests go; standard output as it is now (above the prompt while it runs)."""
        return self._out or sys.stdout

    def render(self, digest: Digest, key: str) -> list[str]:
        """The digest as one message; the ledger key leads it (its id)."""
        return [f"{key}\n{render_digest(digest)}"]

    async def post(self, subscriber: Subscriber, body: str) -> str:
        """Print the digest; the message id is the ledger key."""
        key, _, text = body.partition("\n")
        self.out.write("\n" + text + "\n")
        self.out.flush()
        self.sent += 1
        return f"console:{key}"

    async def find_posted(
        self, subscriber: Subscriber, key: str, part: int, since: datetime, until: datetime
    ) -> str | None:
        """A terminal keeps no history to ask: a digest cut by a crash is printed again."""
        raise LookupUnavailable("a terminal keeps no history")


class ConsoleAdapter(Adapter):
    """The terminal: digests print; the prompt (`run_interactive`) runs in the foreground."""

    platform = "console"

    def __init__(self, out: TextIO | None = None) -> None:
        self.destination = ConsoleDestination(out)

    async def start(self) -> str:
        """Nothing to connect to."""
        return ""

    async def stop(self) -> None:
        """Nothing to let go of."""


async def run_lines(bot: PaperBot, lines: list[str], out: TextIO) -> None:
    """Answer each command line in order (the scriptable `paperbot console`)."""
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        reply = await bot.run(CALLER, command_of(line))
        out.write(render_reply(reply) + "\n\n")
    out.flush()


@contextlib.contextmanager
def _logs_follow_stderr() -> Iterator[None]:
    """Point the log handlers writing to the terminal at `sys.stderr` as it is now, for a while.

    A StreamHandler keeps the stream it was made with; under `patch_stdout` the new
    `sys.stderr` is the proxy that prints above the prompt.
    """
    terminal = (sys.__stderr__, sys.__stdout__)
    moved: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream in terminal:
            moved.append((handler, handler.stream))
            handler.setStream(sys.stderr)
    try:
        yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


QUIT = ("quit", "exit", "/quit")


async def run_interactive(bot: PaperBot, session: PromptSession[str] | None = None) -> None:
    """A prompt loop until `quit`, Ctrl-D or Ctrl-C; digests and log lines print above it."""
    session = session or PromptSession()
    print("paperbot console: type `/papers help`, or `quit` to leave.")
    with patch_stdout(raw=True), _logs_follow_stderr():
        while True:
            try:
                line = await session.prompt_async(PROMPT)
            except (EOFError, KeyboardInterrupt):  # Ctrl-D, Ctrl-C at the prompt
                break
            if line.strip().lower() in QUIT:
                break
            if not line.strip():
                continue
            reply = await bot.run(CALLER, command_of(line))
            print(render_reply(reply) + "\n", flush=True)
    print("Bye.")
