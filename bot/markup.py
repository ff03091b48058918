"""The core's tiny markup: what a reply's text may mark, for each adapter to render its own way.

Texts from the core use two marks and nothing else: `**bold**` and `` `code` `` (commands and
topics to type). Slack shows bold as `*bold*`, Discord as `**bold**`, and a terminal as plain
text; so the core never writes one platform's syntax. Inside a code span nothing is a mark, so
a topic quoted in backticks shows as typed, asterisks and all.
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["text", "bold", "code"]

_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*([^*\n]+)\*\*")


def spans(text: str) -> list[tuple[Kind, str]]:
    """The text cut into plain, bold and code spans, in order (marks removed)."""
    out: list[tuple[Kind, str]] = []
    at = 0
    for code in _CODE.finditer(text):
        out += _bold_spans(text[at : code.start()])
        out.append(("code", code.group(1)))
        at = code.end()
    out += _bold_spans(text[at:])
    return [(kind, part) for kind, part in out if part]


def _bold_spans(text: str) -> list[tuple[Kind, str]]:
    out: list[tuple[Kind, str]] = []
    at = 0
    for bold in _BOLD.finditer(text):
        out.append(("text", text[at : bold.start()]))
        out.append(("bold", bold.group(1)))
        at = bold.end()
    out.append(("text", text[at:]))
    return out


def plain(text: str) -> str:
    """The text without bold marks (for a terminal); code keeps its backticks."""
    return "".join(f"`{part}`" if kind == "code" else part for kind, part in spans(text))
