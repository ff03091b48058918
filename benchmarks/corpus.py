"""A deterministic synthetic corpus built from the sample corpus's vocabulary.

Titles are spliced from halves of real titles and abstracts from real sentences, so term
frequencies, phrase structure and acronyms look like the real thing at any size.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

from bot.importer import sample_corpus_path
from bot.models import Paper

_SENTENCES = re.compile(r"(?<=[.!?])\s+")


def _seed_rows() -> list[dict[str, object]]:
    with Path(sample_corpus_path()).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def synthetic_papers(count: int, seed: int = 7, id_offset: int = 0) -> Iterator[Paper]:
    """`count` papers with arXiv-like ids, reproducible for a given seed."""
    rng = random.Random(seed)
    rows = _seed_rows()
    titles = [str(r["title"]) for r in rows]
    heads = [
        t.split(":")[0] if ":" in t else " ".join(t.split()[: len(t.split()) // 2]) for t in titles
    ]
    tails = [
        t.split(":", 1)[1] if ":" in t else " ".join(t.split()[len(t.split()) // 2 :])
        for t in titles
    ]
    sentences = [s for r in rows for s in _SENTENCES.split(str(r["summary"])) if len(s) > 30]
    names = [
        "Ada Lovelace",
        "Alan Turing",
        "Grace Hopper",
        "Song Han",
        "Yann LeCun",
        "Fei-Fei Li",
        "Geoffrey Hinton",
        "Yoshua Bengio",
        "Daphne Koller",
        "Andrew Ng",
        "Tri Dao",
        "Noam Shazeer",
    ]
    for n in range(count):
        number = id_offset + n
        pid = f"{2000 + number // 100000:04d}.{number % 100000:05d}"
        title = f"{rng.choice(heads).strip()}: {rng.choice(tails).strip()}"
        summary = " ".join(rng.choice(sentences) for _ in range(rng.randint(5, 9)))
        yield Paper(
            id=pid,
            title=title,
            summary=summary,
            authors=tuple(rng.sample(names, rng.randint(1, 4))),
            published=f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            abs_url=f"https://arxiv.org/abs/{pid}",
            categories=(rng.choice(["cs.LG", "cs.CL", "cs.CV", "cs.AI"]),),
            upvotes=rng.choice([None, 0, 1, 3, 10, 40]),
            sources=("arxiv",),
        )
