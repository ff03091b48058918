"""Turning search hits into `PaperCard`s: the plain data every adapter renders."""

from __future__ import annotations

import re

from bot.models import Paper, PaperCard, SearchHit

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
SUMMARY_CHARS = 300


def short_authors(authors: tuple[str, ...], most: int = 3) -> str:
    """`A, B, C et al.` style author list."""
    if not authors:
        return ""
    if len(authors) <= most:
        return ", ".join(authors)
    return ", ".join(authors[:most]) + " et al."


def short_summary(paper: Paper, limit: int = SUMMARY_CHARS) -> str:
    """The Hugging Face AI summary if known, else the abstract's first sentences, cut to `limit`."""
    if paper.ai_summary:
        text = paper.ai_summary
    else:
        text = ""
        for sentence in _SENTENCE_END.split(paper.summary):
            if text and len(text) + len(sentence) + 1 > limit:
                break
            text = f"{text} {sentence}".strip()
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return text


def card_from_hit(hit: SearchHit) -> PaperCard:
    """A card for one search hit or digest entry."""
    paper = hit.paper
    links = paper.links
    return PaperCard(
        paper_id=paper.id,
        title=paper.title,
        url=links.get("abstract") or links.get("huggingface") or next(iter(links.values()), None),
        authors=short_authors(paper.authors),
        published=paper.published,
        upvotes=paper.upvotes,
        summary=short_summary(paper),
        why=hit.why(),
        links=links,
    )
