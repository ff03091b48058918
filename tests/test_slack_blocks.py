import json

from hypothesis import given, settings

from adapters.signals import signal_value
from adapters.slack_blocks import (
    LEFT_OUT_CHARS,
    MAX_ACTIONS,
    MAX_BLOCKS,
    MAX_BUTTON_TEXT,
    MAX_BUTTON_VALUE,
    MAX_CONTEXT,
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
            if block["type"] == "context":
                assert all(len(e["text"]) <= MAX_CONTEXT for e in block["elements"])
            if block["type"] == "actions":
                elements = block["elements"]
                assert 1 <= len(elements) <= MAX_ACTIONS
                action_ids = [e["action_id"] for e in elements]
                assert len(set(action_ids)) == len(action_ids)  # unique within the block
                assert all(len(e["value"]) <= MAX_BUTTON_VALUE for e in elements)
                assert all(1 <= len(e["text"]["text"]) <= MAX_BUTTON_TEXT for e in elements)


def values(messages: list, action_id: str) -> list[str]:  # type: ignore[type-arg]
    return [
        element["value"]
        for blocks in messages
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action_id
    ]


@settings(max_examples=60, deadline=None)
@given(digests)
def test_digests_split_within_slack_limits_and_keep_every_paper(digest: Digest) -> None:
    messages = digest_messages(digest)
    assert_within_limits(messages)
    # Every paper can be marked not relevant, for the topic of its section when it has one.
    assert values(messages, "not_relevant") == [
        signal_value(card.paper_id, part.topic_id)
        for part in digest.sections
        for card in part.cards
    ]
    assert values(messages, "relevant") == [
        f"{part.topic_id}:{card.paper_id}"
        for part in digest.sections
        if part.topic_id is not None
        for card in part.cards
    ]


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


def paper(n: int, long: bool = False) -> PaperCard:
    text = "S" * 300 if long else "s"
    return PaperCard(
        f"2611.{n:05d}",
        f"Paper {n}" + "T" * (150 if long else 0),
        "https://a.b/c",
        "A. One, B. Two et al.",
        "2026-11-20",
        12,
        text,
        "why " * 20,
        {},
    )


def full_digest() -> Digest:
    """The largest digest there is: 50 papers over five topics, each with papers left out."""
    sections = tuple(
        DigestSection(
            f"topic {t}",
            tuple(paper(t * 10 + i, long=True) for i in range(10)),
            more=7,
            topic_id=100 + t,
            left_out=("Left " * 40,) * 30,
        )
        for t in range(5)
    )
    return Digest(1, "2026-11-23", sections)


def test_a_full_digest_offers_relevant_and_not_relevant_for_each_paper_within_limits() -> None:
    digest = full_digest()
    messages = digest_messages(digest)
    assert_within_limits(messages)
    expected = [f"{100 + t}:2611.{t * 10 + i:05d}" for t in range(5) for i in range(10)]
    assert values(messages, "relevant") == expected
    assert values(messages, "not_relevant") == expected
    assert len(values(messages, "more_like_this")) == 50
    labels = {
        e["text"]["text"]
        for blocks in messages
        for block in blocks
        if block["type"] == "actions"
        for e in block["elements"]
    }
    assert labels == {"✓ Relevant", "✗ Not relevant", "More like this"}


def test_a_look_up_offers_relevant_only_under_a_topic_the_reader_follows() -> None:
    followed = reply_messages(Reply("Top 1", cards=(paper(1),), topic_id=7))
    assert values(followed, "relevant") == ["7:2611.00001"]
    assert values(followed, "not_relevant") == ["7:2611.00001"]
    unfollowed = reply_messages(Reply("Top 1", cards=(paper(1),), subscribe_topic="MoE"))
    assert values(unfollowed, "relevant") == []
    assert values(unfollowed, "not_relevant") == ["2611.00001"]  # mutes only
    assert values(unfollowed, "subscribe_topic") == ["MoE"]


def test_a_preview_says_briefly_what_learning_left_out() -> None:
    titles = ("<b>Sparse & dense</b>", *(f"Paper {n} " + "x" * 60 for n in range(40)))
    only_left_out = DigestSection("kv cache", (), topic_id=3, left_out=titles)
    preview = Reply("Your next digest", digest=Digest(1, "2026-11-23", (only_left_out,)))
    messages = reply_messages(preview)
    assert_within_limits(messages)
    (line,) = [
        e["text"]
        for blocks in messages
        for b in blocks
        if b["type"] == "context"
        for e in b["elements"]
    ]
    assert line.startswith("Left out: “&lt;b&gt;Sparse &amp; dense&lt;/b&gt;”, “Paper 0 ")
    assert line.endswith("more (close to papers you marked not relevant)")
    assert len(line) <= LEFT_OUT_CHARS
    big = reply_messages(Reply("Your next digest", digest=full_digest()))
    assert_within_limits(big)
