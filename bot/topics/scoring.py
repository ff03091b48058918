"""Scoring a paper against a topic in Python, saying which words matched in which field."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from bot.models import MatchReason, Paper
from bot.topics.language import FIELDS, Concept, Form, Group, Topic
from bot.topics.words import stems, words

# How much a concept found in each field counts (title over abstract).
FIELD_WEIGHT = {"title": 3.0, "keywords": 1.5}
NARROWER_FACTOR = 0.6


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


def analyze_paper(paper: Paper) -> AnalyzedPaper:
    """Analyse a paper once and reuse it for every topic (digest runs score many topics).

    Kept by the analysed fields, not the whole paper: an ingest analyses papers before it
    stores them (see `bot.ingest`), and a paper re-listed with new upvotes keeps its analysis.
    """
    return _analyzed(paper.title, paper.summary, paper.ai_keywords, paper.authors, paper.categories)


@lru_cache(maxsize=50_000)
def _analyzed(
    title: str,
    summary: str,
    keywords: tuple[str, ...],
    authors: tuple[str, ...],
    categories: tuple[str, ...],
) -> AnalyzedPaper:
    return analyze(title, summary, keywords, authors, categories)


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
