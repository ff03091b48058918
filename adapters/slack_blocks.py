"""Block Kit for paperbot's replies and digests, always within Slack's limits.

Slack rejects a message with more than 50 blocks, a section text over 3000 characters or a
header over 150; messages over about 12k characters of blocks are cut. Every function here
returns messages (lists of blocks) that respect those limits: a long digest becomes several
messages, each within them. Paper text is escaped (`&`, `<`, `>`) so it can never form a link
or a mention.

A paper shown under one of the reader's topics (in a digest, or in a look-up of a topic they
follow) gets "✓ Relevant" and "✗ Not relevant" buttons that teach that topic; their value is
`<topic_id>:<paper_id>` (`adapters.signals`). Each card's buttons are one actions block of at
most four elements (Slack allows 25), and action ids are unique within it, as Slack asks.
"""

from __future__ import annotations

import json
from typing import Any

from adapters.signals import left_out_line, signal_value
from bot.markup import spans
from bot.models import Digest, DigestSection, PaperCard, Reply

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_MESSAGE_CHARS = 12_000
MAX_BUTTON_VALUE = 2000
MAX_BUTTON_TEXT = 75
MAX_ACTIONS = 25  # elements in one actions block
MAX_CONTEXT = 3000  # characters of a context block's text element
# A "left out" line stays short: it is a hint, not a second list of papers.
LEFT_OUT_CHARS = 400

Block = dict[str, Any]


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str) -> str:
    """Core markup (bot.markup) as Slack mrkdwn, escaped: `**bold**` becomes `*bold*`."""
    marks = {"text": "{}", "bold": "*{}*", "code": "`{}`"}
    return "".join(marks[kind].format(escape(part)) for kind, part in spans(text))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _link(url: str, label: str) -> str:
    # `|` ends the URL part of a link and `>` closes it: neither may appear unescaped.
    safe_url = url.replace(">", "%3E").replace("|", "%7C").replace(" ", "%20")
    return f"<{safe_url}|{escape(label).replace('|', '¦')}>"


def section(text: str) -> Block:
    """A mrkdwn section, cut to Slack's limit."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_SECTION)}}


def header(text: str) -> Block:
    """A plain-text header, cut to Slack's limit."""
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": _cut(text, MAX_HEADER) or " ", "emoji": True},
    }


def _button(text: str, action_id: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": _cut(text, MAX_BUTTON_TEXT), "emoji": True},
        "action_id": action_id,
        "value": _cut(value, MAX_BUTTON_VALUE),
    }


def context(text: str) -> Block:
    """A small grey mrkdwn line, cut to Slack's limit."""
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(text, MAX_CONTEXT)}]}


def card_blocks(
    card: PaperCard, topic: str | None = None, topic_id: int | None = None
) -> list[Block]:
    """A paper as a section (title link, meta, summary, why) and a row of buttons.

    With `topic_id` (the reader's topic subscription the paper was shown under) the row offers
    ✓ Relevant and ✗ Not relevant for that topic; without it, Not relevant only mutes.
    """
    title = _link(card.url, card.title) if card.url else f"*{escape(card.title)}*"
    meta = escape(card.meta())
    links = " · ".join(_link(url, kind) for kind, url in card.links.items())
    lines = [f"*{title}*" if card.url else title]
    if meta:
        lines.append(meta)
    if card.summary:
        lines.append(escape(card.summary))
    if card.why:
        lines.append(f"_why: {escape(card.why)}_")
    if links:
        lines.append(links)
    buttons = [
        _button(
            "✗ Not relevant" if topic_id is not None else "Not relevant",
            "not_relevant",
            signal_value(card.paper_id, topic_id),
        ),
        _button("More like this", "more_like_this", card.paper_id),
    ]
    if topic_id is not None:
        buttons.insert(0, _button("✓ Relevant", "relevant", signal_value(card.paper_id, topic_id)))
    if topic:
        buttons.insert(0, _button(f"Subscribe to {topic}", "subscribe_topic", topic))
    return [section("\n".join(lines)), {"type": "actions", "elements": buttons}]


def _size(blocks: list[Block]) -> int:
    return len(json.dumps(blocks, ensure_ascii=False))


def paginate(blocks: list[Block]) -> list[list[Block]]:
    """Split blocks into messages of at most 50 blocks and about 12k characters each.

    A paper's section and its buttons stay together.
    """
    units: list[list[Block]] = []
    for block in blocks:
        if block["type"] == "actions" and units and units[-1][-1]["type"] == "section":
            units[-1].append(block)
        else:
            units.append([block])
    messages: list[list[Block]] = [[]]
    for unit in units:
        current = messages[-1]
        if current and (
            len(current) + len(unit) > MAX_BLOCKS or _size(current + unit) > MAX_MESSAGE_CHARS
        ):
            messages.append([])
        messages[-1].extend(unit)
    return [m for m in messages if m]


def reply_messages(reply: Reply, shareable: bool = False) -> list[list[Block]]:
    """A command reply as one or more messages of blocks (with a share button if asked)."""
    blocks: list[Block] = []
    if reply.notice:
        blocks.append(section(f":warning: {mrkdwn(reply.notice)}"))
    text = mrkdwn(reply.text)
    blocks.append(section(f":x: {text}" if reply.error else text))
    for card in reply.cards:
        blocks += card_blocks(card, reply.subscribe_topic, reply.topic_id)
    if reply.digest is not None:
        blocks += digest_blocks(reply.digest)
    if shareable and reply.cards and reply.subscribe_topic:
        share = _button("Share to channel", "share_lookup", reply.subscribe_topic)
        blocks.append({"type": "actions", "elements": [share]})
    return paginate(blocks)


def digest_blocks(digest: Digest) -> list[Block]:
    """A digest's blocks: a header, then each topic's papers and its "and N more" line."""
    blocks: list[Block] = [header(f"Your paper digest for {digest.local_date}")]
    for part in digest.sections:
        blocks.append(section(f"*{escape(part.topic)}*"))
        for card in part.cards:
            # The section's subscription, not the card's: cards are shared between readers.
            blocks += card_blocks(card, topic_id=part.topic_id)
        if part.more:
            blocks.append(section(f"…and {part.more} more: `/papers {escape(part.topic)}`"))
        if part.left_out:
            blocks.append(context(left_out_text(part)))
    return blocks


def left_out_text(part: DigestSection) -> str:
    """What learning left out of a preview's section, as one short escaped line."""
    return left_out_line(part.left_out, LEFT_OUT_CHARS, escape)


def digest_messages(digest: Digest) -> list[list[Block]]:
    """A digest as one or more messages within Slack's limits."""
    return paginate(digest_blocks(digest))


def fallback_text(blocks: list[Block]) -> str:
    """Plain text for notifications and clients without Block Kit."""
    for block in blocks:
        text = block.get("text", {}).get("text")
        if text:
            return _cut(str(text), 300)
    return "paperbot"
