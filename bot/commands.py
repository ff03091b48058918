"""The `/papers` command language: one parser and one handler for every platform.

`parse_command` turns the text after `/papers` into a `Command` (adapters with typed options, and
buttons, build the `Command` themselves); `Handler.handle` runs it for a `Caller` against the
store and returns a `Reply` (plain data each adapter renders). Every domain error becomes a
friendly reply there, in one place, so adapters never see a traceback.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import re
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, get_args
from zoneinfo import ZoneInfo

from bot import feeds
from bot.cards import card_from_hit
from bot.digests.schedule import next_send, subscribed_at
from bot.errors import PaperbotError
from bot.learning import load_profiles
from bot.models import (
    WEEKDAYS,
    Caller,
    DigestSettings,
    Paper,
    Reply,
    SearchHit,
    Subscriber,
    TopicSubscription,
)
from bot.search import like_paper, search
from bot.storage import SignalCount, Store
from bot.subscriptions import MAX_TOPICS, NotFound, Subscriptions
from bot.topics import MAX_TOPIC_CHARS

if TYPE_CHECKING:
    from bot.semantic import Semantic

log = logging.getLogger(__name__)

LOOKUP_LIMIT = 5
MAX_PAPERS_LIMIT = 50
MAX_COMMAND_CHARS = 2000
UNKNOWN_PAPER = "I don't know that paper any more."


class CommandError(PaperbotError):
    """A command that cannot be carried out as typed; the message says what to do instead."""


# What a command does: what `/papers` text (and Discord's subcommands) can ask, what only
# buttons ask ("not relevant", "more like this"), and text that is no command.
TypedAction = Literal[
    "lookup", "subscribe", "unsubscribe", "list", "digest", "settings", "help", "forget", "feed"
]
# "relevant" and "mute" ("not relevant") teach the topic a paper was shown under (`topic_id`).
ButtonAction = Literal["mute", "more", "relevant"]
Action = TypedAction | ButtonAction | Literal["unknown", "invalid"]
SettingsField = Literal["time", "tz", "days", "max", "pause", "resume"]
SETTINGS_FIELDS: tuple[SettingsField, ...] = get_args(SettingsField)


@dataclass(frozen=True)
class Command:
    """A `/papers` command, parsed from text or built by an adapter (typed options, buttons).

    `channel` marks the `channel ...` forms. `arg` is the topic or query, the unsubscribe or
    forget target, the settings field, `reset` (or "") for `feed`, or the paper id of
    `relevant`, `mute` ("not relevant") and `more` ("more like this"); `value` is the settings
    value. `topic_id` is the topic subscription a paper was shown under, which `relevant` and
    `mute` teach. `unknown` carries in `value` the command the user probably meant; `invalid`
    carries in `value` what is wrong with the text.
    """

    action: Action
    arg: str = ""
    value: str = ""
    channel: bool = False
    topic_id: int | None = None

    @property
    def changes_subscriptions(self) -> bool:
        """Whether running it may change topics or settings (a view of them is then stale)."""
        if self.action == "settings":
            return bool(self.arg)  # a bare `settings` only shows them
        return self.action in ("subscribe", "unsubscribe", "forget")

    @property
    def needs_channel_permission(self) -> bool:
        """Whether the caller must manage the channel (adapters check only then: it may cost)."""
        return self.channel and self.changes_subscriptions


ACTIONS = (
    "subscribe",
    "unsubscribe",
    "list",
    "digest",
    "settings",
    "help",
    "search",
    "channel",
    "forget",
    "relevant",
    "not-relevant",
)
_ALIASES = {
    "sub": "subscribe",
    "follow": "subscribe",
    "unsub": "unsubscribe",
    "unfollow": "unsubscribe",
    "ls": "list",
    "topics": "list",
    "preview": "digest",
    "setting": "settings",
    "config": "settings",
    "pause": "settings",
    "resume": "settings",
    "?": "help",
    "find": "search",
    "lookup": "search",
    "notrelevant": "not-relevant",
    "irrelevant": "not-relevant",
}
# Command words that take the rest of the text as their argument, and the action each names.
_PLAIN_ACTIONS: dict[str, Action] = {
    "subscribe": "subscribe",
    "unsubscribe": "unsubscribe",
    "list": "list",
    "digest": "digest",
    "help": "help",
    "search": "lookup",
    "forget": "forget",
    "relevant": "relevant",
    "not-relevant": "mute",
}
_CHANNEL_ACTIONS: dict[str, Action] = {
    "subscribe": "subscribe",
    "unsubscribe": "unsubscribe",
    "list": "list",
    "forget": "forget",
}
_SETTINGS_ALIASES = {"timezone": "tz", "zone": "tz", "day": "days", "limit": "max", "hour": "time"}


def _first_word(text: str) -> tuple[str, str]:
    parts = text.split(None, 1)
    return (parts[0].lower(), parts[1].strip() if len(parts) > 1 else "") if parts else ("", "")


def _closest(word: str, choices: tuple[str, ...]) -> str | None:
    found = difflib.get_close_matches(word, choices, n=1, cutoff=0.75)
    return found[0] if found else None


def parse_command(text: str) -> Command:
    """Parse the text after `/papers`; any text gives a `Command` (too long: `invalid`)."""
    if len(text) > MAX_COMMAND_CHARS:
        return Command(
            "invalid",
            value=f"That is {len(text)} characters; a command can be at most {MAX_COMMAND_CHARS}.",
        )
    text = " ".join(text.split())
    word, rest = _first_word(text)
    if not word:
        return Command("help")
    action = _ALIASES.get(word, word)
    if word in ("pause", "resume"):
        return Command("settings", arg=word)
    if word == "not" and rest.lower().startswith("relevant"):  # "not relevant 3"
        return Command("mute", arg=rest[len("relevant") :].strip())
    if action == "channel":
        sub, sub_rest = _first_word(rest)
        sub = _ALIASES.get(sub, sub)
        if sub in _CHANNEL_ACTIONS:
            return Command(_CHANNEL_ACTIONS[sub], arg=sub_rest, channel=True)
        if sub == "settings":
            field, value = _first_word(sub_rest)
            field = _SETTINGS_ALIASES.get(field, field)
            return Command("settings", arg=field, value=value, channel=True)
        return Command("unknown", arg=text, value="channel subscribe <topic>")
    if action == "settings":
        field, value = _first_word(rest)
        field = _SETTINGS_ALIASES.get(field, field)
        return Command("settings", arg=field, value=value)
    if action in _PLAIN_ACTIONS:
        return Command(_PLAIN_ACTIONS[action], arg=rest)
    if word == "feed" and rest.lower() in ("", "reset"):
        # Only these two forms: `/papers feed forward networks` is a look-up. Nor is `feed` a
        # typo target below, or `seed images` would be taken for a mistyped `feed images`.
        return Command("feed", arg=rest.lower())
    # A mistyped command word ("subscrbe kv-cache") is better answered with a suggestion
    # than with a look-up for "subscrbe".
    guess = _closest(word, ACTIONS + tuple(_ALIASES))
    if guess and rest:
        guessed = _ALIASES.get(guess, guess)
        return Command("unknown", arg=text, value=f"{guessed} {rest}")
    return Command("lookup", arg=text)


# -- settings values -------------------------------------------------------------------------

_TIME = re.compile(r"^([0-9]{1,2})(?::([0-9]{2}))?\s*(am|pm)?$")
_DAY_SETS = {
    "daily": tuple(range(7)),
    "everyday": tuple(range(7)),
    "every day": tuple(range(7)),
    "all": tuple(range(7)),
    "weekdays": (0, 1, 2, 3, 4),
    "workdays": (0, 1, 2, 3, 4),
    "weekends": (5, 6),
    "weekend": (5, 6),
}


def parse_time(value: str) -> str:
    """`9`, `9:30`, `09:30`, `9am`, `5:15pm` -> `HH:MM` (24-hour)."""
    match = _TIME.match(value.strip().lower())
    if not match:
        raise CommandError(
            f"`{value}` is not a time. Use 24-hour `HH:MM`, e.g. `09:00` or `17:30`."
        )
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    meridiem = match.group(3)
    if meridiem:
        if not 1 <= hour <= 12:
            raise CommandError(f"`{value}` is not a time: with am/pm the hour is 1 to 12.")
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise CommandError(f"`{value}` is not a time of day (00:00 to 23:59).")
    return f"{hour:02d}:{minute:02d}"


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def parse_tz(value: str) -> str:
    """A known IANA time zone name (case-insensitive), e.g. `Europe/Berlin`."""
    name = value.strip().replace(" ", "_")
    if name.upper() in ("UTC", "GMT", "Z"):
        return "UTC"
    found = _zones().get(name.lower())
    if found is None:
        close = difflib.get_close_matches(name.lower(), list(_zones()), n=1, cutoff=0.8)
        hint = f" Did you mean `{_zones()[close[0]]}`?" if close else ""
        raise CommandError(
            f"`{value[:60]}` is not a time zone I know.{hint} "
            "Use an IANA name such as `Europe/Berlin` or `America/New_York`."
        )
    return found


def _day(name: str) -> int:
    key = name.strip().lower()[:3]
    if key not in WEEKDAYS:
        raise CommandError(f"`{name[:20]}` is not a day. Use mon, tue, wed, thu, fri, sat, sun.")
    return WEEKDAYS.index(key)


def parse_days(value: str) -> tuple[int, ...]:
    """`mon-fri`, `weekdays`, `daily`, `mon,wed,fri`, `sat-sun` -> sorted weekday numbers."""
    text = " ".join(value.lower().split())
    if text in _DAY_SETS:
        return _DAY_SETS[text]
    days: set[int] = set()
    for part in re.split(r"[,\s]+", text):
        if not part:
            continue
        if "-" in part:
            start_name, _, end_name = part.partition("-")
            start, end = _day(start_name), _day(end_name)
            span = range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)]
            days.update(span)
        else:
            days.add(_day(part))
    if not days:  # "" or only separators (", ,")
        raise CommandError("Which days? For example `mon-fri`, `daily` or `mon,wed,fri`.")
    return tuple(sorted(days))


def parse_max(value: str) -> int:
    """A digest size from 1 to MAX_PAPERS_LIMIT."""
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_PAPERS_LIMIT:
        raise CommandError(f"`max` takes a number from 1 to {MAX_PAPERS_LIMIT}, e.g. `max 10`.")
    return int(value)


# -- replies ---------------------------------------------------------------------------------

HELP = """\
**paperbot** finds new research papers on your topics and sends you a daily digest.
• `/papers <topic>`: look up papers now, e.g. `/papers kv-cache` or `/papers MoE -vision`
• `/papers subscribe <topic>`: get new papers on a topic in your daily digest (by DM)
• `/papers unsubscribe <topic or number>` · `/papers list`: your topics and settings
• `/papers digest`: preview your next digest now
• `/papers feed`: your digests as a private Atom feed for a feed reader;
  `/papers feed reset` gives it a new address (the old one stops working)
• Mark papers ✓ relevant or ✗ not relevant (buttons under each paper): the topic they were
  shown under learns what you mean by it. `/papers forget <topic or number>` clears that.
• `/papers settings`: show them; `settings time 09:00`, `settings tz Europe/Berlin`,
  `settings days mon-fri`, `settings max 10`, `settings pause` / `resume`
• `/papers channel subscribe <topic>` · `channel unsubscribe …` · `channel list` ·
  `channel settings …` · `channel forget …`: digests for this channel (channel managers only;
  every member's ✓/✗ teaches the channel's topics)
Topics understand acronyms (MoE, PTQ, PEFT, LoRA…), British spelling, `"exact phrases"`,
`a OR b`, `-exclusions`, `author:"Name"` and `cat:cs.LG`."""


def _describe_settings(
    subscriber: Subscriber, topics: Sequence[TopicSubscription], now: datetime
) -> str:
    s = subscriber.settings
    state = "paused" if s.paused else "active"
    text = (
        f"Digest at {s.digest_time} ({s.tz}), {s.describe_days()}, up to {s.max_papers} papers;"
        f" {state}."
    )
    if subscriber.next_due_at and not s.paused and topics:
        # The moment the digest tick will really send, by the tick's own rule.
        due, _ = next_send(s, subscriber.next_due_at, subscribed_at(subscriber, topics), now)
        if due <= now:
            text += " Next: today, within a minute."
        else:
            text += f" Next: {due.astimezone(ZoneInfo(s.tz)):%a %d %b %H:%M}."
    return text


class Handler:
    """Runs commands against one store (call it from the store's worker thread)."""

    def __init__(
        self, store: Store, semantic: Semantic | None = None, public_url: str = feeds.DEFAULT_BASE
    ) -> None:
        self.store = store
        self.subs = Subscriptions(store, semantic)
        self.semantic = semantic  # the semantic extra, when loaded
        self.public_url = public_url  # the base of the feeds' addresses

    def handle(self, caller: Caller, command: Command, now: datetime) -> Reply:
        """Run a command; a domain error becomes an error reply here, the only place it does."""
        try:
            reply = self._dispatch(caller, command, now)
        except PaperbotError as exc:
            reply = Reply(str(exc), error=True)
        notice = self._undeliverable_notice(caller)
        return replace(reply, notice=notice) if notice else reply

    def _dispatch(self, caller: Caller, command: Command, now: datetime) -> Reply:
        match command.action:
            case "help":
                return Reply(HELP)
            case "lookup":
                return self.lookup(caller, command.arg, now)
            case "subscribe":
                return self.subscribe(caller, command.arg, command.channel, now)
            case "unsubscribe":
                return self.unsubscribe(caller, command.arg, command.channel, now)
            case "list":
                return self.list_topics(caller, command.channel, now)
            case "digest":
                return self.digest_preview(caller, now)
            case "settings":
                return self.settings(caller, command.arg, command.value, command.channel, now)
            case "mute":
                return self.mute(caller, command.arg, now, command.topic_id)
            case "relevant":
                return self.relevant(caller, command.arg, now, command.topic_id)
            case "forget":
                return self.forget(caller, command.arg, command.channel)
            case "feed":
                return self.feed(caller, reset=command.arg == "reset")
            case "more":
                return self.more_like(caller, command.arg, now)
            case "invalid":
                raise CommandError(command.value)
            case "unknown":
                raise CommandError(
                    f"I don't know that command. Did you mean `/papers {command.value}`? "
                    "`/papers help` lists them all."
                )

    # -- subscribers -----------------------------------------------------------------------

    def _subscriber(self, caller: Caller, channel: bool, now: datetime) -> Subscriber:
        if channel:
            if not caller.channel_id:
                raise CommandError("Channel subscriptions work only inside a channel.")
            return self.subs.get_or_create(
                caller.platform, "channel", caller.channel_id, caller.workspace, now
            )
        return self.subs.get_or_create(
            caller.platform, "user", caller.user_id, caller.workspace, now
        )

    def _existing(self, caller: Caller, channel: bool) -> Subscriber | None:
        kind, address = ("channel", caller.channel_id) if channel else ("user", caller.user_id)
        if not address:
            return None
        return self.store.subscribers.find(caller.platform, kind, address, caller.workspace)

    @staticmethod
    def _require_manager(caller: Caller) -> None:
        if not caller.can_manage_channel:
            raise CommandError(
                "Only people who manage this channel can change its subscriptions "
                "(see `/papers help`). You can subscribe for yourself with `/papers subscribe`."
            )

    def _undeliverable_notice(self, caller: Caller) -> str | None:
        subscriber = self._existing(caller, channel=False)
        if subscriber is None or subscriber.undeliverable is None:
            return None
        reason = self.subs.clear_undeliverable(subscriber.id)
        log.info("subscriber %s is back after an undeliverable digest", subscriber.label)
        return (
            f"I could not deliver your last digest ({reason}), so I stopped sending. "
            "Now that you are back I will try again; make sure I can send you messages."
        )

    # -- actions ---------------------------------------------------------------------------

    def _unmuted(self, caller: Caller, find: Callable[[int], list[SearchHit]]) -> list[SearchHit]:
        """The first `LOOKUP_LIMIT` hits `find(limit)` gives that the caller has not muted."""
        subscriber = self._existing(caller, channel=False)
        muted = self.store.subscribers.muted(subscriber.id) if subscriber is not None else set()
        # Room for muted papers to drop out; every extra result costs scoring time.
        hits = find(LOOKUP_LIMIT + min(len(muted), 10))
        return [h for h in hits if h.paper.id not in muted][:LOOKUP_LIMIT]

    def lookup(self, caller: Caller, query: str, now: datetime) -> Reply:
        """Top papers for a topic, with why each matched."""
        if not query.strip():
            return Reply(HELP)
        topic = self._followed(caller, query)
        profile = load_profiles(self.store, [topic.id]).get(topic.id) if topic else None
        hits = self._unmuted(
            caller,
            lambda limit: search(
                self.store,
                query,
                limit=limit,
                today=now.date(),
                semantic=self.semantic,
                profile=profile,
            ),
        )
        topic_id = topic.id if topic else None
        if not hits:
            return Reply(
                f"No papers on `{query}` in the store yet. Try other words, an acronym or its "
                "expansion, or subscribe to hear about new ones.",
                subscribe_topic=None if topic_id else query,
            )
        return Reply(
            f"Top {len(hits)} papers for `{query}`:",
            cards=tuple(card_from_hit(h) for h in hits),
            subscribe_topic=None if topic_id else query,
            topic_id=topic_id,
        )

    def _followed(self, caller: Caller, query: str) -> TopicSubscription | None:
        """The caller's (or, in a channel, the channel's) subscription to this very topic."""
        for channel in (False, True):
            subscriber = self._existing(caller, channel)
            topic = self.subs.followed(subscriber.id, query) if subscriber else None
            if topic is not None:
                return topic
        return None

    def more_like(self, caller: Caller, paper_id: str, now: datetime) -> Reply:
        """ "More like this": papers like one the caller was shown, less those they muted."""
        paper = self.store.papers.get(paper_id)
        if paper is None:
            return Reply(UNKNOWN_PAPER, error=True)
        hits = self._unmuted(
            caller, lambda limit: like_paper(self.store, paper, limit, now.date(), self.semantic)
        )
        if not hits:
            return Reply(f"I have nothing else like “{paper.title}” yet.")
        return Reply(f"Papers like “{paper.title}”:", cards=tuple(card_from_hit(h) for h in hits))

    def mute(
        self, caller: Caller, paper_id: str, now: datetime, topic_id: int | None = None
    ) -> Reply:
        """ "Not relevant": the paper leaves the caller's future digests and look-ups, and the
        topic it was shown under learns to leave out papers like it."""
        paper = self._marked_paper(paper_id)
        topic = None
        if topic_id is not None:
            # Unsubscribed since it was shown: the paper is still muted.
            with contextlib.suppress(NotFound):
                topic = self.subs.teach(caller, topic_id, paper, False, now)
        subscriber = self._subscriber(caller, channel=False, now=now)
        self.store.subscribers.mute(subscriber.id, paper.id, now)
        text = f"Got it: I won't show you “{paper.title}” again."
        if topic is not None:
            text += f" `{topic.text}` will leave out papers like it."
        return Reply(text)

    def relevant(self, caller: Caller, paper_id: str, now: datetime, topic_id: int | None) -> Reply:
        """ "Relevant": the topic the paper was shown under learns to bring papers like it."""
        paper = self._marked_paper(paper_id)
        if topic_id is None:
            raise CommandError(
                "Marking a paper relevant teaches one of your topics: use the button under a "
                "paper in your digest or in a look-up of a topic you follow."
            )
        topic = self.subs.teach(caller, topic_id, paper, True, now)
        return Reply(f"Thanks: `{topic.text}` will bring more papers like “{paper.title}”.")

    def _marked_paper(self, paper_id: str) -> Paper:
        if paper_id.isascii() and paper_id.isdigit():
            # Typed as `/papers relevant 3`: only the console keeps a numbered last list.
            raise CommandError(
                "Use the buttons under a paper to mark it; the console also takes "
                "`/papers relevant 3` for the third paper of the last list it showed."
            )
        paper = self.store.papers.get(paper_id)
        if paper is None:
            raise CommandError(UNKNOWN_PAPER)
        return paper

    def forget(self, caller: Caller, target: str, channel: bool) -> Reply:
        """Clear what a topic learned from its readers' signals."""
        if not target.strip():
            raise CommandError("Forget what? Give the topic or its number in `/papers list`.")
        if channel:
            self._require_manager(caller)
        subscriber = self._existing(caller, channel)
        if subscriber is None:
            raise CommandError("There are no subscriptions here yet.")
        text, count = self.subs.forget(subscriber.id, target)
        if not count:
            return Reply(f"`{text}` has not learned from any signals yet.")
        return Reply(
            f"Forgot the {count} signal{'s' if count != 1 else ''} `{text}` learned from: it "
            "matches by its words alone again."
        )

    def feed(self, caller: Caller, reset: bool = False) -> Reply:
        """The address of the caller's private Atom feed of their digests (made on first use;
        `reset` replaces it, and the old address stops working)."""
        subscriber = self._existing(caller, channel=False)
        if subscriber is None:
            example = feeds.search_url(self.public_url, "kv-cache")
            return Reply(
                "You have no digests to read in a feed reader yet. Subscribe to a topic with "
                "`/papers subscribe <topic>`, then `/papers feed` gives your private feed of "
                f"your digests. Any topic also has a public feed, e.g.\n`{example}`"
            )
        token = None if reset else self.store.subscribers.feed_token(subscriber.id)
        if token is None:
            token = feeds.new_token()
            self.store.subscribers.set_feed_token(subscriber.id, token)
        # In a code span: shown exactly as it is to be copied, never restyled as markdown.
        url = feeds.digests_url(self.public_url, token)
        if reset:
            old = "the old one no longer works"
            return Reply(f"Your private feed has a new address; {old}:\n`{url}`")
        return Reply(
            "Your private feed of your digests, for a feed reader (keep the address to yourself: "
            f"whoever has it can read the feed):\n`{url}`\nThe papers of each digest appear in it "
            "once it is sent. `/papers feed reset` gives it a new address."
        )

    def subscribe(self, caller: Caller, topic: str, channel: bool, now: datetime) -> Reply:
        """Follow a topic (for the caller, or for the channel)."""
        if not topic.strip():
            raise CommandError("Subscribe to what? For example `/papers subscribe kv-cache`.")
        if len(topic) > MAX_TOPIC_CHARS:
            raise CommandError(f"Topics can be at most {MAX_TOPIC_CHARS} characters long.")
        if channel:
            self._require_manager(caller)
        subscriber = self._subscriber(caller, channel, now)
        added = self.subs.add_topic(subscriber.id, topic, now)
        where = "this channel's" if channel else "your"
        if not added:
            return Reply(f"`{topic}` is already in {where} topics.")
        topics = self.store.subscribers.topics(subscriber.id)
        return Reply(
            f"Subscribed {'this channel ' if channel else ''}to `{topic}` "
            f"({len(topics)} of {MAX_TOPICS} topics). {_describe_settings(subscriber, topics, now)}"
        )

    def unsubscribe(self, caller: Caller, target: str, channel: bool, now: datetime) -> Reply:
        """Stop following a topic given by text or list number."""
        if not target.strip():
            raise CommandError(
                "Unsubscribe from what? Give the topic or its number in `/papers list`."
            )
        if channel:
            self._require_manager(caller)
        subscriber = self._existing(caller, channel)
        if subscriber is None:
            raise CommandError("There are no subscriptions here yet.")
        removed = self.subs.remove_topic(subscriber.id, target)
        return Reply(f"Unsubscribed from `{removed}`.")

    def list_topics(self, caller: Caller, channel: bool, now: datetime) -> Reply:
        """The topics followed (numbered) and the digest settings."""
        subscriber = self._existing(caller, channel)
        topics = self.store.subscribers.topics(subscriber.id) if subscriber else []
        owner = "This channel follows" if channel else "You follow"
        if subscriber is None or not topics:
            how = "/papers channel subscribe" if channel else "/papers subscribe"
            return Reply(f"No topics yet. Add one with `{how} <topic>`.")
        lines = [f"{owner} {len(topics)} topic{'s' if len(topics) != 1 else ''}:"]
        counts = self.store.signals.counts([t.id for t in topics])
        lines += [
            f"{n}. {t.text}{_learned_from(counts.get(t.id))}" for n, t in enumerate(topics, start=1)
        ]
        lines.append(_describe_settings(subscriber, topics, now))
        return Reply("\n".join(lines))

    def digest_preview(self, caller: Caller, now: datetime) -> Reply:
        """The caller's next digest as it stands now; marks nothing as sent."""
        from bot.digests import preview

        subscriber = self._existing(caller, channel=False)
        if subscriber is None or not self.store.subscribers.topics(subscriber.id):
            return Reply("You follow no topics yet. Add one with `/papers subscribe <topic>`.")
        digest = preview(self.store, subscriber, now, self.semantic)
        if digest.is_empty and not any(s.left_out for s in digest.sections):
            return Reply("Nothing new on your topics since your last digest.")
        return Reply("Your next digest, as it stands now:", digest=digest)

    def settings(
        self, caller: Caller, field: str, value: str, channel: bool, now: datetime
    ) -> Reply:
        """Show or change the digest settings of the caller (or of the channel, for managers)."""
        if not field:
            subscriber = self._existing(caller, channel)
            if subscriber is None:
                return Reply(
                    f"{_describe_settings_default()} (defaults; subscribe to a topic first)"
                )
            return Reply(
                _describe_settings(subscriber, self.store.subscribers.topics(subscriber.id), now)
            )
        if field not in SETTINGS_FIELDS:
            guess = _closest(field, SETTINGS_FIELDS)
            suggestion = " ".join(part for part in ("settings", guess, value) if part)
            hint = f" Did you mean `{suggestion}`?" if guess else ""
            raise CommandError(
                f"There is no setting `{field[:30]}`.{hint} Settings: time, tz, days, max, pause, "
                "resume."
            )
        if channel:
            self._require_manager(caller)
        subscriber = self._subscriber(caller, channel, now)
        current = subscriber.settings
        if field in ("pause", "resume"):
            new = replace(current, paused=field == "pause")
        elif not value:
            raise CommandError(f"`settings {field}` needs a value, e.g. {_EXAMPLES[field]}.")
        elif field == "time":
            new = replace(current, digest_time=parse_time(value))
        elif field == "tz":
            new = replace(current, tz=parse_tz(value))
        elif field == "days":
            new = replace(current, days=parse_days(value))
        else:
            new = replace(current, max_papers=parse_max(value))
        updated = self.subs.update_settings(subscriber, new, now)
        topics = self.store.subscribers.topics(updated.id)
        return Reply(f"Saved. {_describe_settings(updated, topics, now)}")


_EXAMPLES = {
    "time": "`settings time 09:00`",
    "tz": "`settings tz Europe/Berlin`",
    "days": "`settings days mon-fri`",
    "max": "`settings max 10`",
}


def _learned_from(count: SignalCount | None) -> str:
    if count is None or not count.total:
        return ""
    return f" (learned from {count.relevant} relevant, {count.not_relevant} not relevant)"


def _describe_settings_default() -> str:
    s = DigestSettings()
    return f"Digest at {s.digest_time} ({s.tz}), {s.describe_days()}, up to {s.max_papers} papers"
