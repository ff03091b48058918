"""Hypothesis strategies for paperbot's plain data, shared by the renderer property tests."""

from hypothesis import strategies as st

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
            topic_id=st.one_of(st.none(), st.integers(1, 10**12)),
            left_out=st.lists(texts, max_size=8).map(tuple),
        ),
        max_size=5,
    ).map(tuple),
)
replies = st.builds(
    Reply,
    text=texts,
    cards=st.lists(cards, max_size=10).map(tuple),
    error=st.booleans(),
    topic_id=st.one_of(st.none(), st.integers(1, 10**12)),
)
