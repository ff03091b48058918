"""Discord embeds for paperbot's replies and digests, always within Discord's limits.

Discord rejects an embed with a title over 256 characters, a description over 4096, more than
25 fields or fields over 1024, and a message whose embeds hold more than 6000 characters or
number more than 10. These functions return messages (lists of embed dicts, as sent to the API)
that respect every limit: a long digest becomes several messages. Embeds are plain dicts so the
adapter can hand them to `discord.Embed.from_dict` and tests can check them without a client.
"""

from __future__ import annotations

from typing import Any

from bot.models import Digest, PaperCard, Reply

MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELDS = 25
MAX_FIELD_VALUE = 1024
MAX_FIELD_NAME = 256
MAX_FOOTER = 2048
MAX_MESSAGE_CHARS = 6000
MAX_EMBEDS = 10
COLOR = 0x2C3E50

Embed = dict[str, Any]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    # Paper text must not ping anyone or smuggle markdown links.
    return text.replace("@", "@\u200b").replace("](", "]\u200b(")


def card_embed(card: PaperCard) -> Embed:
    """One paper: the title links to it; meta, summary, why and links in the description."""
    meta = card.meta()
    lines = [_escape(meta)] if meta else []
    if card.summary:
        lines.append(_escape(card.summary))
    if card.why:
        lines.append(f"*why: {_escape(card.why)}*")
    links = " · ".join(f"[{kind}]({url})" for kind, url in card.links.items())
    if links:
        lines.append(links)
    embed: Embed = {
        "title": _cut(_escape(card.title), MAX_TITLE),
        "description": _cut("\n".join(lines), MAX_DESCRIPTION),
        "color": COLOR,
        "footer": {"text": _cut(card.paper_id, MAX_FOOTER)},
    }
    if card.url:
        embed["url"] = card.url
    return embed


def text_embed(text: str, title: str = "") -> Embed:
    """An embed holding plain text (a reply, a topic header, an "and N more" line)."""
    embed: Embed = {"description": _cut(_escape(text) or "\u200b", MAX_DESCRIPTION), "color": COLOR}
    if title:
        embed["title"] = _cut(_escape(title), MAX_TITLE)
    return embed


def embed_size(embed: Embed) -> int:
    """Characters Discord counts towards the 6000 per message."""
    size = len(embed.get("title", "")) + len(embed.get("description", ""))
    size += len(embed.get("footer", {}).get("text", ""))
    size += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    return size


def paginate(embeds: list[Embed]) -> list[list[Embed]]:
    """Group embeds into messages of at most 10 embeds and 6000 characters."""
    messages: list[list[Embed]] = [[]]
    total = 0
    for embed in embeds:
        size = embed_size(embed)
        if messages[-1] and (len(messages[-1]) >= MAX_EMBEDS or total + size > MAX_MESSAGE_CHARS):
            messages.append([])
            total = 0
        messages[-1].append(embed)
        total += size
    return [m for m in messages if m]


def digest_embeds(digest: Digest) -> list[Embed]:
    """A digest: per topic, a header embed, its papers, and an "and N more" line."""
    embeds: list[Embed] = []
    for part in digest.sections:
        heading = f"{part.topic} — digest for {digest.local_date}"
        more = f"…and {part.more} more: `/papers search {part.topic}`" if part.more else ""
        embeds.append(text_embed(more or f"{len(part.cards)} new", title=heading))
        embeds += [card_embed(card) for card in part.cards]
    return embeds


def digest_messages(digest: Digest) -> list[list[Embed]]:
    """A digest as one or more messages within Discord's limits."""
    return paginate(digest_embeds(digest))


def reply_messages(reply: Reply) -> list[list[Embed]]:
    """A command reply as one or more messages of embeds."""
    embeds: list[Embed] = []
    if reply.notice:
        embeds.append(text_embed(reply.notice, title="Heads up"))
    embeds.append(text_embed(("❌ " if reply.error else "") + reply.text))
    embeds += [card_embed(card) for card in reply.cards]
    if reply.digest is not None:
        embeds += digest_embeds(reply.digest)
    return paginate(embeds)
