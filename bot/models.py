"""Plain data shared by the core and the adapters: papers, search hits and why they matched."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime


@dataclass(frozen=True)
class Paper:
    """One paper as the store keeps it; `id` is the arXiv id without version when known."""

    id: str
    title: str
    summary: str = ""
    authors: tuple[str, ...] = ()
    published: str | None = None  # ISO date (YYYY-MM-DD)
    abs_url: str | None = None
    pdf_url: str | None = None
    hf_url: str | None = None
    code_url: str | None = None
    categories: tuple[str, ...] = ()
    upvotes: int | None = None
    comments: int | None = None
    ai_summary: str | None = None
    ai_keywords: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    first_seen_at: datetime | None = None

    def merged_with(self, newer: Paper) -> Paper:
        """Combine a stored paper with a fresh listing of it: fresh values win, gaps keep the old."""
        return replace(
            self,
            title=newer.title or self.title,
            summary=newer.summary or self.summary,
            authors=newer.authors or self.authors,
            published=newer.published or self.published,
            abs_url=newer.abs_url or self.abs_url,
            pdf_url=newer.pdf_url or self.pdf_url,
            hf_url=newer.hf_url or self.hf_url,
            code_url=newer.code_url or self.code_url,
            categories=newer.categories or self.categories,
            upvotes=newer.upvotes if newer.upvotes is not None else self.upvotes,
            comments=newer.comments if newer.comments is not None else self.comments,
            ai_summary=newer.ai_summary or self.ai_summary,
            ai_keywords=newer.ai_keywords or self.ai_keywords,
            sources=tuple(sorted(set(self.sources) | set(newer.sources))),
            first_seen_at=self.first_seen_at or newer.first_seen_at,
        )

    @property
    def links(self) -> dict[str, str]:
        """The paper's known links by kind (abstract, pdf, huggingface, code)."""
        pairs = {
            "abstract": self.abs_url,
            "pdf": self.pdf_url,
            "huggingface": self.hf_url,
            "code": self.code_url,
        }
        return {kind: url for kind, url in pairs.items() if url}


@dataclass(frozen=True)
class MatchReason:
    """One piece of evidence: which concept of the topic matched, as which words, in which field."""

    concept: str  # the topic's term as the user wrote it (or its canonical form)
    matched: str  # the words found in the paper
    field: str  # "title", "keywords", "abstract" or "authors"
    related: bool = False  # found through the lexicon (an acronym or expansion) rather than verbatim

    def describe(self) -> str:
        """Human-readable form, e.g. `"key-value cache" in abstract (for KV cache)`."""
        text = f'"{self.matched}" in {self.field}'
        if self.related:
            text += f" (for {self.concept})"
        return text


@dataclass(frozen=True)
class SearchHit:
    """A paper found for a topic, its score and why it matched."""

    paper: Paper
    score: float
    reasons: tuple[MatchReason, ...] = field(default_factory=tuple)

    def why(self) -> str:
        """One line saying why the paper matched."""
        return "; ".join(reason.describe() for reason in self.reasons)
