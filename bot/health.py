"""What `/healthz` and `paperbot doctor` report: is the store reachable, is the clock running,
and how long ago each source last ingested successfully.

A stale ingest makes the bot `degraded`, not `failing`: it still answers and sends digests from
what it has, and restarting it would not bring a source back. Only a store that does not answer
or a scheduler that has stopped are failures worth a restart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.runtime import StoreRunner
from bot.store import IngestStatus, Store

STORE_TIMEOUT_SECONDS = 2.0
# A source is stale when it has not succeeded for this many ingest intervals.
STALE_INTERVALS = 3


@dataclass
class Health:
    """The verdict and the facts behind it, ready to serve as JSON."""

    status: str  # ok, degraded or failing
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def failing(self) -> bool:
        """Whether the process should be restarted."""
        return self.status == "failing"


def _snapshot(store: Store) -> tuple[int, dict[str, IngestStatus]]:
    return store.count_papers(), store.ingest_status()


def _age(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 1)


async def check_health(
    runner: StoreRunner,
    scheduler_alive: bool,
    now: datetime,
    started_at: datetime,
    ingest_minutes: int,
    sources: tuple[str, ...] = ("hf", "arxiv"),
) -> Health:
    """Check the store (within 2 s), the scheduler, and each source's last successful ingest."""
    checks: dict[str, Any] = {"scheduler": "ok" if scheduler_alive else "stopped"}
    try:
        papers, statuses = await asyncio.wait_for(runner.call(_snapshot), STORE_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure to answer is the finding, not an error of ours
        checks["store"] = f"unreachable: {exc!r}"
        return Health("failing", checks)
    checks["store"] = "ok"
    checks["papers"] = papers
    stale_after = STALE_INTERVALS * ingest_minutes * 60
    stale = False
    ingest: dict[str, Any] = {}
    for source in sources:
        seen = statuses.get(source, IngestStatus(None, None, None))
        age = _age(seen.last_success, now)
        # Before the first success, count from the start so a fresh process is not stale.
        waited = age if age is not None else _age(started_at, now) or 0.0
        ingest[source] = {
            "last_success_age_seconds": age,
            "last_error": seen.last_error,
            "stale": waited > stale_after,
        }
        stale = stale or waited > stale_after
    checks["ingest"] = ingest
    verdict = "failing" if not scheduler_alive else "degraded" if stale else "ok"
    return Health(verdict, checks)
