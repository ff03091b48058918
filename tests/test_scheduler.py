"""The scheduler is a clock: the right triggers, runs at start, survives failing jobs."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.scheduler import DIGEST_JOB, INGEST_JOB, build_scheduler, logged


async def _noop() -> None:
    return None


def test_jobs_and_triggers() -> None:
    scheduler = build_scheduler(_noop, _noop, ingest_minutes=15)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {DIGEST_JOB, INGEST_JOB}

    digest = jobs[DIGEST_JOB]
    assert isinstance(digest.trigger, CronTrigger)
    fields = {f.name: str(f) for f in digest.trigger.fields}
    assert fields["second"] == "0"
    assert fields["minute"] == "*" and fields["hour"] == "*"
    after = datetime(2026, 5, 4, 7, 0, 30, tzinfo=UTC)
    assert digest.trigger.get_next_fire_time(None, after) == datetime(2026, 5, 4, 7, 1, tzinfo=UTC)

    ingest = jobs[INGEST_JOB]
    assert isinstance(ingest.trigger, IntervalTrigger)
    assert ingest.trigger.interval == timedelta(minutes=15)

    now = datetime.now(UTC)
    for job in jobs.values():
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.misfire_grace_time > 0
        # Both run once right at start (catch-up after downtime, a fresh store).
        assert abs((job.next_run_time - now).total_seconds()) < 5
    assert digest.misfire_grace_time < 60


def test_without_ingestion_only_the_digest_tick_is_scheduled() -> None:
    scheduler = build_scheduler(_noop, None, ingest_minutes=30)
    assert [job.id for job in scheduler.get_jobs()] == [DIGEST_JOB]


def test_a_zero_interval_is_refused() -> None:
    with pytest.raises(ValueError):
        build_scheduler(_noop, _noop, ingest_minutes=0)


async def test_a_real_scheduler_runs_both_jobs_at_start_and_survives_a_failing_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticked = asyncio.Event()
    ingested = asyncio.Event()

    async def tick() -> None:
        ticked.set()
        raise RuntimeError("tick exploded")

    async def ingest() -> str:
        ingested.set()
        return "ok"

    scheduler = build_scheduler(tick, ingest, ingest_minutes=60)
    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        scheduler.start()
        try:
            await asyncio.wait_for(asyncio.gather(ticked.wait(), ingested.wait()), timeout=2)
            await asyncio.sleep(0.05)  # let the failing job finish and log
            assert scheduler.running
            assert {job.id for job in scheduler.get_jobs()} == {DIGEST_JOB, INGEST_JOB}
            digest = scheduler.get_job(DIGEST_JOB)
            assert digest is not None and digest.next_run_time.second == 0
        finally:
            scheduler.shutdown(wait=False)
    assert any("digest-tick failed" in r.getMessage() for r in caplog.records)
    assert any(r.exc_info and "tick exploded" in str(r.exc_info[1]) for r in caplog.records)


async def test_logged_swallows_and_logs_exceptions(caplog: pytest.LogCaptureFixture) -> None:
    async def bad() -> None:
        raise KeyError("x")

    with caplog.at_level(logging.ERROR, logger="bot.scheduler"):
        await logged("ingest", bad)()
    (record,) = caplog.records
    assert "ingest failed" in record.getMessage()


async def test_a_job_cancelled_by_shutdown_ends_quietly(caplog: pytest.LogCaptureFixture) -> None:
    # APScheduler logs whatever a job raises, CancelledError included, as an error with a
    # traceback; a graceful stop must not.
    async def cancelled() -> None:
        raise asyncio.CancelledError

    with caplog.at_level(logging.DEBUG, logger="bot.scheduler"):
        await logged("digest-tick", cancelled)()
    assert [r.levelname for r in caplog.records] == ["DEBUG"]
    assert "stopped by shutdown" in caplog.records[0].getMessage()
