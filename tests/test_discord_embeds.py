from hypothesis import given, settings

from adapters.discord_embeds import (
    MAX_DESCRIPTION,
    MAX_EMBEDS,
    MAX_MESSAGE_CHARS,
    MAX_TITLE,
    digest_messages,
    embed_size,
    reply_messages,
)
from bot.models import Digest, PaperCard, Reply
from tests.strategies import digests, replies


def assert_within_limits(messages: list) -> None:  # type: ignore[type-arg]
    for embeds in messages:
        assert 1 <= len(embeds) <= MAX_EMBEDS
        assert sum(embed_size(e) for e in embeds) <= MAX_MESSAGE_CHARS
        for embed in embeds:
            assert len(embed.get("title", "")) <= MAX_TITLE
            assert 1 <= len(embed.get("description", "")) <= MAX_DESCRIPTION


@settings(max_examples=60, deadline=None)
@given(digests)
def test_digests_split_within_discord_limits_and_keep_every_paper(digest: Digest) -> None:
    messages = digest_messages(digest)
    assert_within_limits(messages)
    shown = [e["footer"]["text"] for m in messages for e in m if "footer" in e]
    assert shown == [c.paper_id for part in digest.sections for c in part.cards]


@settings(max_examples=60, deadline=None)
@given(replies)
def test_replies_within_limits(reply: Reply) -> None:
    assert_within_limits(reply_messages(reply))


def test_paper_text_cannot_ping() -> None:
    card = PaperCard("1", "@everyone look", None, "@here", None, None, "[x](https://evil)", "", {})
    embed = reply_messages(Reply("hi", cards=(card,)))[0][1]
    assert "@everyone" not in embed["title"] and "@here" not in embed["description"]
    assert "](https://evil)" not in embed["description"]
