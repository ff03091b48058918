"""The topic language: what a user types after `/papers` or `/papers subscribe`.

A topic is parsed into `Topic`: OR-ed groups of concepts, exclusions and filters. Each concept
knows every way a paper may say it (acronym expansions from `bot.lexicon`, spelling variants,
plurals and stems), so one `Topic` can

* compile to a safe FTS5 expression (`fts_any` / `fts_all`) to fetch candidates, and
* score a paper in Python (`score`), saying which words matched in which field.

Syntax: words; `"exact phrase"`; `a OR b` (also `|`); `-word`, `-"phrase"` or `NOT word` to
exclude; `author:"Name"`; `cat:cs.LG` (or a whole archive, `cat:cs`); `title:word` to require a
word in the title. Anything else is read as plain words, so no input can reach SQL or FTS5
unescaped: FTS5 expressions are built only from alphanumeric tokens inside double quotes.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import snowballstemmer

from bot import lexicon
from bot.errors import InvalidQuery
from bot.models import MatchReason

MAX_TOPIC_CHARS = 300
MAX_CONCEPTS = 12

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers him his how i if in into is it its
    itself just me more most my no nor not of off on once only or other our ours out over
    own same she should so some such than that the their theirs them then there these they
    this those through to too under until up very via was we were what when where which
    while who whom why will with would you your yours using use used based towards toward
    new novel approach approaches method methods paper papers study reduce reduces reducing
    reduced improve improves improving improved enhance enhancing better""".split()
)

_TOKEN = re.compile(r"[^\W_]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_LEX = re.compile(
    r'(?P<field>(?:author|authors|cat|category|title):(?:"[^"]*"?|[^\s"]+))'
    r'|(?P<neg>-(?:"[^"]*"?|[^\s"-][^\s"]*))'
    r'|(?P<phrase>"[^"]*"?)'
    r'|(?P<word>[^\s"]+)'
)
_STEMMER = snowballstemmer.stemmer("porter")

FIELDS = ("title", "keywords", "abstract")
# How much a concept found in each field counts (title over abstract).
FIELD_WEIGHT = {"title": 3.0, "keywords": 1.5}
NARROWER_FACTOR = 0.6


# -- words and stems --------------------------------------------------------------------------


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def _drop_combining(found: re.Match[str]) -> str:
    return "" if unicodedata.combining(found.group()) else found.group()


def _fold(text: str) -> str:
    # Lower case without accents. Checking every character in Python was a third of analysing
    # a paper (0.1 of 0.34 ms): ASCII text (almost every abstract) has nothing to decompose or
    # drop, and elsewhere only the non-ASCII characters need a look.
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return _NON_ASCII.sub(_drop_combining, decomposed)


def words(text: str) -> list[str]:
    """Lower-case alphanumeric tokens, split as SQLite's unicode61 tokenizer splits them."""
    return _TOKEN.findall(_fold(text))


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """The comparable form of a lower-case word: American spelling, then Porter stem."""
    return str(_STEMMER.stemWord(lexicon.american(word)))


def stems(text: str) -> tuple[str, ...]:
    """Comparable stems of a text, in order."""
    return tuple(stem(w) for w in words(text))


# -- the parsed topic ------------------------------------------------------------------------


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

    def fts(self) -> str:
        """This concept as a safe FTS5 sub-expression."""
        inner = " OR ".join('"' + " ".join(p) + '"' for p in self.phrases)
        if self.fields == ("title",):
            return "{title} : (" + inner + ")"
        return "(" + inner + ")"


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

    def _filters_fts(self) -> str:
        parts = ['{authors} : "' + " ".join(a) + '"' for a in self.authors]
        return " AND ".join(parts)

    def _wrap(self, positive: str) -> str:
        filters = self._filters_fts()
        expr = f"({positive}) AND {filters}" if positive and filters else positive or filters
        if self.exclude and expr:
            expr = f"({expr}) NOT ({' OR '.join(c.fts() for c in self.exclude)})"
        return expr

    def fts_all(self, group: Group) -> str:
        """FTS5 expression: papers with every concept of the group (and the filters)."""
        return self._wrap(" AND ".join(c.fts() for c in group.concepts))

    def fts_any(self, group: Group) -> str:
        """FTS5 expression: papers with any concept of the group (and the filters)."""
        return self._wrap(" OR ".join(c.fts() for c in group.concepts))


# -- lexicon index ---------------------------------------------------------------------------


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


# -- matching a paper ------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalyzedPaper:
    """A paper's fields as stem sequences, with a position index per stem."""

    fields: Mapping[str, tuple[str, ...]]
    positions: Mapping[str, Mapping[str, tuple[int, ...]]]
    authors: tuple[tuple[str, ...], ...]
    categories: tuple[str, ...]


def analyze(
    title: str,
    abstract: str,
    keywords: Sequence[str] = (),
    authors: Sequence[str] = (),
    categories: Sequence[str] = (),
) -> AnalyzedPaper:
    """Prepare a paper for scoring against any number of topics."""
    texts = {"title": title, "keywords": " ; ".join(keywords), "abstract": abstract}
    field_stems: dict[str, tuple[str, ...]] = {}
    positions: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, text in texts.items():
        seq = stems(text)
        field_stems[name] = seq
        index: dict[str, list[int]] = {}
        for i, s in enumerate(seq):
            index.setdefault(s, []).append(i)
        positions[name] = {s: tuple(p) for s, p in index.items()}
    return AnalyzedPaper(
        fields=field_stems,
        positions=positions,
        authors=tuple(tuple(words(a)) for a in authors),
        categories=tuple(c.lower() for c in categories),
    )


def _count(paper: AnalyzedPaper, field_name: str, form_stems: tuple[str, ...]) -> int:
    starts = paper.positions[field_name].get(form_stems[0], ())
    if len(form_stems) == 1:
        return len(starts)
    seq = paper.fields[field_name]
    width = len(form_stems)
    return sum(1 for s in starts if seq[s : s + width] == form_stems)


@dataclass(frozen=True)
class ConceptHit:
    """How a concept showed up in one paper."""

    score: float
    reason: MatchReason | None


def _saturate(tf: int) -> float:
    # BM25-style: the first mention counts most, repetition adds less and less.
    return 2.2 * tf / (tf + 1.2)


def concept_hit(concept: Concept, paper: AnalyzedPaper) -> ConceptHit:
    """Score one concept in one paper (0 when absent) and say where it was found."""
    best_score = 0.0
    best_reason: MatchReason | None = None
    for narrower in (False, True):
        score = 0.0
        reason: MatchReason | None = None
        for field_name in concept.fields:
            tf = 0
            found: Form | None = None
            for form in concept.forms:
                if form.narrower != narrower:
                    continue
                n = _count(paper, field_name, form.stems)
                if n:
                    tf += n
                    found = found or form
            if not tf or found is None:
                continue
            weight = FIELD_WEIGHT.get(field_name)
            score += weight if weight is not None else _saturate(tf)
            if reason is None:
                related = narrower or (concept.from_lexicon and stems(concept.label) != found.stems)
                reason = MatchReason(concept.label, found.text, field_name, related)
        if narrower:
            score *= NARROWER_FACTOR
        if score > best_score:
            best_score, best_reason = score, reason
        if best_score and not narrower:
            break  # the concept itself was found: narrower forms add nothing
    return ConceptHit(best_score, best_reason)


def is_excluded(topic: Topic, paper: AnalyzedPaper) -> bool:
    """Whether the paper mentions anything the topic excludes, or fails its filters."""
    for concept in topic.exclude:
        for field_name in FIELDS:
            if any(_count(paper, field_name, f.stems) for f in concept.forms):
                return True
    for name in topic.authors:
        if not any(_contains(author, name) for author in paper.authors):
            return True
    return bool(topic.categories) and not any(
        cat == wanted or cat.startswith(wanted + ".")
        for cat in paper.categories
        for wanted in topic.categories
    )


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    width = len(needle)
    return any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))


def idf(doc_freq: int, total: int) -> float:
    """Inverse document frequency, BM25 style (always positive)."""
    return math.log(1 + (total - doc_freq + 0.5) / (doc_freq + 0.5))


@dataclass(frozen=True)
class GroupScore:
    """A paper's fit to one group: relevance, weighted share of concepts present, evidence."""

    score: float
    coverage: float
    present: int
    reasons: tuple[MatchReason, ...]


def score_group(group: Group, weights: Sequence[float], paper: AnalyzedPaper) -> GroupScore:
    """Score a paper against one group; `weights` are the concepts' idf values."""
    if not group.concepts:
        return GroupScore(1.0, 1.0, 0, ())
    hits = [concept_hit(c, paper) for c in group.concepts]
    total_weight = sum(weights) or 1.0
    score = sum(w * h.score for w, h in zip(weights, hits, strict=True)) / total_weight
    coverage = sum(w for w, h in zip(weights, hits, strict=True) if h.score > 0) / total_weight
    # Words typed side by side count extra when the paper has them side by side too.
    for left, right in group.adjacent:
        pair = (*group.concepts[left].forms[0].stems, *group.concepts[right].forms[0].stems)
        bonus = (
            1.0 if _count(paper, "title", pair) else 0.5 if _count(paper, "abstract", pair) else 0
        )
        score += bonus * (weights[left] + weights[right]) / total_weight
    reasons = tuple(h.reason for h in hits if h.reason is not None)
    return GroupScore(score, coverage, sum(1 for h in hits if h.score > 0), reasons)
