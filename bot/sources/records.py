"""Turning raw records (our JSON Lines format, Hugging Face items) into `Paper` objects.

Every parser raises `ImportFormatError` with a short reason for a record it cannot use,
so callers can skip that record, name it in a warning, and keep the rest.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any, TypeVar

from bot.errors import ImportFormatError
from bot.ids import arxiv_id, arxiv_id_from_url, paper_links
from bot.models import Paper

_SPACES = re.compile(r"\s+")
log = logging.getLogger(__name__)
T = TypeVar("T")


def keep_good(
    records: Iterable[T], parse: Callable[[T], Paper], what: str, unit: str
) -> list[Paper]:
    """Parse every record, skipping (with a warning naming it) each one that is malformed."""
    papers = []
    for number, record in enumerate(records, start=1):
        try:
            papers.append(parse(record))
        except ImportFormatError as exc:
            log.warning("%s: skipped %s %d: %s", what, unit, number, exc)
    return papers


def tidy(text: Any) -> str:
    """Collapse runs of white space (arXiv titles carry line breaks) and strip the ends."""
    return _SPACES.sub(" ", str(text)).strip() if text is not None else ""


def iso_date(value: Any) -> str | None:
    """Normalise a date or datetime (ISO text, `Z` allowed) to `YYYY-MM-DD`; None when absent."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except ValueError as exc:
        raise ImportFormatError(f"bad date {text[:40]!r}") from exc


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ImportFormatError(f"{name} must be a whole number")
    try:
        return int(value)
    except ValueError as exc:
        raise ImportFormatError(f"{name} must be a whole number") from exc


def _str_list(value: Any, name: str) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list):
        names = []
        for item in value:
            if isinstance(item, Mapping):  # Hugging Face authors: {"name": ...}
                item = item.get("name")
            if isinstance(item, str) and item.strip():
                names.append(tidy(item))
        return tuple(names)
    raise ImportFormatError(f"{name} must be a list or a comma-separated string")


def _url(value: Any) -> str | None:
    return str(value).strip() if isinstance(value, str) and value.startswith("http") else None


def paper_from_jsonl(record: Any, source: str = "file") -> Paper:
    """A paper from one record of paperbot's JSON Lines format (see README, "Import")."""
    if not isinstance(record, Mapping):
        raise ImportFormatError("a record must be a JSON object")
    raw_id = tidy(record.get("id"))
    url = _url(record.get("url")) or _url(record.get("abs_url"))
    paper_id = arxiv_id(raw_id) or arxiv_id_from_url(url) or raw_id
    if not paper_id:
        raise ImportFormatError("no id")
    title = tidy(record.get("title"))
    if not title:
        raise ImportFormatError("no title")
    links: dict[str, str] = paper_links(paper_id) if arxiv_id(paper_id) else {}
    return Paper(
        id=paper_id,
        title=title,
        summary=tidy(record.get("summary") or record.get("abstract")),
        authors=_str_list(record.get("authors"), "authors"),
        published=iso_date(record.get("published")),
        abs_url=url or links.get("abs_url"),
        pdf_url=_url(record.get("pdf_url")) or links.get("pdf_url"),
        hf_url=_url(record.get("hf_url")) or links.get("hf_url"),
        code_url=_url(record.get("code_url")),
        categories=_str_list(record.get("categories"), "categories"),
        upvotes=_int_or_none(record.get("upvotes"), "upvotes"),
        comments=_int_or_none(record.get("comments"), "comments"),
        ai_summary=tidy(record.get("ai_summary")) or None,
        ai_keywords=_str_list(record.get("ai_keywords"), "ai_keywords"),
        sources=(source,),
    )


def is_hf_item(record: Any) -> bool:
    """Whether a JSON object looks like a Hugging Face Daily Papers / search item."""
    return isinstance(record, Mapping) and isinstance(record.get("paper"), Mapping)


def paper_from_hf(item: Any) -> Paper:
    """A paper from one Hugging Face Daily Papers (or paper search) item; `paper.*` is the truth."""
    if not is_hf_item(item):
        raise ImportFormatError("not a Hugging Face item (no 'paper' object)")
    paper = item["paper"]
    paper_id = arxiv_id(tidy(paper.get("id")))
    if not paper_id:
        raise ImportFormatError(f"no arXiv id (id={str(paper.get('id'))[:40]!r})")
    title = tidy(paper.get("title") or item.get("title"))
    if not title:
        raise ImportFormatError(f"{paper_id}: no title")
    links = paper_links(paper_id)
    comments = item.get("numComments")
    return Paper(
        id=paper_id,
        title=title,
        summary=tidy(paper.get("summary") or item.get("summary")),
        authors=_str_list(paper.get("authors"), "authors"),
        published=iso_date(paper.get("publishedAt")),
        abs_url=links["abs_url"],
        pdf_url=links["pdf_url"],
        hf_url=links["hf_url"],
        code_url=_url(paper.get("githubRepo")),
        upvotes=_int_or_none(paper.get("upvotes"), "upvotes"),
        comments=_int_or_none(comments, "numComments") if comments is not None else None,
        ai_summary=tidy(paper.get("ai_summary")) or None,
        ai_keywords=_str_list(paper.get("ai_keywords"), "ai_keywords"),
        sources=("hf",),
    )
