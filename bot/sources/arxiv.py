"""The arXiv API (Atom): recent papers in the followed categories, newest first.

arXiv asks for at most one request every 3 seconds, one at a time: a lock and a monotonic
clock space every call. Ids are stored without version; titles lose line breaks and
inline LaTeX markup (`$\\ln\\ln T$` -> `ln ln T`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date

import httpx

from bot import http
from bot.errors import ImportFormatError, SourceError
from bot.ids import arxiv_id_from_url, paper_links
from bot.models import Paper
from bot.sources.records import iso_date, keep_good, tidy

log = logging.getLogger(__name__)

NS = {"a": "http://www.w3.org/2005/Atom", "arxiv": "http://arxiv.org/schemas/atom"}
PAGE_SIZE = 100
_MATH = re.compile(r"\$([^$]*)\$")
_COMMAND = re.compile(r"\\([A-Za-z]+)")


def tidy_title(text: str) -> str:
    """Readable title: no line breaks, inline math without `$`, backslashes or braces."""

    def math(match: re.Match[str]) -> str:
        inner = _COMMAND.sub(r" \1 ", match.group(1))
        return inner.replace("{", "").replace("}", "")

    return tidy(_MATH.sub(math, text))


def _text(entry: ET.Element, path: str) -> str:
    found = entry.find(path, NS)
    return found.text or "" if found is not None else ""


def paper_from_entry(entry: ET.Element) -> Paper:
    """One Atom `<entry>` as a paper (raises `ImportFormatError` when unusable)."""
    raw_id = _text(entry, "a:id")
    paper_id = arxiv_id_from_url(raw_id)
    if not paper_id:
        raise ImportFormatError(f"no arXiv id in {raw_id[:60]!r}")
    title = tidy_title(_text(entry, "a:title"))
    if not title:
        raise ImportFormatError(f"{paper_id}: no title")
    links = paper_links(paper_id)
    return Paper(
        id=paper_id,
        title=title,
        summary=tidy(_text(entry, "a:summary")),
        authors=tuple(
            tidy(name.text) for name in entry.findall("a:author/a:name", NS) if name.text
        ),
        published=iso_date(_text(entry, "a:published")),
        abs_url=links["abs_url"],
        pdf_url=links["pdf_url"],
        hf_url=links["hf_url"],
        categories=tuple(
            c.get("term", "") for c in entry.findall("a:category", NS) if c.get("term")
        ),
        sources=("arxiv",),
    )


def parse_feed(body: bytes | str, what: str = "arXiv feed") -> list[Paper]:
    """Papers of an Atom feed; a bad entry is skipped with a warning naming it."""
    try:
        entries = ET.fromstring(body).findall("a:entry", NS)
    except ET.ParseError as exc:
        entries = _salvage_entries(body, what, exc)
    return keep_good(entries, paper_from_entry, what, "entry")


_ENTRY = re.compile(r"<entry>.*?</entry>", re.S)
_WRAP = f'<feed xmlns="{NS["a"]}" xmlns:arxiv="{NS["arxiv"]}">{{}}</feed>'


def _salvage_entries(body: bytes | str, what: str, error: ET.ParseError) -> list[ET.Element]:
    """Parse entries one by one when one of them breaks the document (a bad entity, say)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    blocks = _ENTRY.findall(text)
    if not blocks:
        raise SourceError(f"{what}: not valid XML ({error})") from error
    entries = []
    for number, block in enumerate(blocks, start=1):
        try:
            entries += ET.fromstring(_WRAP.format(block)).findall("a:entry", NS)
        except ET.ParseError as exc:
            log.warning("%s: skipped entry %d: not valid XML (%s)", what, number, exc)
    return entries


class ArxivSource:
    """Pages back through arXiv's newest submissions in the followed categories."""

    name = "arxiv"

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_url: str = "https://export.arxiv.org/api/query",
        categories: tuple[str, ...] = ("cs.LG", "cs.CL", "cs.CV", "cs.AI"),
        *,
        min_interval: float = 3.0,
        timeout: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: http.Sleep = asyncio.sleep,
    ) -> None:
        self.client = client
        self.api_url = api_url
        self.categories = categories
        self.min_interval = min_interval
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self._lock = asyncio.Lock()
        self._last: float | None = None

    async def page(self, start: int, size: int = PAGE_SIZE) -> list[Paper]:
        """One page of results, newest submissions first, spaced from the previous request."""
        query = " OR ".join(f"cat:{c}" for c in self.categories)
        what = f"arXiv query start={start}"
        async with self._lock:
            if self._last is not None:
                wait = self.min_interval - (self.clock() - self._last)
                if wait > 0:
                    await self.sleep(wait)
            try:
                response = await http.get(
                    self.client,
                    self.api_url,
                    params={
                        "search_query": query,
                        "sortBy": "submittedDate",
                        "sortOrder": "descending",
                        "start": start,
                        "max_results": size,
                    },
                    what=what,
                    timeout=self.timeout,
                    sleep=self.sleep,
                )
            finally:
                self._last = self.clock()
        return parse_feed(response.content, what)

    async def recent(
        self,
        since: date | None = None,
        known: Callable[[str], bool] | None = None,
        max_pages: int = 5,
        page_size: int = PAGE_SIZE,
    ) -> list[Paper]:
        """New papers back to `since` (by published date) or to a page we already know."""
        found: list[Paper] = []
        for number in range(max_pages):
            papers = await self.page(number * page_size, page_size)
            if not papers:
                break
            fresh = [
                p
                for p in papers
                if since is None or (p.published and p.published >= since.isoformat())
            ]
            found += fresh
            if len(fresh) < len(papers):
                break  # reached papers older than `since`
            if known is not None and all(known(p.id) for p in papers):
                break  # everything on this page is already stored
            if len(papers) < page_size:
                break
        return found
