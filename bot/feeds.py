"""Atom feeds out: the newest papers on any topic, and each subscriber's digests, for readers.

Two feeds, each built in two steps:

* the store work, on the store thread in one call like a look-up: `search_feed` finds the
  newest papers a subscription to the topic would match, with why each matched (the topic
  language and the scoring of `bot.search`, over a bounded set of candidates);
  `digest_feed` finds the subscriber whose private feed has that secret and the papers of
  their latest sent digests (the ledger), with the topic each matched when its words say so;
* `render`: the Atom document (feedgen) and its validators, an ETag (a hash of the bytes) and
  Last-Modified (the newest entry's time). `PaperBot` runs it in the same store-thread call:
  on a worker thread of its own it made the event loop wait for the GIL twice as long
  (benchmarks/feeds.py). Readers poll feeds that have not changed, so the last few documents
  are kept: rendering again costs a hash of the data.

Entry ids are stable (the arXiv abstract URL, else a `tag:` URI of the paper id) and entries'
`updated` is when the store first saw the paper (search) or when the digest was sent
(digests), so readers dedupe them and do not show a paper again when its upvotes change.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from feedgen.feed import FeedGenerator

from bot.errors import InvalidQuery
from bot.ids import arxiv_id
from bot.models import Paper, SearchHit
from bot.search import Matcher, candidate_rowids, match_candidates
from bot.storage import SentDigest, Store, topic_key
from bot.topics import Topic, parse

if TYPE_CHECKING:
    from bot.semantic import Semantic

# Entries in a feed at most: a reader polls often, so the newest 50 cover any gap.
MAX_ENTRIES = 50
# A topic's feed scores this many of the newest papers with its words (per group of the
# topic), as a look-up of 10 results would: at 100k papers 12 ms (p50) of store time beside
# a 5-result look-up's 7 ms, and 46 of the 50 entries filled (median; 200 took 21 ms for 50).
SEARCH_CANDIDATES = 100
# A private feed reads this many of the latest sent digests (each holds at least one paper).
DIGESTS_READ = MAX_ENTRIES
# Rendered feeds kept (~100 kB each at 50 entries), for the readers polling them unchanged.
RENDERED_FEEDS = 32
# A private feed names the topic each paper was sent for by scoring papers against the
# subscriber's topics, this many (paper, topic) scores at most (~30 us each): 50 papers of a
# subscriber of 20 topics would otherwise cost 35 ms, five look-ups.
TOPIC_SCORES = 150
# A reader shows the whole abstract; a longer one (none on arXiv) is cut.
SUMMARY_CHARS = 3000
# Authors named per entry: a collaboration's paper can list hundreds.
MAX_AUTHORS = 25
# The endpoint's address when nothing else is configured (bot.config's defaults).
DEFAULT_BASE = "http://127.0.0.1:3000"
SEARCH_PATH = "/feeds/search.atom"
DIGESTS_PATH = "/feeds/digests/"
# 32 random bytes: 256 bits, 43 URL-safe characters.
TOKEN_BYTES = 32
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
TAG = "tag:paperbot,2026:"
ARXIV_SCHEME = "http://arxiv.org/schemas/atom"
TOPIC_SCHEME = f"{TAG}topic"
# The `updated` of a feed with no entries: a fixed moment, so its ETag stays put too.
NEVER = datetime(1970, 1, 1, tzinfo=UTC)
# A topic is one line: control characters in one are junk or an attack, never a topic.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What XML 1.0 cannot hold (lxml refuses it): stripped from papers' text and typed topics.
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Entry:
    """One paper in a feed: when it entered the feed, why it matched, and where it came from."""

    paper: Paper
    updated: datetime
    why: str = ""
    context: str = ""  # e.g. the digest and topic it was sent in
    topic: str | None = None


@dataclass(frozen=True)
class FeedData:
    """What a feed holds, as plain data: built on the store thread, rendered anywhere."""

    feed_id: str
    title: str
    subtitle: str
    self_url: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True)
class Feed:
    """An Atom document and its validators: `etag` is the opaque tag of a weak ETag (the same
    feed compressed is the same feed), `last_modified` the newest entry's time (whole seconds,
    as HTTP dates have them)."""

    body: bytes
    etag: str
    last_modified: datetime

    @property
    def etag_header(self) -> str:
        """The ETag header's value."""
        return f'W/"{self.etag}"'


# -- addresses ---------------------------------------------------------------------------------


def new_token() -> str:
    """A fresh secret for a private feed's address (256 random bits)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(text: str) -> bool:
    """Whether the text is shaped like a feed secret (checked before any store work)."""
    return _TOKEN.fullmatch(text) is not None


def search_url(base: str, query: str) -> str:
    """The address of a topic's feed."""
    return f"{base}{SEARCH_PATH}?{urlencode({'q': query})}"


def digests_url(base: str, token: str) -> str:
    """The address of a subscriber's private feed."""
    return f"{base}{DIGESTS_PATH}{token}.atom"


def entry_id(paper_id: str) -> str:
    """A paper's stable entry id: its arXiv abstract URL, else a `tag:` URI of its id."""
    found = arxiv_id(paper_id)
    if found:
        return f"https://arxiv.org/abs/{found}"
    return f"{TAG}paper:{quote(paper_id, safe='')}"


# -- the store work (on the store thread) ------------------------------------------------------


def parse_feed_topic(query: str) -> Topic:
    """The topic of a feed's `q`; raises `InvalidQuery` for an empty, too long or unusable one."""
    text = query.strip()
    if not text:
        raise InvalidQuery("Which topic? For example `?q=kv-cache` or `?q=mixture of experts`.")
    if _CONTROL.search(text):
        raise InvalidQuery("A topic is one line of text, without control characters.")
    return parse(text)


def search_feed(
    store: Store, base: str, query: str, today: date, semantic: Semantic | None = None
) -> FeedData:
    """The newest papers a subscription to the topic would match (at most `MAX_ENTRIES`), each
    with why it matched; raises `InvalidQuery` for unusable text."""
    topic = parse_feed_topic(query)
    text = query.strip()
    # The newest papers with the topic's words, then the digest's bar: precise, and bounded.
    papers = store.papers.by_rowid(candidate_rowids(store, topic, keep=SEARCH_CANDIDATES))
    hits, _ = match_candidates(
        store, topic, list(papers.values()), today, window=papers, semantic=semantic
    )
    hits.sort(key=_newest_first, reverse=True)
    return FeedData(
        feed_id=f"{TAG}search:{quote(topic_key(text), safe='')}",
        title=f"paperbot: {text}",
        subtitle=f"The newest papers on {text}, and why each matched",
        self_url=search_url(base, text),
        entries=tuple(
            Entry(h.paper, h.paper.first_seen_at or NEVER, h.why()) for h in hits[:MAX_ENTRIES]
        ),
    )


def _newest_first(hit: SearchHit) -> tuple[datetime, str, float, str]:
    paper = hit.paper
    return (paper.first_seen_at or NEVER, paper.published or "", hit.score, paper.id)


def digest_feed(store: Store, base: str, token: str) -> FeedData | None:
    """The papers of the latest digests sent to the subscriber whose private feed has this
    secret, newest first (at most `MAX_ENTRIES`, without papers muted since); None when no
    feed has it (a malformed secret is refused before this, by `PaperBot.digest_feed`)."""
    subscriber = store.subscribers.by_feed_token(token)
    if subscriber is None:
        return None
    muted = store.subscribers.muted(subscriber.id)
    sent_in: dict[str, SentDigest] = {}
    for digest in store.ledger.sent(subscriber.id, DIGESTS_READ):
        for paper_id in digest.paper_ids:
            if paper_id not in sent_in and paper_id not in muted:
                sent_in[paper_id] = digest
    chosen = dict(list(sent_in.items())[:MAX_ENTRIES])
    papers = store.papers.get_many(list(chosen))
    topics = _Topics(_matchers(store, [t.text for t in store.subscribers.topics(subscriber.id)]))
    entries = []
    for paper_id, digest in chosen.items():
        paper = papers.get(paper_id)
        if paper is None:
            continue
        topic, why = topics.of(paper)
        context = f"In your digest of {digest.local_date:%a %d %b %Y}"
        entries.append(
            Entry(paper, digest.sent_at, why, context + (f", for {topic}" if topic else ""), topic)
        )
    return FeedData(
        feed_id=f"{TAG}digests:{subscriber.id}",
        title="paperbot: your digests",
        subtitle="The papers of your latest paperbot digests, newest first",
        self_url=digests_url(base, token),
        entries=tuple(entries),
    )


def _matchers(store: Store, topics: Sequence[str]) -> list[tuple[str, Matcher]]:
    found = []
    for text in topics:
        # A topic saved before a change of the topic language may no longer parse.
        with contextlib.suppress(InvalidQuery):
            found.append((text, Matcher.for_store(parse(text), store)))
    return found


class _Topics:
    """Which of a subscriber's topics each paper of their digests was sent for, within
    `TOPIC_SCORES` scores.

    A digest lists its papers topic by topic, in the subscriber's order, so the topic of the
    paper before is tried first, then the ones after it: most papers cost one score.
    """

    def __init__(self, matchers: Sequence[tuple[str, Matcher]]) -> None:
        self.matchers = matchers
        self.left = TOPIC_SCORES
        self.last = 0

    def of(self, paper: Paper) -> tuple[str | None, str]:
        """The first topic whose words match the paper, and why; (None, "") when none does
        (the digest took it by meaning, or for what its reader taught the topic) or the
        scores are spent."""
        count = len(self.matchers)
        for step in range(count):
            if self.left <= 0:
                break
            self.left -= 1
            index = (self.last + step) % count
            text, matcher = self.matchers[index]
            scored = matcher.score(paper)
            if scored is not None and scored.matches:
                self.last = index
                return text, SearchHit(paper, scored.best.score, scored.best.reasons).why()
        return None, ""


# -- rendering ---------------------------------------------------------------------------------


def _xml(text: str) -> str:
    return _NOT_XML.sub("", text)


def _published(paper: Paper) -> datetime | None:
    if not paper.published:
        return None
    try:
        return datetime.combine(date.fromisoformat(paper.published), time(), UTC)
    except ValueError:
        return None


_LINK_NAMES = {"pdf": "PDF", "huggingface": "Hugging Face", "code": "Code"}


def _summary(entry: Entry, links: dict[str, str]) -> str:
    """The entry's text as HTML: why it matched, where it came from, the abstract, links."""
    paper = entry.paper
    parts = []
    if entry.why:
        parts.append(f"<p><b>Why it matched:</b> {html.escape(entry.why)}</p>")
    if entry.context:
        parts.append(f"<p>{html.escape(entry.context)}</p>")
    abstract = paper.ai_summary or paper.summary
    if len(abstract) > SUMMARY_CHARS:
        abstract = abstract[: SUMMARY_CHARS - 1].rsplit(" ", 1)[0] + "…"
    if abstract:
        parts.append(f"<p>{html.escape(abstract)}</p>")
    anchors = [
        f'<a href="{html.escape(links[kind])}">{name}</a>'
        for kind, name in _LINK_NAMES.items()
        if kind in links
    ]
    if anchors:
        parts.append(f"<p>{' · '.join(anchors)}</p>")
    return _xml("".join(parts) or f"<p>{html.escape(paper.title)}</p>")


@lru_cache(maxsize=RENDERED_FEEDS)
def render(data: FeedData) -> Feed:
    """The feed as an Atom document (feedgen), with its ETag and Last-Modified (the last
    `RENDERED_FEEDS` kept: the same data is the same document)."""
    updated = max((e.updated for e in data.entries), default=NEVER)
    fg = FeedGenerator()
    fg.id(data.feed_id)
    fg.title(_xml(data.title))
    fg.subtitle(_xml(data.subtitle))
    fg.updated(updated)
    # The feed's author stands for entries whose authors are unknown (Atom asks for one).
    fg.author(name="paperbot")
    fg.link(href=data.self_url, rel="self", type="application/atom+xml")
    for entry in data.entries:
        _add_entry(fg, entry)
    body: bytes = fg.atom_str(pretty=False)
    return Feed(body, hashlib.sha256(body).hexdigest()[:32], updated.replace(microsecond=0))


def _add_entry(fg: FeedGenerator, entry: Entry) -> None:
    paper = entry.paper
    fe = fg.add_entry(order="append")
    fe.id(entry_id(paper.id))
    fe.title(_xml(paper.title) or paper.id)
    fe.updated(entry.updated)
    published = _published(paper)
    if published is not None:
        fe.published(published)
    authors = [_xml(a).strip() for a in paper.authors[:MAX_AUTHORS]]
    if any(authors):
        fe.author([{"name": a} for a in authors if a])
    links = {kind: _xml(url) for kind, url in paper.links.items()}
    found = arxiv_id(paper.id)
    main = (
        links.get("abstract")
        or links.get("huggingface")
        or (f"https://arxiv.org/abs/{found}" if found else None)
    )
    summary = _summary(entry, links)
    fe.summary(summary, type="html")
    if main:
        # One link, the paper's page. feedgen 1.0.0 writes an entry link's href alone
        # (lkiesow/python-feedgen#135): an href alone is rel="alternate", as meant, but a second
        # link would be another alternate, which Atom forbids; the others go in the summary.
        fe.link(href=main)
    else:
        # An entry with no link must carry its content (RFC 4287, 4.1.1.1).
        fe.content(summary, type="html")
    if entry.topic and _xml(entry.topic).strip():
        fe.category(term=_xml(entry.topic), scheme=TOPIC_SCHEME)
    for category in paper.categories:
        if _xml(category).strip():
            fe.category(term=_xml(category), scheme=ARXIV_SCHEME)
