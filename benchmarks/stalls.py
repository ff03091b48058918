"""Look-up latency while a 10k-paper ingest and a 10k-subscriber digest run in the same bot.

Everything runs as in `paperbot run`: one event loop, one store thread, the real ingest
(Hugging Face JSON through httpx, answered by a MockTransport) and the real digest tick. A
look-up is started every 50 ms; its latency is the time until its reply is ready.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from benchmarks import digest as digest_bench
from benchmarks.corpus import synthetic_papers
from benchmarks.harness import p50_p99, queries
from bot.commands import parse_command
from bot.digests import DigestRunner
from bot.ingest import ingest_hf
from bot.models import Caller
from bot.runtime import StoreRunner
from bot.service import PaperBot
from bot.sources.hf import HuggingFaceSource
from bot.startup import settle_gc
from bot.storage import Store

INGEST_PAPERS = 10_000
DAYS = 20
INTERVAL = 0.05


def _daily_pages() -> dict[str, list[dict[str, Any]]]:
    papers = list(synthetic_papers(INGEST_PAPERS, seed=33, id_offset=500_000))
    per_day = INGEST_PAPERS // DAYS
    start = digest_bench.DUE.date() - timedelta(days=DAYS - 1)
    pages: dict[str, list[dict[str, Any]]] = {}
    for day in range(DAYS):
        chunk = papers[day * per_day : (day + 1) * per_day]
        pages[(start + timedelta(days=day)).isoformat()] = [
            {
                "paper": {
                    "id": p.id,
                    "title": p.title,
                    "summary": p.summary,
                    "authors": [{"name": a} for a in p.authors],
                    "publishedAt": f"{p.published}T00:00:00.000Z",
                    "upvotes": p.upvotes or 0,
                }
            }
            for p in chunk
        ]
    return pages


async def _measure(path: Path) -> dict[str, float]:
    pages = _daily_pages()

    def answer(request: httpx.Request) -> httpx.Response:
        items = pages.get(request.url.params["date"], [])
        page, size = int(request.url.params["p"]), int(request.url.params["limit"])
        return httpx.Response(200, json=items[page * size : (page + 1) * size])

    runner = StoreRunner(Store.open(path))
    bot = PaperBot(runner, clock=lambda: digest_bench.DUE)
    digests = DigestRunner(
        runner, {"console": digest_bench.Counting()}, clock=lambda: digest_bench.DUE
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    source = HuggingFaceSource(client, "http://hf.test/api")
    first = digest_bench.DUE.date() - timedelta(days=DAYS - 1)
    settle_gc()  # as `paperbot run` does once it has started
    background = asyncio.gather(
        ingest_hf(runner, source, digest_bench.DUE, since=first, until=digest_bench.DUE.date()),
        digests.tick(),
    )
    latencies: list[float] = []
    topics = queries()
    caller = Caller("console", "bench")

    async def lookup(text: str) -> None:
        started = time.perf_counter()
        await bot.run(caller, parse_command(text))
        latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    pending: list[asyncio.Task[None]] = []
    n = 0
    while not background.done():
        pending.append(asyncio.create_task(lookup(topics[n % len(topics)])))
        n += 1
        await asyncio.sleep(INTERVAL)
    ingest_report, tick_report = await background
    busy = time.perf_counter() - started
    await asyncio.gather(*pending)
    await client.aclose()
    await runner.close()
    p50, p99 = p50_p99(latencies)
    return {
        "lookups": len(latencies),
        "p50": p50,
        "p99": p99,
        "max": max(latencies),
        "busy_seconds": busy,
        "ingested": ingest_report.stats.new,
        "digests": tick_report.sent,
    }


def run(subscribers: int = 10_000) -> dict[str, float]:
    """Look-up latency (ms) while the ingest and the digest run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stalls.db"
        digest_bench.build(path, subscribers)
        return asyncio.run(_measure(path))


if __name__ == "__main__":
    print(run())
