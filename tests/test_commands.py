from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import (
    Command,
    CommandError,
    Handler,
    parse_command,
    parse_days,
    parse_time,
    parse_tz,
)
from bot.importer import import_files
from bot.models import Caller, Reply
from bot.storage import Store
from tests.conftest import SEED

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
ALICE = Caller(platform="slack", user_id="U1", channel_id="C1", workspace="T1")
MANAGER = Caller(
    platform="slack", user_id="U2", channel_id="C1", workspace="T1", can_manage_channel=True
)


def ask(handler: Handler, caller: Caller, text: str, now: datetime) -> Reply:
    """What `PaperBot.run` does in the store thread with typed text."""
    return handler.handle(caller, parse_command(text), now)


@pytest.fixture
def handler(store: Store) -> Handler:
    import_files(store, [SEED], NOW)
    return Handler(store)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Command("help")),
        ("help", Command("help")),
        ("kv-cache", Command("lookup", arg="kv-cache")),
        ("search subscribe", Command("lookup", arg="subscribe")),
        ("subscribe  mixture of   experts", Command("subscribe", arg="mixture of experts")),
        ("SUB MoE", Command("subscribe", arg="MoE")),
        ("unsubscribe 2", Command("unsubscribe", arg="2")),
        ("list", Command("list")),
        ("channel subscribe PTQ", Command("subscribe", arg="PTQ", channel=True)),
        ("channel list", Command("list", channel=True)),
        ("channel settings tz UTC", Command("settings", arg="tz", value="UTC", channel=True)),
        ("digest", Command("digest")),
        ("settings", Command("settings")),
        ("settings time 09:00", Command("settings", arg="time", value="09:00")),
        ("settings timezone Europe/Berlin", Command("settings", arg="tz", value="Europe/Berlin")),
        ("pause", Command("settings", arg="pause")),
        ("feed", Command("feed")),
        ("FEED  Reset", Command("feed", arg="reset")),
        # Only `feed` and `feed reset` are the command; other words after it are a look-up,
        # and `feed` is no typo target: `seed images` is not a mistyped `feed images`.
        ("feed forward networks", Command("lookup", arg="feed forward networks")),
        ("seed images", Command("lookup", arg="seed images")),
        (
            "subscrbe kv-cache",
            Command("unknown", arg="subscrbe kv-cache", value="subscribe kv-cache"),
        ),
    ],
)
def test_parse_command(text: str, expected: Command) -> None:
    assert parse_command(text) == expected


READS = (
    "kv-cache",
    "settings",
    "list",
    "channel settings",
    "channel list",
    "x" * 2001,
    "feed",
    "feed reset",
)
OWN_CHANGES = ("follow LoRA", "unfollow 1", "pause", "settings tz UTC")
CHANNEL_CHANGES = ("channel subscribe MoE", "channel unsub 1", "channel settings max 3")


def test_a_command_says_what_it_changes_and_what_it_needs() -> None:
    for text in READS + OWN_CHANGES + CHANNEL_CHANGES:
        command = parse_command(text)
        assert command.changes_subscriptions is (text not in READS), text
        assert command.needs_channel_permission is (text in CHANNEL_CHANGES), text


def test_any_text_parses_and_too_long_text_is_answered_by_the_handler(handler: Handler) -> None:
    command = parse_command("subscribe " + "x" * 2000)
    assert command.action == "invalid"
    reply = handler.handle(ALICE, command, NOW)
    assert reply.error and "a command can be at most 2000" in reply.text


def test_parse_values() -> None:
    assert parse_time("9") == "09:00"
    assert parse_time("5:15pm") == "17:15"
    assert parse_time("12am") == "00:00"
    for bad in ("25:00", "9:61", "13pm", "noon", "", "0900"):
        with pytest.raises(CommandError):
            parse_time(bad)
    assert parse_tz("europe/berlin") == "Europe/Berlin"
    assert parse_tz("utc") == "UTC"
    with pytest.raises(CommandError, match="Europe/Berlin"):
        parse_tz("Europe/Berln")
    assert parse_days("mon-fri") == (0, 1, 2, 3, 4)
    assert parse_days("fri-mon") == (0, 4, 5, 6)
    assert parse_days("Mon, Wed,fri") == (0, 2, 4)
    assert parse_days("daily") == tuple(range(7))
    for bad in ("someday", ",", " , ,"):
        with pytest.raises(CommandError):
            parse_days(bad)


def test_subscribe_list_unsubscribe_round_trip(handler: Handler) -> None:
    reply = ask(handler, ALICE, "subscribe kv-cache", NOW)
    assert not reply.error and "Subscribed to `kv-cache`" in reply.text
    assert "already" in ask(handler, ALICE, "subscribe KV-Cache", NOW).text
    ask(handler, ALICE, "subscribe mixture of experts", NOW)
    listed = ask(handler, ALICE, "list", NOW).text
    assert "1. kv-cache" in listed and "2. mixture of experts" in listed
    assert "Unsubscribed from `kv-cache`" in ask(handler, ALICE, "unsubscribe 1", NOW).text
    assert "1. mixture of experts" in ask(handler, ALICE, "list", NOW).text
    bad = ask(handler, ALICE, "unsubscribe 7", NOW)
    assert bad.error and "no topic number 7" in bad.text


def test_lookup_gives_cards_with_why(handler: Handler) -> None:
    reply = ask(handler, ALICE, "kv-cache", NOW)
    assert not reply.error and len(reply.cards) == 5
    assert all(card.why for card in reply.cards)
    assert reply.subscribe_topic == "kv-cache"


def test_settings_change_and_validation(handler: Handler) -> None:
    assert ask(handler, ALICE, "settings tz Europe/Berlin", NOW).text.startswith("Saved.")
    reply = ask(handler, ALICE, "settings time 7:30", NOW)
    assert "07:30 (Europe/Berlin)" in reply.text
    assert "mon,wed" in ask(handler, ALICE, "settings days mon,wed", NOW).text
    assert "up to 3 papers" in ask(handler, ALICE, "settings max 3", NOW).text
    assert "paused" in ask(handler, ALICE, "settings pause", NOW).text
    for bad in (
        "settings tz Mars/Olympus",
        "settings max 0",
        "settings max 999",
        "settings time",
        "settings colour blue",
        "settings days",
        "settings days ,",
        "settings days , ,",
    ):
        reply = ask(handler, ALICE, bad, NOW)
        assert reply.error, bad
    # Nothing of the bad input changed the saved settings.
    assert (
        "07:30 (Europe/Berlin), mon,wed, up to 3 papers; paused"
        in ask(handler, ALICE, "settings", NOW).text
    )


def test_channel_subscriptions_need_a_manager(handler: Handler) -> None:
    refused = ask(handler, ALICE, "channel subscribe MoE", NOW)
    assert refused.error and "manage this channel" in refused.text
    assert "No topics yet" in ask(handler, ALICE, "channel list", NOW).text
    assert not ask(handler, MANAGER, "channel subscribe MoE", NOW).error
    assert "1. MoE" in ask(handler, ALICE, "channel list", NOW).text
    assert ask(handler, ALICE, "channel unsubscribe MoE", NOW).error
    assert ask(handler, ALICE, "channel settings max 3", NOW).error
    assert not ask(handler, MANAGER, "channel unsubscribe 1", NOW).error


def test_topic_limits(handler: Handler) -> None:
    assert ask(handler, ALICE, "subscribe " + "x" * 400, NOW).error
    assert ask(handler, ALICE, 'subscribe "', NOW).error
    for n in range(20):
        assert not ask(handler, ALICE, f"subscribe topic{n}", NOW).error
    full = ask(handler, ALICE, "subscribe one more", NOW)
    assert full.error and "20 topics" in full.text


def test_unknown_and_misspelled(handler: Handler) -> None:
    reply = ask(handler, ALICE, "subscrbe kv-cache", NOW)
    assert reply.error and "/papers subscribe kv-cache" in reply.text
    assert "paperbot" in ask(handler, ALICE, "", NOW).text


def test_undeliverable_notice_once(handler: Handler) -> None:
    ask(handler, ALICE, "subscribe MoE", NOW)
    subscriber = handler.store.subscribers.find("slack", "user", "U1", "T1")
    assert subscriber is not None
    handler.store.subscribers.set_undeliverable(subscriber.id, "DMs closed")
    first = ask(handler, ALICE, "list", NOW)
    assert first.notice and "DMs closed" in first.notice
    assert ask(handler, ALICE, "list", NOW).notice is None


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=300))
def test_any_text_gives_a_reply(handler: Handler, text: str) -> None:
    for prefix in ("", "subscribe ", "unsubscribe ", "settings ", "channel ", "settings tz "):
        reply = ask(handler, MANAGER, prefix + text, NOW)
        assert reply.text


# -- "Next:" is when the digest really comes -------------------------------------------------------

WEDNESDAY_1652 = datetime(2026, 12, 2, 16, 52, tzinfo=UTC)


def test_a_new_subscriber_is_promised_tomorrow_not_a_time_already_past(handler: Handler) -> None:
    # Subscribing never sends at once: the first digest comes at the next digest time.
    reply = ask(handler, ALICE, "subscribe MoE", WEDNESDAY_1652)
    assert "Next: Thu 03 Dec 09:00." in reply.text
    reply = ask(handler, ALICE, "settings time 7:30am", WEDNESDAY_1652)
    assert "Next: Thu 03 Dec 07:30." in reply.text  # was "Wed 02 Dec 07:30", already past
    assert "Next: Thu 03 Dec 07:30." in ask(handler, ALICE, "list", WEDNESDAY_1652).text


def test_moving_the_time_before_now_sends_todays_digest_at_once(handler: Handler) -> None:
    # Following topics since yesterday, with today's 18:00 digest not yet sent.
    ask(handler, ALICE, "subscribe MoE", WEDNESDAY_1652.replace(day=1))
    ask(handler, ALICE, "settings time 18:00", WEDNESDAY_1652.replace(day=1))
    reply = ask(handler, ALICE, "settings time 7:30", WEDNESDAY_1652)
    assert "Next: today, within a minute." in reply.text


def test_a_misspelled_setting_suggests_the_command_without_a_stray_space(
    handler: Handler,
) -> None:
    ask(handler, ALICE, "subscribe MoE", NOW)
    assert "Did you mean `settings time`?" in ask(handler, ALICE, "settings tme", NOW).text
    reply = ask(handler, ALICE, "settings tme 9:00", NOW)
    assert "Did you mean `settings time 9:00`?" in reply.text
