import json

from hypothesis import given, settings

from adapters.slack_blocks import (
    MAX_BLOCKS,
    MAX_HEADER,
    MAX_MESSAGE_CHARS,
    MAX_SECTION,
    digest_messages,
    escape,
    reply_messages,
)
from bot.models import Digest, DigestSection, PaperCard, Reply
from tests.strategies import digests, replies


def assert_within_limits(messages: list) -> None:  # type: ignore[type-arg]
    for blocks in messages:
        assert 1 <= len(blocks) <= MAX_BLOCKS
        assert len(json.dumps(blocks, ensure_ascii=False)) <= MAX_MESSAGE_CHARS
        for block in blocks:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= MAX_SECTION
            if block["type"] == "header":
                assert 1 <= len(block["text"]["text"]) <= MAX_HEADER


@settings(max_examples=60, deadline=None)
@given(digests)
def test_digests_split_within_slack_limits_and_keep_every_paper(digest: Digest) -> None:
    messages = digest_messages(digest)
    assert_within_limits(messages)
    buttons = [
        element["value"]
        for blocks in messages
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == "not_relevant"
    ]
    assert buttons == [card.paper_id for part in digest.sections for card in part.cards]


@settings(max_examples=60, deadline=None)
@given(replies)
def test_replies_within_limits(reply: Reply) -> None:
    assert_within_limits(reply_messages(reply))


def test_paper_text_cannot_ping_or_link() -> None:
    card = PaperCard(
        paper_id="1",
        title="<!channel> & <https://evil.example|click>",
        url="https://arxiv.org/abs/1",
        authors="A <@U123>",
        published=None,
        upvotes=None,
        summary="x > y",
        why="",
        links={},
    )
    text = reply_messages(Reply("hi", cards=(card,)))[0][1]["text"]["text"]
    assert "<!channel>" not in text and "<@U123>" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example" in text
    assert "x &gt; y" in text
    assert escape("<&>") == "&lt;&amp;&gt;"


def test_a_long_digest_becomes_several_messages() -> None:
    card = PaperCard("2401.1", "T" * 200, "https://a.b/c", "A", None, 3, "S" * 600, "why", {})
    digest = Digest(1, "2026-11-23", (DigestSection("kv cache", (card,) * 40, more=5),))
    messages = digest_messages(digest)
    assert len(messages) > 1
    assert_within_limits(messages)
    assert "…and 5 more" in json.dumps(messages[-1], ensure_ascii=False)


def test_core_markup_is_rendered_per_platform() -> None:
    from adapters.console import render_reply
    from adapters.discord_embeds import reply_messages as discord_messages
    from bot.commands import HELP
    from bot.markup import spans

    help_reply = Reply(HELP)
    slack = json.dumps(reply_messages(help_reply))
    assert "*paperbot* finds" in slack and "**" not in slack
    discord = discord_messages(help_reply)[0].embeds[0]["description"]
    assert discord.startswith("**paperbot** finds")  # Discord's bold; `*x*` is its italics
    assert render_reply(help_reply).startswith("paperbot finds")
    # Inside a code span nothing is a mark: a topic shows as typed.
    assert spans("Subscribed to `**x**` **now**") == [
        ("text", "Subscribed to "),
        ("code", "**x**"),
        ("text", " "),
        ("bold", "now"),
    ]
    assert "`**x**`" in json.dumps(reply_messages(Reply("to `**x**`")))
