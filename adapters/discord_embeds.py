"""Discord embeds for paperbot's replies and digests, always within Discord's limits.

Discord rejects an embed with a title over 256 characters, a description over 4096, more than
25 fields or fields over 1024, and a message whose embeds hold more than 6000 characters or
number more than 10. These functions return messages (lists of embed dicts, as sent to the API)
that respect every limit: a long digest becomes several messages. Embeds are plain dicts so the
adapter can hand them to `discord.Embed.from_dict` and tests can check them without a client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.signals import left_out_line, signal_value
from bot.models import Digest, PaperCard, Reply

MAX_TITLE = 256
MAX_DESCRIPTION = 4096
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


def card_embed(card: PaperCard, number: int | None = None) -> Embed:
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
    title = f"{number}. {card.title}" if number is not None else card.title
    embed: Embed = {
        "title": _cut(_escape(title), MAX_TITLE),
        "description": _cut("\n".join(lines), MAX_DESCRIPTION),
        "color": COLOR,
        "footer": {"text": _cut(card.paper_id, MAX_FOOTER)},
    }
    if card.url:
        embed["url"] = card.url
    return embed


def text_embed(text: str, title: str = "", footer: str = "") -> Embed:
    """An embed holding plain text (a reply, a topic header, an "and N more" line)."""
    embed: Embed = {"description": _cut(_escape(text) or "\u200b", MAX_DESCRIPTION), "color": COLOR}
    if title:
        embed["title"] = _cut(_escape(title), MAX_TITLE)
    if footer:
        embed["footer"] = {"text": _cut(footer, MAX_FOOTER)}
    return embed


def embed_size(embed: Embed) -> int:
    """Characters Discord counts towards the 6000 per message."""
    size = len(embed.get("title", "")) + len(embed.get("description", ""))
    size += len(embed.get("footer", {}).get("text", ""))
    size += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    return size


@dataclass(frozen=True)
class Button:
    """A persistent button: `kind` is sub, more, rel or mute; `value` the topic, the paper id, or
    `<topic_id>:<paper_id>` for the signals (rel, and mute when the paper has a topic)."""

    kind: str
    value: str
    label: str
    row: int


# custom_id is `paperbot:<kind>:<value>` and Discord allows 100 characters.
CUSTOM_ID_PREFIX = "paperbot"
MAX_CUSTOM_ID = 100
MAX_ROWS = 5
MAX_ROW_BUTTONS = 5
_LABEL = 80
# A "left out" field stays short (Discord allows 1024): a hint, not a second list of papers.
LEFT_OUT_CHARS = 400


def custom_id(kind: str, value: str) -> str:
    """The custom_id a button of this kind and value carries."""
    return f"{CUSTOM_ID_PREFIX}:{kind}:{value}"


def _fits(kind: str, value: str) -> bool:
    return len(value) > 0 and len(custom_id(kind, value)) <= MAX_CUSTOM_ID


Unit = list[tuple[str, str, str]]  # (kind, value, label) of buttons that share a row


def _paper_buttons(number: int, card: PaperCard, topic_id: int | None) -> Unit:
    """A paper's buttons; a paper shown under the reader's topic gets ✓ and ✗ for that topic.

    Three buttons do not pair up in a row of five, so such a paper takes a row of its own and a
    message holds at most five of them (`paginate` starts a new message then). Keeping "More
    like" costs a digest a few more messages; it is what readers use to explore a paper.
    """
    if not _fits("more", card.paper_id):
        return []
    plain = [
        ("more", card.paper_id, f"More like #{number}"),
        ("mute", card.paper_id, f"Not relevant #{number}"),
    ]
    value = signal_value(card.paper_id, topic_id)
    if topic_id is None or not _fits("mute", value):  # "mute" is the longer kind
        return plain
    return [
        ("rel", value, f"✓ Relevant #{number}"),
        ("mute", value, f"✗ Not relevant #{number}"),
        ("more", card.paper_id, f"More like #{number}"),
    ]


def _layout(units: list[Unit]) -> tuple[list[Button], bool]:
    """Buttons in rows of five, each unit within one row; whether every unit found room."""
    out: list[Button] = []
    row, used = 0, 0
    for unit in units:
        if not unit:
            continue
        if used + len(unit) > MAX_ROW_BUTTONS:
            row, used = row + 1, 0
        if row >= MAX_ROWS:
            return out, False
        out += [Button(kind, value, _cut(label, _LABEL), row) for kind, value, label in unit]
        used += len(unit)
    return out, True


Shown = tuple[int, PaperCard, "int | None"]  # the paper's number, its card, its topic id


@dataclass
class Message:
    """One Discord message: its embeds, and the numbered papers its buttons act on."""

    embeds: list[Embed] = field(default_factory=list)
    cards: list[tuple[int, PaperCard]] = field(default_factory=list)
    subscribe_topic: str | None = None
    # The topic subscription each paper (by number) was shown under: its ✓ and ✗ teach it.
    topic_ids: dict[int, int] = field(default_factory=dict)

    def _units(self, extra: Shown | None = None) -> list[Unit]:
        units: list[Unit] = []
        topic = self.subscribe_topic
        if topic and _fits("sub", topic):
            units.append([("sub", topic, f"Subscribe to {topic}")])
        shown = [(n, card, self.topic_ids.get(n)) for n, card in self.cards]
        taken: set[str] = set()
        for number, card, topic_id in [*shown, *([extra] if extra else [])]:
            unit = _paper_buttons(number, card, topic_id)
            ids = {custom_id(kind, value) for kind, value, _ in unit}
            # Discord refuses a whole message whose custom_ids repeat: a paper shown twice
            # in one message (the core does not do that) gets its buttons once.
            units.append([] if ids & taken else unit)
            taken |= ids
        return units

    def buttons(self) -> list[Button]:
        """Subscribe (if any), then each paper's buttons: ✓ relevant, ✗ not relevant and more
        like it for a paper shown under a topic (a row each), else more like it and not
        relevant (two papers a row)."""
        return _layout(self._units())[0]

    def has_room(self, shown: Shown) -> bool:
        """Whether this paper's buttons still fit the message's five rows."""
        return _layout(self._units(shown))[1]

    def add(self, shown: Shown) -> None:
        """Act on this paper with the message's buttons."""
        number, card, topic_id = shown
        self.cards.append((number, card))
        if topic_id is not None:
            self.topic_ids[number] = topic_id


Item = tuple[Embed, "Shown | None"]


def paginate(
    items: list[Item], subscribe_topic: str | None = None, reserve: int = 0
) -> list[Message]:
    """Group embeds into messages of at most 10 embeds and 6000 characters (less `reserve`),
    and no more papers than their buttons fit in five rows."""
    messages = [Message(subscribe_topic=subscribe_topic)]
    total = 0
    limit = MAX_MESSAGE_CHARS - reserve
    for embed, shown in items:
        size = embed_size(embed)
        last = messages[-1]
        if last.embeds and (
            len(last.embeds) >= MAX_EMBEDS
            or total + size > limit
            or (shown is not None and not last.has_room(shown))
        ):
            messages.append(Message())
            total = 0
        messages[-1].embeds.append(embed)
        if shown is not None:
            messages[-1].add(shown)
        total += size
    return [m for m in messages if m.embeds]


def _cards(cards: tuple[PaperCard, ...], first: int, topic_id: int | None) -> list[Item]:
    return [(card_embed(c, n), (n, c, topic_id)) for n, c in enumerate(cards, start=first)]


def _digest_items(digest: Digest, key: str = "") -> list[Item]:
    items: list[Item] = []
    number = 1
    for part in digest.sections:
        heading = f"{part.topic} — digest for {digest.local_date}"
        more = f"…and {part.more} more: `/papers search {part.topic}`" if part.more else ""
        # The first header carries the ledger key so a restart can find a digest already sent.
        footer = digest_marker(key, 0) if key and not items else ""
        header = text_embed(more or f"{len(part.cards)} new", heading, footer)
        if part.left_out:  # previews: what learning left out of this topic
            line = left_out_line(part.left_out, LEFT_OUT_CHARS, _escape)
            header["fields"] = [{"name": "Left out by learning", "value": line, "inline": False}]
        items.append((header, None))
        # The section's subscription, not the card's: cards are shared between readers.
        items += _cards(part.cards, number, part.topic_id)
        number += len(part.cards)
    return items


def digest_marker(key: str, part: int) -> str:
    """The footer text that identifies part `part` of the digest with ledger key `key`."""
    return f"paperbot digest {key}" + (f" #{part + 1}" if part else "")


def has_marker(embed: Embed, marker: str) -> bool:
    """Whether an embed's footer carries this digest marker."""
    text = str((embed.get("footer") or {}).get("text") or "")
    return text == marker or text.endswith(" · " + marker)


def digest_messages(digest: Digest, key: str = "") -> list[Message]:
    """A digest as one or more messages within Discord's limits.

    With a ledger key, each message's first embed carries its marker in the footer, so a
    message cut by a crash can be found in the channel's history.
    """
    marker_room = len(digest_marker(key, MAX_EMBEDS * 99)) + 3 if key else 0
    messages = paginate(_digest_items(digest, key), reserve=marker_room)
    for part, message in enumerate(messages[1:] if key else [], start=1):
        first = message.embeds[0]
        footer = str((first.get("footer") or {}).get("text") or "")
        marker = digest_marker(key, part)
        first["footer"] = {"text": f"{footer} · {marker}" if footer else marker}
    return messages


def reply_messages(reply: Reply) -> list[Message]:
    """A command reply as one or more messages of embeds."""
    items: list[Item] = []
    if reply.notice:
        items.append((text_embed(reply.notice, title="Heads up"), None))
    items.append((text_embed(("❌ " if reply.error else "") + reply.text), None))
    items += _cards(reply.cards, 1, reply.topic_id)
    if reply.digest is not None:
        items += _digest_items(reply.digest)
    return paginate(items, reply.subscribe_topic)
