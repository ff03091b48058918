"""Pulling new papers from the sources into the store, merged by arXiv id.

Each source keeps a cursor (`source_state`): Hugging Face the last list date fetched (fetched
again next time, since a day's list grows while it lasts), arXiv the newest published date
seen. A source that fails leaves the store and its cursor as they were; the next run
catches up from the cursor. All store work goes through the `StoreRunner`.

A run logs one line: INFO when every source answered, one WARNING naming each source that
failed and why (an offline machine gets one line an hour, not one per request and source).

With the semantic extra a run then gives new papers their vectors (`embed_pending`): the
model runs on a thread of its own, the store thread only reads and writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import httpx

from bot.config import Settings
from bot.errors import SourceError
from bot.metrics import PAPERS_INGESTED, SOURCE_ERRORS
from bot.models import Paper
from bot.runtime import StoreRunner, settle_future
from bot.semantic import EMBED_BATCH, Semantic
from bot.sources.arxiv import ArxivSource
from bot.sources.hf import HuggingFaceSource
from bot.storage import Store, UpsertStats
from bot.topics import analyze_paper

log = logging.getLogger(__name__)

DEFAULT_LOOKBACK_DAYS = 3
# Vectors computed per ingest run (about 15 papers/s on 2 cores): the new papers and a slice of
# any backlog (an import), without holding up the next ingest; `paperbot reindex --semantic`
# does a whole store at once.
EMBED_PER_RUN = 5000
MAX_BACKFILL_DAYS = 366


@dataclass
class SourceReport:
    """What one source contributed."""

    stats: UpsertStats = field(default_factory=UpsertStats)
    fetched: int = 0
    failed: str | None = None

    def summary(self) -> str:
        """One line for the CLI and the log."""
        s = self.stats
        text = f"{self.fetched} fetched, {s.new} new, {s.updated} updated, {s.unchanged} unchanged"
        return text + (f"; FAILED: {self.failed}" if self.failed else "")


@dataclass
class IngestReport:
    """Per-source results of one ingest run."""

    sources: dict[str, SourceReport] = field(default_factory=dict)
    embedded: int = 0  # papers given semantic vectors (the semantic extra)

    @property
    def new(self) -> int:
        """Papers this run added to the store."""
        return sum(r.stats.new for r in self.sources.values())

    @property
    def failed(self) -> list[str]:
        """Names of the sources that failed."""
        return [name for name, r in self.sources.items() if r.failed]


# Papers written per store call: about 10 ms of the store thread (mostly FTS5 indexing), so a
# look-up waiting behind an ingest waits for one chunk, not for the whole day's list. (100 took
# 20-25 ms, up to 95 ms.)
WRITE_CHUNK = 50
# Papers analysed per store call before they are written (0.2-0.4 ms each).
ANALYZE_CHUNK = 20


def _analyze(store: Store, papers: Sequence[Paper]) -> None:
    for paper in papers:
        analyze_paper(paper)


async def _store(runner: StoreRunner, papers: list[Paper], now: datetime) -> UpsertStats:
    stats = UpsertStats()
    for start in range(0, len(papers), WRITE_CHUNK):
        chunk = papers[start : start + WRITE_CHUNK]
        # A look-up scores the newest papers with its words: during an ingest, the ones just
        # written. Analysed here first, in short background steps, a look-up finds them in the
        # cache instead of analysing up to 50 itself (up to 55 ms) while others queue behind it.
        for offset in range(0, len(chunk), ANALYZE_CHUNK):
            await runner.background(_analyze, chunk[offset : offset + ANALYZE_CHUNK])
        stats.add(await runner.background(_upsert, chunk, now))
    return stats


def _upsert(store: Store, papers: Sequence[Paper], now: datetime) -> UpsertStats:
    return store.papers.upsert(papers, now)


def _set_cursor(source: str, cursor: str, now: datetime) -> Callable[[Store], None]:
    return lambda store: store.sources.set_cursor(source, cursor, now)


async def ingest_hf(
    runner: StoreRunner,
    source: HuggingFaceSource,
    now: datetime,
    since: date | None = None,
    until: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> SourceReport:
    """Fetch the Daily Papers lists from `since` (or the cursor) to `until` (or today)."""
    report = SourceReport()
    cursor = await runner.background(lambda store: store.sources.cursor("hf"))
    last = until or now.date()
    first = since or (
        date.fromisoformat(cursor) if cursor else last - timedelta(DEFAULT_LOOKBACK_DAYS)
    )
    first = max(first, last - timedelta(MAX_BACKFILL_DAYS))
    day = first
    while day <= last:
        try:
            papers = await source.daily(day)
        except SourceError as exc:
            report.failed = str(exc)
            break
        report.fetched += len(papers)
        report.stats.add(await _store(runner, papers, now))
        done = day.isoformat()
        await runner.background(_set_cursor("hf", done, now))
        if progress:
            progress(f"hf {done}: {len(papers)} papers")
        day += timedelta(days=1)
    return report


async def ingest_arxiv(
    runner: StoreRunner,
    source: ArxivSource,
    now: datetime,
    since: date | None = None,
    until: date | None = None,
    max_pages: int = 5,
    progress: Callable[[str], None] | None = None,
) -> SourceReport:
    """Fetch arXiv's newest papers back to `since` (or a day before the cursor)."""
    report = SourceReport()
    cursor = await runner.background(lambda store: store.sources.cursor("arxiv"))
    start = since or (
        date.fromisoformat(cursor) - timedelta(days=1)
        if cursor
        else now.date() - timedelta(DEFAULT_LOOKBACK_DAYS)
    )
    try:
        papers = await source.recent(since=start, max_pages=max_pages)
    except SourceError as exc:
        report.failed = str(exc)
        return report
    if until is not None:
        papers = [p for p in papers if not p.published or p.published <= until.isoformat()]
    report.fetched = len(papers)
    report.stats.add(await _store(runner, papers, now))
    newest = max((p.published for p in papers if p.published), default=None)
    if newest and (cursor is None or newest > cursor):
        await runner.background(_set_cursor("arxiv", newest, now))
    if progress:
        progress(f"arxiv since {start}: {len(papers)} papers")
    return report


async def run_ingest(
    settings: Settings,
    runner: StoreRunner,
    now: datetime,
    source: str = "all",
    since: date | None = None,
    until: date | None = None,
    progress: Callable[[str], None] | None = None,
    client: httpx.AsyncClient | None = None,
    semantic: Semantic | None = None,
) -> IngestReport:
    """Ingest from the configured sources with a client built from the settings; with the
    semantic extra, then embed (some of) the papers that lack vectors."""
    report = IngestReport()
    own = client is None
    client = client or httpx.AsyncClient(timeout=settings.http_timeout_seconds)
    try:
        if source in ("all", "hf"):
            hf = HuggingFaceSource(
                client, settings.hf_api_url, timeout=settings.http_timeout_seconds
            )
            report.sources["hf"] = await ingest_hf(runner, hf, now, since, until, progress)
        if source in ("all", "arxiv"):
            arxiv = ArxivSource(
                client,
                settings.arxiv_api_url,
                settings.categories,
                timeout=settings.http_timeout_seconds,
            )
            report.sources["arxiv"] = await ingest_arxiv(
                runner, arxiv, now, since, until, progress=progress
            )
    finally:
        if own:
            await client.aclose()
    if report.sources:
        # A failed source is named with its error alone: the counts of nothing say nothing.
        parts = "; ".join(
            f"{name}: {part.summary() if not part.failed or part.fetched else part.failed}"
            for name, part in report.sources.items()
        )
        if report.failed:
            log.warning("ingest: %s (the store keeps what it has; the next run catches up)", parts)
        else:
            log.info("ingest: %s", parts)
    for name, part in report.sources.items():
        PAPERS_INGESTED.labels(name).inc(part.stats.new)
        if part.failed:
            SOURCE_ERRORS.labels(name).inc()
        await runner.background(_record(name, part.failed, now))
    if semantic is not None:
        report.embedded = await embed_pending(runner, semantic, limit=EMBED_PER_RUN)
        if report.embedded:
            log.info("ingest: computed semantic vectors of %d papers", report.embedded)
    return report


def _record(source: str, error: str | None, now: datetime) -> Callable[[Store], None]:
    return lambda store: store.sources.record_ingest(source, error, now)


# -- semantic vectors of new papers (the semantic extra) -----------------------------------


def _without_vectors(store: Store, model: str, limit: int) -> list[tuple[int, str, str | None]]:
    return store.papers.without_vectors(model, limit)


def _save_vectors(
    store: Store, semantic: Semantic, rows: Sequence[tuple[int, bytes, bytes]]
) -> None:
    semantic.save(store.papers, rows)


async def _on_daemon_thread(fn: Callable[[Any], Any], arg: Any) -> Any:
    """`fn(arg)` on a thread of its own that does not hold up the process's exit.

    A batch of embeddings is seconds of CPU that only computes (the store thread writes the
    result): `asyncio.to_thread` made `quit` wait 10-20 s for a batch that was thrown away.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def work() -> None:
        try:
            result, error = fn(arg), None
        except BaseException as exc:  # handed to the awaiting coroutine
            result, error = None, exc
        # A closed loop: the bot stopped meanwhile and wants nothing back.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle_future, done, result, error)

    threading.Thread(target=work, name="paperbot-embed", daemon=True).start()
    return await done


async def embed_pending(runner: StoreRunner, semantic: Semantic, limit: int | None = None) -> int:
    """Like `bot.semantic.embed_missing` (up to `limit` papers), for the running bot: the store
    thread only reads and writes, the model runs in another thread (numpy releases the GIL in
    its products); how many."""
    name = semantic.encoder.name
    done = 0
    while limit is None or done < limit:
        size = EMBED_BATCH if limit is None else min(EMBED_BATCH, limit - done)
        todo = await runner.background(_without_vectors, name, size)
        if not todo:
            break
        rows = await _on_daemon_thread(semantic.embed, todo)
        await runner.background(_save_vectors, semantic, rows)
        done += len(todo)
    return done
