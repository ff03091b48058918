"""Fuzzing: whatever a user types or a source sends, the bot answers or skips, never crashes.

The `slow` variants run 10,000 examples each (`make test`, which CI runs); `make test-quick`
skips them and the quick variants run a few hundred.
"""

from __future__ import annotations

import copy
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import Handler, parse_command
from bot.errors import SourceError
from bot.importer import import_files
from bot.models import Caller, Reply
from bot.sources.arxiv import parse_feed
from bot.sources.hf import parse_items
from bot.storage import Store
from tests.conftest import FIXTURES, SEED

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
QUICK, SLOW = 300, 10_000

# Pieces a hostile or unlucky user might type: FTS5 and SQL syntax, quotes, control and
# bidirectional characters, and very long runs of emoji.
HOSTILE = [
    '"', "'", "*", "^", ":", "(", ")", "NEAR(", "AND", "OR", "NOT", "-", "|", "{title}:",
    "title:", "author:", "cat:", "'; DROP TABLE papers; --", '" OR 1=1 --', "\\", "%", "_",
    "\x00", "\x1b[31m", "\r\n", "\t", "\u202e", "\u200f", "\u2066", "\ufeff", "\ud7ff",
    "מודל שפה", "نموذج لغوي", "😀", "👩‍🔬", "\U0001d510\U0001d52c\U0001d508",
    "ﬁ", "İ", "ß", "²", "٣",
]  # fmt: skip
PREFIXES = [
    "", "search ", "subscribe ", "unsubscribe ", "list ", "digest ", "help ", "settings ",
    "settings tz ", "settings time ", "settings days ", "settings max ", "pause ", "resume ",
    "channel subscribe ", "channel unsubscribe ", "channel list ", "channel settings tz ",
    "sub ", "subscrbe ", "feed ", "feed reset ",
]  # fmt: skip
fragments = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=20))
hostile_text = st.one_of(
    st.lists(fragments, max_size=30).map(" ".join),
    st.lists(fragments, max_size=30).map("".join),
    st.text(max_size=400),
    st.integers(1, 5000).map(lambda n: "😀" * n),  # up to 20 kB of emoji
)
command_text = st.builds(lambda p, t: p + t, st.sampled_from(PREFIXES), hostile_text)


@pytest.fixture(scope="module")
def fuzz_store() -> Iterator[Store]:
    store = Store.open(":memory:")
    import_files(store, [SEED], NOW)
    yield store
    store.close()


def check_command(store: Store, text: str, manager: bool) -> None:
    caller = Caller("console", "fuzzer", "C1", "W1", can_manage_channel=manager)
    reply = Handler(store).handle(caller, parse_command(text), NOW)
    assert isinstance(reply, Reply)
    assert reply.text.strip()
    # However it went, the store still holds the sample papers and its rules.
    assert store.papers.count() == 315
    per_subscriber = store.conn.execute(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM topics GROUP BY subscriber_id)"
    ).fetchone()[0]
    assert (per_subscriber or 0) <= 20


FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@settings(FUZZ, max_examples=QUICK)
@given(text=command_text, manager=st.booleans())
def test_any_command_text_gets_a_reply(fuzz_store: Store, text: str, manager: bool) -> None:
    check_command(fuzz_store, text, manager)


@pytest.mark.slow
@settings(FUZZ, max_examples=SLOW)
@given(text=command_text, manager=st.booleans())
def test_any_command_text_gets_a_reply_10k(fuzz_store: Store, text: str, manager: bool) -> None:
    check_command(fuzz_store, text, manager)


# -- sources -------------------------------------------------------------------------------------

HF_ITEMS: list[dict[str, Any]] = json.loads(
    (FIXTURES / "hf_daily_papers_latest_limit30_2026-06-12.json").read_text()
)
ATOM = (FIXTURES / "arxiv_query_cat-cs.LG-OR-cat-cs.AI_max20_2026-04-30.atom.xml").read_text()
GOOD_HF = [p.id for p in parse_items(HF_ITEMS, "fixture")]
GOOD_ATOM = [p.id for p in parse_feed(ATOM)]

junk = st.one_of(
    st.none(), st.integers(), st.floats(allow_nan=True), st.text(max_size=50),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)  # fmt: skip
hf_mutation = st.tuples(
    st.integers(0, len(HF_ITEMS) - 1),
    st.sampled_from(["drop", "replace", "paper_field", "paper_drop"]),
    st.sampled_from(["id", "title", "summary", "authors", "publishedAt", "upvotes", "ai_keywords"]),
    junk,
)


def mutate_hf(mutations: list[tuple[int, str, str, Any]]) -> tuple[list[Any], set[int]]:
    items: list[Any] = copy.deepcopy(HF_ITEMS)
    touched = set()
    for index, kind, field, value in mutations:
        touched.add(index)
        if kind == "drop":
            items[index] = {}
        elif kind == "replace":
            items[index] = value
        elif kind == "paper_field" and isinstance(items[index], dict) and "paper" in items[index]:
            items[index]["paper"][field] = value
        elif kind == "paper_drop" and isinstance(items[index], dict) and "paper" in items[index]:
            items[index]["paper"].pop(field, None)
    return items, touched


def check_hf(mutations: list[tuple[int, str, str, Any]]) -> None:
    items, touched = mutate_hf(mutations)
    papers = parse_items(items, "mutated")
    kept = {p.id for p in papers}
    # Every untouched item survives; a touched one is either parsed sanely or skipped.
    untouched = {GOOD_HF[i] for i in range(len(HF_ITEMS)) if i not in touched}
    assert untouched <= kept
    for paper in papers:
        assert paper.id and paper.title and isinstance(paper.authors, tuple)


@settings(max_examples=QUICK, deadline=None)
@given(st.lists(hf_mutation, max_size=6))
def test_mutated_hf_payloads_keep_the_good_items(mutations: list[Any]) -> None:
    check_hf(mutations)


@pytest.mark.slow
@settings(max_examples=SLOW, deadline=None)
@given(st.lists(hf_mutation, max_size=6))
def test_mutated_hf_payloads_keep_the_good_items_10k(mutations: list[Any]) -> None:
    check_hf(mutations)


def check_atom(cut: int, garbage: str, where: int) -> None:
    body = ATOM[:cut]
    if garbage:
        body = body[:where] + garbage + body[where:]
    try:
        papers = parse_feed(body)
    except SourceError:
        return  # nothing recognisable left: the source reports it, the store is untouched
    ids = [p.id for p in papers]
    assert set(ids) <= set(GOOD_ATOM) | {p.id for p in papers if p.title}
    # Entries that end before the cut and the garbage are all kept.
    intact = ATOM[: min(cut, where if garbage else cut)].count("</entry>")
    assert set(GOOD_ATOM[:intact]) <= set(ids)


atom_cuts = st.tuples(
    st.integers(0, len(ATOM)),
    st.one_of(st.just(""), st.sampled_from(["&bogus;", "<", "</entry>", "\x00", "]]>", "<entry>"])),
    st.integers(0, len(ATOM)),
)


@settings(max_examples=QUICK, deadline=None)
@given(atom_cuts)
def test_truncated_or_corrupted_atom_keeps_the_intact_entries(args: tuple[int, str, int]) -> None:
    cut, garbage, where = args
    check_atom(cut, garbage, min(where, cut))


@pytest.mark.slow
@settings(max_examples=SLOW, deadline=None)
@given(atom_cuts)
def test_truncated_or_corrupted_atom_keeps_the_intact_entries_10k(
    args: tuple[int, str, int],
) -> None:
    cut, garbage, where = args
    check_atom(cut, garbage, min(where, cut))


def test_the_store_rejects_nothing_it_should_accept() -> None:
    # The fuzzers above would be vacuous if parsing skipped everything: it does not.
    assert len(GOOD_HF) == len(HF_ITEMS) and len(GOOD_ATOM) >= 10
    assert sqlite3.sqlite_version_info >= (3, 35)
