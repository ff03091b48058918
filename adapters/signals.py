"""Reader signals as chat buttons carry them: "relevant" and "not relevant" under a paper.

Shared by the Slack and Discord adapters (the console numbers its papers instead). A button's
value is `<topic_id>:<paper_id>`: the topic subscription the paper was shown under (which the
signal teaches) and the paper. Cards are shared between subscribers, so the topic id is put in
at render time, from the digest section or the look-up reply. A "not relevant" button without a
topic (an old message, or a look-up of a topic the reader does not follow) carries the bare
paper id and only mutes. Paper ids are arXiv ids, which never hold a `:`.

Values come back from the platform, and may be forged or garbled: `signal_command` turns any
value into a `Command`, one the core answers with a friendly error when it is not a signal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from bot.commands import Command

SignalAction = Literal["relevant", "mute"]

# A topic id is a SQLite rowid: at most 19 digits; 18 keeps any value inside a 64-bit integer.
MAX_TOPIC_ID_DIGITS = 18
GARBLED = (
    "I could not read that button (it may come from a damaged or very old message), so "
    "nothing was recorded. Use the buttons under a paper in a newer message."
)


def signal_value(paper_id: str, topic_id: int | None) -> str:
    """What a signal button carries: `<topic_id>:<paper_id>`, or the bare paper id."""
    return paper_id if topic_id is None else f"{topic_id}:{paper_id}"


def _topic_id(text: str) -> int | None:
    if text.isascii() and text.isdigit() and len(text) <= MAX_TOPIC_ID_DIGITS:
        return int(text)
    return None


def _paper_id(text: str) -> bool:
    # An arXiv id: no separator, no spaces; anything else did not come from our render.
    return bool(text) and ":" not in text and not any(c.isspace() for c in text)


def signal_command(action: SignalAction, value: str) -> Command:
    """The core command a signal button's value asks for; `invalid` (a friendly error, nothing
    recorded) when the value is not one this adapter renders.

    "Not relevant" also accepts a bare paper id (messages posted before topics learned): it
    then mutes only. "Relevant" always needs the topic it teaches.
    """
    head, separator, rest = value.partition(":")
    if separator:
        topic_id = _topic_id(head)
        if topic_id is not None and _paper_id(rest):
            return Command(action, arg=rest, topic_id=topic_id)
    elif action == "mute" and _paper_id(value):
        return Command("mute", arg=value)
    return Command("invalid", value=GARBLED)


def left_out_line(
    titles: Sequence[str], limit: int, quote: Callable[[str], str] = lambda text: text
) -> str:
    """`Left out: “A”, “B” and 3 more (close to papers you marked not relevant)`, at most
    `limit` characters; `quote` escapes a title for the platform."""
    tail = " (close to papers you marked not relevant)"
    head = "Left out: "
    shown: list[str] = []
    for count, title in enumerate(titles):
        more = len(titles) - count - 1
        room = limit - len(head) - len(tail) - len(", ".join(shown)) - len(f" and {more} more")
        room -= 2 if shown else 0  # the ", " before this title
        short = title if len(title) <= 80 else title[:79] + "…"
        item = f"“{quote(short)}”"
        if len(item) > room:
            break
        shown.append(item)
    more = len(titles) - len(shown)
    text = head + ", ".join(shown) + (f" and {more} more" if shown and more else "")
    if not shown:
        text = f"Left out {len(titles)} paper{'s' if len(titles) != 1 else ''}"
    return (text + tail)[:limit]
