from hypothesis import given, settings

from adapters.discord_embeds import (
    MAX_CUSTOM_ID,
    MAX_DESCRIPTION,
    MAX_EMBEDS,
    MAX_MESSAGE_CHARS,
    MAX_ROW_BUTTONS,
    MAX_ROWS,
    MAX_TITLE,
    Message,
    custom_id,
    digest_messages,
    embed_size,
    reply_messages,
)
from bot.models import Digest, PaperCard, Reply
from tests.strategies import digests, replies


def assert_within_limits(messages: list[Message]) -> None:
    for message in messages:
        embeds = message.embeds
        assert 1 <= len(embeds) <= MAX_EMBEDS
        assert sum(embed_size(e) for e in embeds) <= MAX_MESSAGE_CHARS
        for embed in embeds:
            assert len(embed.get("title", "")) <= MAX_TITLE
            assert 1 <= len(embed.get("description", "")) <= MAX_DESCRIPTION
        buttons = message.buttons()
        rows = [b.row for b in buttons]
        assert all(0 <= r < MAX_ROWS for r in rows)
        assert all(rows.count(r) <= MAX_ROW_BUTTONS for r in set(rows))
        assert all(len(custom_id(b.kind, b.value)) <= MAX_CUSTOM_ID for b in buttons)
        assert all(1 <= len(b.label) <= 80 for b in buttons)


@settings(max_examples=60, deadline=None)
@given(digests)
def test_digests_split_within_discord_limits_and_keep_every_paper(digest: Digest) -> None:
    messages = digest_messages(digest, key="7:2026-11-23")
    assert_within_limits(messages)
    papers = [c.paper_id for part in digest.sections for c in part.cards]
    shown = [card.paper_id for m in messages for _, card in m.cards]
    assert shown == papers
    numbers = [n for m in messages for n, _ in m.cards]
    assert numbers == list(range(1, len(papers) + 1))
    if messages:
        assert messages[0].embeds[0]["footer"]["text"] == "paperbot digest 7:2026-11-23"


@settings(max_examples=60, deadline=None)
@given(replies)
def test_replies_within_limits(reply: Reply) -> None:
    assert_within_limits(reply_messages(reply))


def card(paper_id: str) -> PaperCard:
    return PaperCard(paper_id, f"Paper {paper_id}", None, "", None, None, "", "", {})


def test_every_paper_of_a_full_message_gets_both_buttons_and_the_topic_one() -> None:
    reply = Reply("Top papers", cards=tuple(card(str(i)) for i in range(9)), subscribe_topic="MoE")
    (message,) = reply_messages(reply)
    buttons = message.buttons()
    assert (buttons[0].kind, buttons[0].value, buttons[0].row) == ("sub", "MoE", 0)
    assert [b.label for b in buttons[1:3]] == ["More like #1", "Not relevant #1"]
    assert len([b for b in buttons if b.kind == "mute"]) == 9
    assert message.embeds[1]["title"] == "1. Paper 0"


def test_a_topic_too_long_for_a_custom_id_gets_no_subscribe_button() -> None:
    reply = Reply("Top papers", cards=(card("1"),), subscribe_topic="x" * 120)
    assert [b.kind for b in reply_messages(reply)[0].buttons()] == ["more", "mute"]


def test_paper_text_cannot_ping() -> None:
    card = PaperCard("1", "@everyone look", None, "@here", None, None, "[x](https://evil)", "", {})
    embed = reply_messages(Reply("hi", cards=(card,)))[0].embeds[1]
    assert "@everyone" not in embed["title"] and "@here" not in embed["description"]
    assert "](https://evil)" not in embed["description"]
