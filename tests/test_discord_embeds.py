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
        ids = [custom_id(b.kind, b.value) for b in buttons]
        assert len(set(ids)) == len(ids)  # Discord refuses a custom_id twice in a message
        for embed in embeds:
            for f in embed.get("fields", []):
                assert 1 <= len(f["name"]) <= 256 and 1 <= len(f["value"]) <= 1024


@settings(max_examples=60, deadline=None)
@given(digests)
def test_digests_split_within_discord_limits_and_keep_every_paper(digest: Digest) -> None:
    messages = digest_messages(digest, key="7:2026-11-23")
    assert_within_limits(messages)
    papers = [c.paper_id for part in digest.sections for c in part.cards]
    shown = [card.paper_id for m in messages for _, card in m.cards]
    assert shown == papers
    # Papers of a section with a topic get ✓ and ✗ for it; every paper can be muted. (A
    # paper twice in a message gets its buttons once; the core never shows one twice.)
    if len(set(papers)) == len(papers):
        expected = [(c.paper_id, part.topic_id) for part in digest.sections for c in part.cards]
        mutes = [b.value for m in messages for b in m.buttons() if b.kind == "mute"]
        rels = [b.value for m in messages for b in m.buttons() if b.kind == "rel"]
        teach = [(p, t) for p, t in expected if t is not None and fits("mute", f"{t}:{p}")]
        assert rels == [f"{t}:{p}" for p, t in teach]
        assert mutes == [
            f"{t}:{p}" if (p, t) in teach else p for p, t in expected if fits("more", p)
        ]
    numbers = [n for m in messages for n, _ in m.cards]
    assert numbers == list(range(1, len(papers) + 1))
    if messages:
        assert messages[0].embeds[0]["footer"]["text"] == "paperbot digest 7:2026-11-23"


@settings(max_examples=60, deadline=None)
@given(replies)
def test_replies_within_limits(reply: Reply) -> None:
    assert_within_limits(reply_messages(reply))


def fits(kind: str, value: str) -> bool:
    return len(custom_id(kind, value)) <= MAX_CUSTOM_ID


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


def test_a_full_digest_gives_every_paper_its_three_buttons_within_limits() -> None:
    from tests.test_slack_blocks import full_digest

    digest = full_digest()
    messages = digest_messages(digest, key="7:2026-11-23")
    assert_within_limits(messages)
    by_kind: dict[str, list[str]] = {"rel": [], "mute": [], "more": []}
    for message in messages:
        for button in message.buttons():
            by_kind[button.kind].append(button.value)
        # A paper's ✓, ✗ and more share one row: five papers a message at most.
        rows = {
            b.row: [x.label.split("#")[1] for x in message.buttons() if x.row == b.row]
            for b in message.buttons()
        }
        assert all(len(set(numbers)) == 1 for numbers in rows.values())
    expected = [f"{100 + t}:2611.{t * 10 + i:05d}" for t in range(5) for i in range(10)]
    assert by_kind["rel"] == expected and by_kind["mute"] == expected
    assert by_kind["more"] == [value.split(":")[1] for value in expected]
    assert [b.label for b in messages[0].buttons()[:3]] == [
        "✓ Relevant #1",
        "✗ Not relevant #1",
        "More like #1",
    ]
    # Papers left out by learning are named in a field of their topic's header, briefly.
    fields = [f for m in messages for e in m.embeds for f in e.get("fields", [])]
    assert len(fields) == 5 and all(f["value"].startswith("Left out: “Left") for f in fields)


def test_a_look_up_of_a_followed_topic_fits_its_five_papers_in_one_message() -> None:
    reply = Reply("Top 5", cards=tuple(card(f"2611.0000{i}") for i in range(5)), topic_id=9)
    (message,) = reply_messages(reply)
    buttons = message.buttons()
    assert len(buttons) == 15 and {b.row for b in buttons} == {0, 1, 2, 3, 4}
    assert [(b.kind, b.value) for b in buttons[:3]] == [
        ("rel", "9:2611.00000"),
        ("mute", "9:2611.00000"),
        ("more", "2611.00000"),
    ]
