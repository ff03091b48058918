"""The console adapter: type `/papers ...` in a terminal; digests are printed when due.

`paperbot console` reads commands from standard input and exits at its end (scriptable);
`paperbot run` with no chat tokens runs it interactively next to the scheduler, with a
prompt_toolkit prompt: what prints meanwhile (log lines, digests, start-up news) appears above
the prompt instead of inside the line being typed.

A terminal has no buttons: the console numbers the papers it prints and remembers the last list
(`Shown`), so `/papers relevant 3` and `/papers not-relevant 3` mark the third paper of it,
teaching the topic it was shown under.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.patch_stdout import patch_stdout

from adapters.base import Adapter
from adapters.signals import left_out_line
from bot.commands import Command, parse_command
from bot.errors import LookupUnavailable
from bot.markup import plain
from bot.models import Caller, Digest, PaperCard, Reply, Subscriber
from bot.service import PaperBot

USER = "console"


def console_caller(user: str = USER) -> Caller:
    """The console user NAME (the subscriber `console:NAME`), who manages the console channel."""
    return Caller(
        platform="console",
        user_id=user,
        channel_id="console",
        workspace="",
        can_manage_channel=True,
    )


CALLER = console_caller()
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


def render_digest(digest: Digest, first: int = 1) -> str:
    """A digest as text, grouped by topic, its papers numbered from `first`."""
    lines = [f"Your paper digest for {digest.local_date}"]
    number = first - 1
    for section in digest.sections:
        if not section.cards and not section.left_out:
            continue
        lines.append(f"\n== {section.topic} ==")
        for card in section.cards:
            number += 1
            lines.append(render_card(number, card))
        if section.more:
            lines.append(f"   … and {section.more} more: /papers {section.topic}")
        if section.left_out:  # previews: what learning left out of this topic
            lines.append(f"   {left_out_line(section.left_out, LEFT_OUT_CHARS)}")
    if number >= first:
        lines.append(f"\n{MARK_HINT}")
    return "\n".join(lines)


LEFT_OUT_CHARS = 300
MARK_HINT = "(Teach a topic: /papers relevant N or /papers not-relevant N, N the paper's number.)"


def render_reply(reply: Reply) -> str:
    """A reply as text; its papers are numbered as `Shown.of` numbers them."""
    parts = []
    if reply.notice:
        parts.append(f"! {plain(reply.notice)}")
    parts.append(f"Error: {plain(reply.text)}" if reply.error else plain(reply.text))
    parts += [render_card(n, c) for n, c in enumerate(reply.cards, start=1)]
    if reply.digest is not None:
        parts.append(render_digest(reply.digest, first=len(reply.cards) + 1))
    if reply.subscribe_topic and reply.cards:
        parts.append(f"(Subscribe with: /papers subscribe {reply.subscribe_topic})")
    elif reply.cards:
        parts.append(MARK_HINT if reply.topic_id is not None else NOT_RELEVANT_HINT)
    return "\n".join(parts)


NOT_RELEVANT_HINT = "(Not for you? /papers not-relevant N hides paper N from now on.)"
SHOWS_PAPERS = ("lookup", "more", "digest")


@dataclass
class Shown:
    """The last papers the console printed, in their printed order: (paper id, the topic
    subscription it was shown under, or None)."""

    papers: list[tuple[str, int | None]] = field(default_factory=list)

    @staticmethod
    def of(
        cards: tuple[PaperCard, ...], topic_id: int | None, digest: Digest | None
    ) -> list[tuple[str, int | None]]:
        """The papers of a reply's cards, then of its digest, as `render_reply` numbers them."""
        papers = [(card.paper_id, topic_id) for card in cards]
        if digest is not None:
            papers += [(c.paper_id, s.topic_id) for s in digest.sections for c in s.cards]
        return papers

    def remember(self, command: Command, reply: Reply) -> None:
        """After a command: a new list of papers replaces the last (a look-up that found
        nothing too); other replies leave it, so several papers can be marked in turn."""
        if command.action in SHOWS_PAPERS and not reply.error:
            self.papers = self.of(reply.cards, reply.topic_id, reply.digest)

    def resolve(self, command: Command) -> Command | str:
        """`relevant N` / `not-relevant N` as the command for the N-th paper shown, or what to
        tell the user instead (nothing is run then); any other command as it is."""
        if command.action not in ("relevant", "mute") or command.topic_id is not None:
            return command
        word = "relevant" if command.action == "relevant" else "not-relevant"
        target = command.arg.strip()
        if not target:
            return f"Which paper? `/papers {word} 3` marks paper 3 of the last list shown."
        if not (target.isascii() and target.isdigit()):
            return command  # a paper id: the core knows what to do with it
        if not self.papers:
            return (
                "There is no list of papers to pick from yet: look up a topic or preview your "
                f"digest (`/papers digest`) first, then `/papers {word} N`."
            )
        number = int(target)
        if not 1 <= number <= len(self.papers):
            return f"There is no paper {number} in the last list: it has 1 to {len(self.papers)}."
        paper_id, topic_id = self.papers[number - 1]
        if command.action == "relevant" and topic_id is None:
            return (
                f"Paper {number} was not shown under a topic you follow, so there is no topic "
                "to teach. Subscribe to the topic, then look it up again."
            )
        return replace(command, arg=paper_id, topic_id=topic_id)


async def answer(bot: PaperBot, shown: Shown, line: str, caller: Caller = CALLER) -> str:
    """Run one typed line for the console user and render the answer; remembers the papers."""
    command = shown.resolve(command_of(line))
    if isinstance(command, str):
        return f"Error: {plain(command)}"
    reply = await bot.run(caller, command)
    shown.remember(command, reply)
    return render_reply(reply)


class ConsoleDestination:
    """Delivers digests by printing them (the console's DM)."""

    platform = "console"

    def __init__(self, out: TextIO | None = None, shown: Shown | None = None) -> None:
        self._out = out
        self.sent = 0
        # A printed digest becomes the list `relevant N` picks from, as a preview does.
        self.shown = shown or Shown()
        self._rendered: dict[str, Digest] = {}

    @property
    def out(self) -> TextIO:
        """Where digests go; standard output as it is now (above the prompt while it runs)."""
        return self._out or sys.stdout

    def render(self, digest: Digest, key: str) -> list[str]:
        """The digest as one message; the ledger key leads it (its id)."""
        self._rendered[key] = digest
        return [f"{key}\n{render_digest(digest)}"]

    async def post(self, subscriber: Subscriber, body: str) -> str:
        """Print the digest; the message id is the ledger key."""
        key, _, text = body.partition("\n")
        self.out.write("\n" + text + "\n")
        self.out.flush()
        self.sent += 1
        digest = self._rendered.pop(key, None)
        if digest is not None:
            self.shown.papers = Shown.of((), None, digest)
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
        self.shown = Shown()  # shared by the prompt and the printed digests
        self.destination = ConsoleDestination(out, self.shown)

    async def start(self) -> str:
        """Nothing to connect to."""
        return ""

    async def stop(self) -> None:
        """Nothing to let go of."""


async def run_lines(bot: PaperBot, lines: list[str], out: TextIO, caller: Caller = CALLER) -> None:
    """Answer each command line in order (the scriptable `paperbot console`)."""
    shown = Shown()
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        out.write(await answer(bot, shown, line, caller) + "\n\n")
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


async def run_interactive(
    bot: PaperBot, session: PromptSession[str] | None = None, shown: Shown | None = None
) -> None:
    """A prompt loop until `quit`, Ctrl-D or Ctrl-C; digests and log lines print above it.

    `shown` is the console adapter's, so a digest it printed can be marked too."""
    session = session or PromptSession()
    shown = shown or Shown()
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
            print(await answer(bot, shown, line) + "\n", flush=True)
    print("Bye.")
