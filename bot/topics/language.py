"""The parsed topic (`Topic`: OR-ed groups of concepts, exclusions, filters) and `parse`.

Each concept knows every way a paper may say it: acronym expansions from `bot.lexicon`,
spelling variants, plurals and stems.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from bot import lexicon
from bot.errors import InvalidQuery
from bot.topics.words import STOPWORDS, stem, words

MAX_TOPIC_CHARS = 300
MAX_CONCEPTS = 12

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_LEX = re.compile(
    r'(?P<field>(?:author|authors|cat|category|title):(?:"[^"]*"?|[^\s"]+))'
    r'|(?P<neg>-(?:"[^"]*"?|[^\s"-][^\s"]*))'
    r'|(?P<phrase>"[^"]*"?)'
    r'|(?P<word>[^\s"]+)'
)
FIELDS = ("title", "keywords", "abstract")


@dataclass(frozen=True)
class Form:
    """One way to say a concept: its stems (for matching) and its text (for display)."""

    stems: tuple[str, ...]
    text: str
    narrower: bool = False


@dataclass(frozen=True)
class Concept:
    """A unit of meaning in a topic, with every form that expresses it."""

    label: str
    forms: tuple[Form, ...]
    phrases: tuple[tuple[str, ...], ...]  # surface tokens for FTS5, spelling variants included
    fields: tuple[str, ...] = FIELDS
    from_lexicon: bool = False


@dataclass(frozen=True)
class Group:
    """Concepts that should all appear (soft for long topics): one side of an OR."""

    concepts: tuple[Concept, ...]
    # Consecutive single-word concepts, whose appearing side by side counts as a phrase.
    adjacent: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Topic:
    """A parsed topic: OR-ed groups, exclusions and filters."""

    text: str
    groups: tuple[Group, ...]
    exclude: tuple[Concept, ...] = ()
    authors: tuple[tuple[str, ...], ...] = ()  # author name tokens, each must match
    categories: tuple[str, ...] = ()  # lower-case category or archive names, any may match

    @property
    def has_text(self) -> bool:
        """Whether any group has words to match (not only filters)."""
        return any(g.concepts for g in self.groups)


@dataclass(frozen=True)
class _LexEntry:
    label: str
    forms: tuple[Form, ...]
    phrases: tuple[tuple[str, ...], ...]


def _variants(tokens: tuple[str, ...]) -> set[tuple[str, ...]]:
    """The tokens as written plus their American and British spellings."""
    out = {tokens}
    american = tuple(lexicon.american(t) for t in tokens)
    out.add(american)
    british = tuple(lexicon.british(t) or t for t in american)
    out.add(british)
    return out


def _make_forms(texts: Iterable[str], narrower: bool) -> tuple[list[Form], set[tuple[str, ...]]]:
    forms: list[Form] = []
    phrases: set[tuple[str, ...]] = set()
    for text in texts:
        tokens = tuple(words(text))
        if not tokens:
            continue
        forms.append(Form(tuple(stem(t) for t in tokens), text, narrower))
        phrases |= _variants(tokens)
    return forms, phrases


@lru_cache(maxsize=1)
def _lexicon_index() -> dict[str, list[tuple[tuple[str, ...], _LexEntry]]]:
    """Entries by the first stem of each of their forms, longest forms first."""
    index: dict[str, list[tuple[tuple[str, ...], _LexEntry]]] = {}
    for entry in lexicon.ENTRIES:
        forms, phrases = _make_forms(entry.forms, narrower=False)
        narrow, narrow_phrases = _make_forms(entry.narrower, narrower=True)
        seen: set[tuple[str, ...]] = set()
        unique: list[Form] = []
        for form in [*forms, *narrow]:
            if form.stems not in seen:
                seen.add(form.stems)
                unique.append(form)
        lex = _LexEntry(entry.label, tuple(unique), tuple(sorted(phrases | narrow_phrases)))
        for form in forms:
            index.setdefault(form.stems[0], []).append((form.stems, lex))
    for candidates in index.values():
        candidates.sort(key=lambda item: -len(item[0]))
    return index


# -- parsing ---------------------------------------------------------------------------------


@dataclass
class _Item:
    tokens: list[str]  # lower-case surface tokens
    quoted: bool = False
    title_only: bool = False


@dataclass
class _GroupDraft:
    items: list[_Item] = field(default_factory=list)


def prepare() -> None:
    """Build the lexicon's index now (about 50 ms) rather than in the first look-up."""
    _lexicon_index()


def _phrase_concept(tokens: list[str], title_only: bool) -> Concept:
    text = " ".join(tokens)
    forms, phrases = _make_forms([text], narrower=False)
    return Concept(
        label=text,
        forms=tuple(forms),
        phrases=tuple(sorted(phrases)),
        fields=("title",) if title_only else FIELDS,
    )


def _lexicon_concept(entry: _LexEntry, typed: str, title_only: bool) -> Concept:
    return Concept(
        label=typed,
        forms=entry.forms,
        phrases=entry.phrases,
        fields=("title",) if title_only else FIELDS,
        from_lexicon=True,
    )


def _quoted_concept(item: _Item) -> Concept:
    """An exact phrase; one the lexicon knows also matches its other forms ("flash attention"
    finds "FlashAttention"): the quotes keep the words together, not a spelling."""
    key = tuple(stem(t) for t in item.tokens)
    for form_stems, entry in _lexicon_index().get(key[0], []):
        if form_stems == key:
            return _lexicon_concept(entry, " ".join(item.tokens), item.title_only)
    return _phrase_concept(item.tokens, item.title_only)


def _concepts_for(items: list[_Item]) -> tuple[list[Concept], list[tuple[int, int]]]:
    """Turn a run of items into concepts, recognising lexicon terms across word boundaries."""
    index = _lexicon_index()
    concepts: list[Concept] = []
    adjacent: list[tuple[int, int]] = []
    # Flatten unquoted items into one word stream (keeping which item each word came from),
    # so "mixture of experts" and "kv-cache" both reach the lexicon whole.
    stream: list[tuple[str, int, int]] = []  # (token, item number, offset in the item)
    for number, item in enumerate(items):
        if not item.quoted:
            stream.extend((token, number, offset) for offset, token in enumerate(item.tokens))

    def flush_quoted(upto_item: int, done: set[int]) -> None:
        for number in range(upto_item + 1):
            item = items[number]
            if item.quoted and number not in done:
                done.add(number)
                concepts.append(_quoted_concept(item))

    done_quoted: set[int] = set()
    previous_single: int | None = None
    position = 0
    while position < len(stream):
        token, item_number, offset = stream[position]
        flush_quoted(item_number, done_quoted)
        item = items[item_number]
        stem_here = stem(token)
        matched = False
        for form_stems, entry in index.get(stem_here, []):
            width = len(form_stems)
            window = stream[position : position + width]
            if len(window) == width and tuple(stem(t) for t, _, _ in window) == form_stems:
                typed = " ".join(t for t, _, _ in window)
                concepts.append(_lexicon_concept(entry, typed, item.title_only))
                position += width
                previous_single = None
                matched = True
                break
        if matched:
            continue
        # A hyphenated or punctuated word ("4-bit", "cs.lg") that the lexicon does not know is
        # a phrase of its own.
        if len(item.tokens) > 1 and offset == 0:
            concepts.append(_phrase_concept(item.tokens, item.title_only))
            position += len(item.tokens)
            previous_single = None
            continue
        position += 1
        if token in STOPWORDS or (len(token) == 1 and not token.isdigit()):
            continue
        concepts.append(_phrase_concept([token], item.title_only))
        if previous_single is not None and previous_single == len(concepts) - 2:
            adjacent.append((previous_single, len(concepts) - 1))
        previous_single = len(concepts) - 1
    flush_quoted(len(items) - 1, done_quoted)
    # The same concept typed twice counts once.
    unique: list[Concept] = []
    seen: set[tuple[tuple[str, ...], ...]] = set()
    for concept in concepts:
        key = tuple(sorted(f.stems for f in concept.forms))
        if key not in seen:
            seen.add(key)
            unique.append(concept)
    if len(unique) != len(concepts):
        adjacent = []
    return unique, adjacent


def _clean(text: str) -> str:
    text = _CONTROL.sub(" ", text)
    # Typographic quotes and dashes as users paste them from papers.
    return (
        text.replace("\u201c", '"')
        .replace("\u201d", '"')
        .replace("\u2018", "'")
        .replace("\u2019", "'")
        .replace("\u2013", "-")
        .replace("\u2014", "-")
    )


def _unquote(value: str) -> str:
    return value.strip('"')


def parse(text: str) -> Topic:
    """Parse a topic; raise `InvalidQuery` with a message for the user when it is unusable."""
    if len(text) > MAX_TOPIC_CHARS:
        raise InvalidQuery(
            f"That topic is {len(text)} characters long; please keep it under {MAX_TOPIC_CHARS}."
        )
    cleaned = _clean(text).strip()
    drafts = [_GroupDraft()]
    excluded: list[_Item] = []
    authors: list[tuple[str, ...]] = []
    categories: list[str] = []
    negate_next = False
    for match in _LEX.finditer(cleaned):
        kind = match.lastgroup
        raw = match.group()
        if kind == "word" and raw in ("OR", "|", "||"):
            drafts.append(_GroupDraft())
            negate_next = False
            continue
        if kind == "word" and raw in ("AND", "&&"):
            continue
        if kind == "word" and raw == "NOT":
            negate_next = True
            continue
        if kind == "field":
            name, _, value = raw.partition(":")
            value = _unquote(value)
            if name in ("author", "authors"):
                name_tokens = tuple(words(value))
                if name_tokens:
                    authors.append(name_tokens)
                continue
            if name in ("cat", "category"):
                category = value.strip().lower()
                if re.fullmatch(r"[a-z][a-z-]*(\.[a-z-]+)?", category):
                    categories.append(category)
                continue
            # title:word
            tokens = words(value)
            if tokens:
                drafts[-1].items.append(_Item(tokens, quoted=raw.count('"') > 0, title_only=True))
            continue
        quoted = kind == "phrase" or (kind == "neg" and raw.startswith('-"'))
        body = raw[1:] if kind == "neg" else raw
        tokens = words(body.replace("'s ", " "))
        if not tokens:
            continue
        item = _Item(tokens, quoted=quoted and len(tokens) > 1)
        if kind == "neg" or negate_next:
            excluded.append(item)
            negate_next = False
            continue
        drafts[-1].items.append(item)

    groups: list[Group] = []
    total = 0
    for draft in drafts:
        concepts, adjacent = _concepts_for(draft.items)
        total += len(concepts)
        if concepts:
            groups.append(Group(tuple(concepts), tuple(adjacent)))
    if total > MAX_CONCEPTS:
        raise InvalidQuery(
            f"That topic has {total} separate terms; please use at most {MAX_CONCEPTS}."
        )
    exclude, _ = _concepts_for(excluded)
    if not groups and not authors and not categories:
        raise InvalidQuery(
            "There is nothing to search for in that. Try a topic such as `kv-cache`, "
            '`mixture of experts`, `"information bottleneck"` or `author:"Yann LeCun"`.'
        )
    if not groups:
        groups = [Group(())]
    return Topic(cleaned, tuple(groups), tuple(exclude), tuple(authors), tuple(categories))
