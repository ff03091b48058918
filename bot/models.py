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
        """Combine a stored paper with a fresh listing: fresh values win, gaps keep the old."""
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
    related: bool = (
        False  # found through the lexicon (an acronym or expansion) rather than verbatim
    )
    # Set when the paper was found by meaning (the semantic extra), not by its words.
    similarity: float | None = None

    def describe(self) -> str:
        """Human-readable form, e.g. `"key-value cache" in abstract (for KV cache)`."""
        if self.field == "feedback":  # `concept` is the title of the paper marked relevant
            return f'like "{self.concept}" that you marked relevant'
        if self.similarity is not None:
            return f'related: close in meaning to "{self.concept}" ({self.similarity:.2f})'
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


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class DigestSettings:
    """When and how much a subscriber receives."""

    tz: str = "UTC"
    digest_time: str = "09:00"  # local HH:MM
    days: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday = 0
    max_papers: int = 10
    paused: bool = False

    def describe_days(self) -> str:
        """Days as text: `mon-fri`, `every day`, or a list."""
        if self.days == tuple(range(7)):
            return "every day"
        if self.days == (0, 1, 2, 3, 4):
            return "mon-fri"
        return ",".join(WEEKDAYS[d] for d in self.days)


@dataclass(frozen=True)
class Subscriber:
    """A person (digests by DM) or a channel that follows topics."""

    id: int
    platform: str
    kind: str  # "user" or "channel"
    address: str
    workspace: str  # where `address` is unique: a Slack team; "" where ids are global
    settings: DigestSettings
    created_at: datetime
    next_due_at: datetime | None = None
    undeliverable: str | None = None

    @property
    def label(self) -> str:
        """Short text naming the subscriber in logs (ids only, never tokens)."""
        where = f"{self.workspace}/" if self.workspace else ""
        return f"{self.platform}:{self.kind}:{where}{self.address}"


@dataclass(frozen=True)
class TopicSubscription:
    """One topic a subscriber follows."""

    id: int
    subscriber_id: int
    text: str
    created_at: datetime


@dataclass(frozen=True)
class Caller:
    """Who sent a command and where, as the adapter reports it."""

    platform: str
    user_id: str
    channel_id: str = ""
    # Where the ids are unique: the Slack team; "" where they are global (Discord, console).
    workspace: str = ""
    can_manage_channel: bool = False  # decided by the adapter from platform permissions


@dataclass(frozen=True)
class PaperCard:
    """A paper ready to show: everything an adapter needs, no platform markup."""

    paper_id: str
    title: str
    url: str | None
    authors: str  # shortened: "A. One, B. Two et al."
    published: str | None
    upvotes: int | None
    summary: str  # the AI summary or the abstract's first sentences
    why: str
    links: dict[str, str]

    def meta(self, upvotes_format: str = "▲ {}") -> str:
        """`authors · date · ▲ upvotes`, leaving out what is unknown (plain text, unescaped)."""
        upvotes = upvotes_format.format(self.upvotes) if self.upvotes else ""
        return " · ".join(part for part in (self.authors, self.published or "", upvotes) if part)


@dataclass(frozen=True)
class DigestSection:
    """The papers of one topic in a digest, and how many more there were."""

    topic: str
    cards: tuple[PaperCard, ...]
    more: int = 0
    # The subscription the section's papers were matched for: the one their signals teach.
    topic_id: int | None = None
    # Titles learning left out (close to papers marked not relevant); previews show them.
    left_out: tuple[str, ...] = ()


@dataclass(frozen=True)
class Digest:
    """A subscriber's digest for one local date."""

    subscriber_id: int
    local_date: str
    sections: tuple[DigestSection, ...]

    @property
    def paper_ids(self) -> tuple[str, ...]:
        """The ids of every paper shown."""
        return tuple(card.paper_id for section in self.sections for card in section.cards)

    @property
    def is_empty(self) -> bool:
        """Whether there is nothing to post."""
        return not any(section.cards for section in self.sections)


@dataclass(frozen=True)
class Reply:
    """The answer to one command: text, optional cards or a digest, all plain data."""

    text: str
    cards: tuple[PaperCard, ...] = ()
    digest: Digest | None = None
    error: bool = False
    notice: str | None = None  # something the user should know first (e.g. DMs were closed)
    subscribe_topic: str | None = None  # offer a "subscribe to this topic" action
    # The caller's subscription to the looked-up topic: the cards' signals teach it.
    topic_id: int | None = None
