"""Outbound HTTP for the paper sources: a timeout on every call, retries with backoff.

Timeouts, connection errors, 429 and 5xx are retried with exponential backoff and jitter
(tenacity), honouring `Retry-After`; when the last attempt fails, `SourceError` is raised with a
clear message. Nothing is logged here above DEBUG: an ingest run makes many requests, and its
caller writes one line for the whole run (`bot.ingest.run_ingest`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from bot.errors import SourceError

log = logging.getLogger(__name__)

USER_AGENT = "paperbot/0.1 (research-paper digest bot; +https://github.com/paperbot/paperbot)"
MAX_RETRY_AFTER = 120.0
_backoff = wait_exponential_jitter(initial=1, max=60, jitter=1)

Sleep = Callable[[float], Awaitable[None]]


class RetryableStatus(Exception):
    """A 429 or 5xx answer, worth trying again."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (delta-seconds or an HTTP date), capped."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        date_header = response.headers.get("Date")
        now = parsedate_to_datetime(date_header) if date_header else None
        if now is None:
            return None
        seconds = (moment - now).total_seconds()
    return max(0.0, min(seconds, MAX_RETRY_AFTER))


def _wait(state: RetryCallState) -> float:
    outcome = state.outcome
    error = outcome.exception() if outcome else None
    if isinstance(error, RetryableStatus):
        asked = retry_after(error.response)
        if asked is not None:
            return asked
    return float(_backoff(state))


async def get(
    client: httpx.AsyncClient,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    what: str,
    attempts: int = 4,
    timeout: float = 20.0,
    sleep: Sleep | None = None,
) -> httpx.Response:
    """GET with retries; raises `SourceError` naming `what` when every attempt failed."""
    retrying = AsyncRetrying(
        sleep=sleep or asyncio.sleep,
        stop=stop_after_attempt(attempts),
        wait=_wait,
        retry=retry_if_exception_type((httpx.TransportError, RetryableStatus)),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                response = await client.get(
                    url, params=params, timeout=timeout, headers={"User-Agent": USER_AGENT}
                )
                if response.status_code == 429 or response.status_code >= 500:
                    raise RetryableStatus(response)
                if response.status_code >= 400:
                    raise SourceError(f"{what}: HTTP {response.status_code}")
                return response
    except (httpx.TransportError, RetryableStatus) as exc:
        log.debug("%s failed after %d attempts: %s", what, attempts, exc)
        raise SourceError(f"{what} failed after {attempts} attempts: {exc}") from exc
    raise SourceError(f"{what}: no attempt was made")  # pragma: no cover - tenacity always tries
