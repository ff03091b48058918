"""Hugging Face Daily Papers (`/daily_papers`) and paper search (`/papers/search`).

The API answers a bare JSON array. `paper.*` is the truth (the outer `publishedAt` is the
listing's, not the paper's); the list date is the date of `paper.submittedOnDailyAt`; weekends
are empty lists; `ai_summary`, `ai_keywords` and `githubRepo` are optional.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

import httpx

from bot import http
from bot.errors import SourceError
from bot.models import Paper
from bot.sources.records import keep_good, paper_from_hf

log = logging.getLogger(__name__)

PAGE_SIZE = 100
MAX_PAGES = 10


def parse_items(items: Any, what: str) -> list[Paper]:
    """Papers from a Daily Papers / search response; bad items are skipped with a warning."""
    if not isinstance(items, list):
        raise SourceError(f"{what}: expected a JSON array, got {type(items).__name__}")
    return keep_good(items, paper_from_hf, what, "item")


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{what}: the answer is not valid JSON") from exc


class HuggingFaceSource:
    """Reads Hugging Face's paper API through an injected `httpx.AsyncClient`."""

    name = "hf"

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str = "https://huggingface.co/api",
        *,
        timeout: float = 20.0,
        sleep: http.Sleep | None = None,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.sleep = sleep

    async def daily(self, day: date) -> list[Paper]:
        """Every paper on the Daily Papers list of `day` (empty on weekends)."""
        papers: list[Paper] = []
        for page in range(MAX_PAGES):
            what = f"Hugging Face daily papers {day.isoformat()} page {page}"
            response = await http.get(
                self.client,
                f"{self.base_url}/daily_papers",
                params={"date": day.isoformat(), "limit": PAGE_SIZE, "p": page},
                what=what,
                timeout=self.timeout,
                sleep=self.sleep,
            )
            items = _json(response, what)
            papers += parse_items(items, what)
            if len(items) < PAGE_SIZE:
                break
        return papers

    async def search(self, query: str, limit: int = 10) -> list[Paper]:
        """Hugging Face's own paper search, for look-ups the local store cannot answer well."""
        what = "Hugging Face paper search"
        response = await http.get(
            self.client,
            f"{self.base_url}/papers/search",
            params={"q": query[:200]},
            what=what,
            timeout=self.timeout,
            sleep=self.sleep,
        )
        return parse_items(_json(response, what), what)[:limit]
