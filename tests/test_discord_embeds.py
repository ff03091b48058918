from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.discord_embeds import (
    MAX_DESCRIPTION,
    MAX_EMBEDS,
    MAX_MESSAGE_CHARS,
    MAX_TITLE,
    digest_messages,
    embed_size,
    reply_messages,
)
from bot.models import Digest, DigestSection, PaperCard, Reply

texts = st.text(max_size=5000)
cards = st.builds(
    PaperCard,
    paper_id=st.text(min_size=1, max_size=20),
    title=texts,
    url=st.one_of(st.none(), st.just("https://arxiv.org/abs/2401.00001")),
    authors=st.text(max_size=300),
    published=st.one_of(st.none(), st.just("2026-11-20")),
    upvotes=st.one_of(st.none(), st.integers(0, 10_000)),
    summary=texts,
    why=st.text(max_size=500),
    links=st.just({"pdf": "https://arxiv.org/pdf/2401.00001"}),
)
digests = st.builds(
    Digest,
    subscriber_id=st.just(1),
    local_date=st.just("2026-11-23"),
    sections=st.lists(
        st.builds(
            DigestSection,
            topic=st.text(min_size=1, max_size=300),
            cards=st.lists(cards, max_size=30).map(tuple),
            more=st.integers(0, 100),
        ),
        max_size=5,
    ).map(tuple),
)


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
@given(
    st.builds(Reply, text=texts, cards=st.lists(cards, max_size=10).map(tuple), error=st.booleans())
)
def test_replies_within_limits(reply: Reply) -> None:
    assert_within_limits(reply_messages(reply))


def test_paper_text_cannot_ping() -> None:
    card = PaperCard("1", "@everyone look", None, "@here", None, None, "[x](https://evil)", "", {})
    embed = reply_messages(Reply("hi", cards=(card,)))[0][1]
    assert "@everyone" not in embed["title"] and "@here" not in embed["description"]
    assert "](https://evil)" not in embed["description"]
