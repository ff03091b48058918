"""`make bench`: every benchmark in one run on this machine, printed as one table.

Corpora are generated deterministically and cached in benchmarks/.cache (the 1M-paper store
takes about 4 minutes to build once, and 2.6 GB of disk). `--quick` stops at 100k papers and
10k subscribers.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from benchmarks import digest, feeds, lookup, memory, stalls
from benchmarks import semantic as meaning
from benchmarks.harness import EPOCH, corpus, fill
from bot.semantic import missing
from bot.storage import Store

TARGETS = {
    "lookup": "p99 <= 2x raw and < 50 ms at 1M",
    "feed": "about one look-up; loop lateness p99 <= a look-up's",
    "digest": "100k subscribers < 30 s",
    "import": ">= 5,000 papers/s",
    "stalls": "look-up p99 < 100 ms",
    "memory": "peak RSS < 200 MB at 1M",
    "semantic": "p99 <= 25 ms at 100k, <= 50 ms at 1M",
    "semantic_memory": "peak RSS <= 300 MB at 1M",
    "embedding": ">= 2x 3.5 papers/s",
}


def _import_rate(count: int = 50_000) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "import.db")
        started = time.perf_counter()
        fill(store, count, seed=3, at=EPOCH)
        elapsed = time.perf_counter() - started
        store.close()
    return count / elapsed


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    python = platform.python_version()
    system = f"{platform.system()} {platform.machine()}"
    return f"{system}, {os.cpu_count()} CPUs ({cpu}), Python {python}"


@click.command()
@click.option("--quick", is_flag=True, help="Stop at 100k papers and 10k subscribers.")
def main(quick: bool) -> None:
    """Run the benchmarks and print one table."""
    say = lambda text: click.echo(text, err=True)  # noqa: E731
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    audiences = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    rows: list[tuple[str, str, str, str]] = []
    say(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {_machine()}")
    for size in sizes:
        with corpus(size, say) as path:
            say(f"look-ups over {size:,} papers")
            r = lookup.run(path)
            rows.append(
                (
                    f"look-up, {size:,} papers",
                    f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms",
                    f"raw MATCH p50 {r['raw_p50']:.1f} / p99 {r['raw_p99']:.1f} ms; "
                    f"bm25-ranked p99 {r['bm25_p99']:.0f} ms",
                    TARGETS["lookup"],
                )
            )
    for size in (None, *sizes[:2]):
        name = "the 315-paper sample" if size is None else f"{size:,} papers"
        say(f"topic feeds over {name}")
        if size is None:
            f = feeds.run()
        else:
            with corpus(size, say) as path:
                f = feeds.run(path)
        rows.append(
            (
                f"topic feed over HTTP, {name}",
                f"p50 {f['p50']:.1f} ms, p99 {f['p99']:.1f} ms "
                f"(rendered afresh p50 {f['fresh_p50']:.1f} / p99 {f['fresh_p99']:.1f} ms)",
                f"look-up p50 {f['lookup_p50']:.1f} / p99 {f['lookup_p99']:.1f} ms; store "
                f"p50 {f['store_p50']:.1f} vs {f['lookup_store_p50']:.1f} ms; loop late p99 "
                f"{f['fresh_loop_lag_p99']:.1f} vs {f['lookup_loop_lag_p99']:.1f} ms; "
                f"{f['entries']:.0f} entries {f['bytes'] / 1000:.0f} kB "
                f"({f['gzip_bytes'] / 1000:.0f} kB gzipped)",
                TARGETS["feed"],
            )
        )
    for audience in audiences:
        say(f"digest run for {audience:,} subscribers")
        d = digest.run(audience, naive_limit=200)
        naive = "extrapolated from 200" if d["naive_extrapolated"] else "measured"
        rows.append(
            (
                f"digest, {audience:,} subscribers x 3 topics",
                f"{d['seconds']:.1f} s ({d['sent']:,.0f} sent, {d['distinct_topics']:.0f} topics)",
                f"naive loop {d['naive_seconds']:.0f} s ({naive})",
                TARGETS["digest"],
            )
        )
    audience = audiences[-1]
    say(f"digest run for {audience:,} subscribers, 10% of them with signals")
    learned = digest.run(audience, naive_limit=0, learners=0.1)
    rows.append(
        (
            f"digest, {audience:,} subscribers, 10% with 10 signals per topic",
            f"{learned['seconds']:.1f} s ({learned['sent']:,.0f} sent)",
            "docs/learning.md",
            TARGETS["digest"],
        )
    )
    say("bulk import")
    rows.append(("bulk import, FTS on", f"{_import_rate():,.0f} papers/s", "", TARGETS["import"]))
    say("look-ups during a 10k ingest and a 10k-subscriber digest")
    s = stalls.run()
    rows.append(
        (
            "look-up every 50 ms during ingest + digest",
            f"p50 {s['p50']:.0f} ms, p99 {s['p99']:.0f} ms, max {s['max']:.0f} ms",
            f"{s['lookups']:.0f} look-ups over {s['busy_seconds']:.0f} s",
            TARGETS["stalls"],
        )
    )
    with corpus(sizes[-1], say) as path:
        say(f"peak RSS over {sizes[-1]:,} papers")
        m = memory.run(path)
        semantic = (
            f"; {m['semantic_peak_mb']:.0f} MB console with the semantic model"
            if "semantic_peak_mb" in m
            else ""
        )
        rows.append(
            (
                f"peak RSS, {sizes[-1]:,} papers",
                f"{m['with_adapters_peak_mb']:.0f} MB with both adapters loaded",
                f"{m['console_peak_mb']:.0f} MB console only{semantic}",
                TARGETS["memory"],
            )
        )
    if missing() is None:
        say("the semantic extra: embedding, look-ups with it, the vector index, memory")
        for what, result in meaning.run(tuple(s for s in sizes if s >= 100_000), say):
            target = (
                TARGETS["embedding"]
                if what.startswith("embedding")
                else TARGETS["semantic_memory"]
                if what.startswith("peak RSS")
                else TARGETS["semantic"]
                if what.startswith("look-up")
                else ""
            )
            rows.append((what, result, "docs/semantic.md", target))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    header = ("benchmark", "result", "reference", "target")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    for row in (header, tuple("-" * w for w in widths), *rows):
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
