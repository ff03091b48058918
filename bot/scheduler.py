"""The clock: APScheduler 3.x on the event loop, starting the digest tick and ingestion.

Only a clock: jobs live in memory (nothing pickled) and carry no state; the database decides
who is due, so a missed or coalesced run loses nothing. Both jobs also run once at start
(the digest tick's catch-up after downtime).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

DIGEST_JOB = "digest-tick"
INGEST_JOB = "ingest"
# A tick later than this is dropped; the next one (a minute on) does the same work anyway.
DIGEST_MISFIRE_SECONDS = 50


def logged(name: str, job: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
    """Wrap a job so an exception is logged with its name and never reaches the scheduler.

    A job cancelled by a shutdown ends quietly: APScheduler would log the CancelledError as a
    failure with its traceback, and nothing failed (the database is left consistent and the
    next start resumes).
    """

    @functools.wraps(job)
    async def run() -> None:
        try:
            await job()
        except asyncio.CancelledError:
            log.debug("scheduled job %s stopped by shutdown", name)
        except Exception:
            log.exception("scheduled job %s failed; it runs again at its next time", name)

    return run


def build_scheduler(
    digest_tick: Callable[[], Awaitable[Any]],
    ingest: Callable[[], Awaitable[Any]] | None,
    ingest_minutes: int,
) -> AsyncIOScheduler:
    """A scheduler (not started) with the digest tick on every minute and ingestion every N."""
    if ingest_minutes < 1:
        raise ValueError("ingest_minutes must be at least 1")
    scheduler = AsyncIOScheduler(timezone=UTC)
    # Given per job (not only as defaults) so they hold before start too, when jobs are pending.
    once: dict[str, Any] = {"coalesce": True, "max_instances": 1}
    now = datetime.now(UTC)
    # Second 0, so a digest due at 09:00 goes out at 09:00:00, not up to a minute late.
    scheduler.add_job(
        logged(DIGEST_JOB, digest_tick),
        CronTrigger(second=0, timezone=UTC),
        id=DIGEST_JOB,
        name="digest tick",
        next_run_time=now,
        misfire_grace_time=DIGEST_MISFIRE_SECONDS,
        **once,
    )
    if ingest is not None:
        scheduler.add_job(
            logged(INGEST_JOB, ingest),
            IntervalTrigger(minutes=ingest_minutes, timezone=UTC),
            id=INGEST_JOB,
            name="ingest",
            next_run_time=now,
            # Late by up to half an interval still beats waiting for the next one.
            misfire_grace_time=max(60, ingest_minutes * 30),
            **once,
        )
    return scheduler


def scheduler_alive(scheduler: AsyncIOScheduler) -> bool:
    """Whether the scheduler runs and the digest tick has a next run."""
    job = scheduler.get_job(DIGEST_JOB) if scheduler.running else None
    return job is not None and job.next_run_time is not None
