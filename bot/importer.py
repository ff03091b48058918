"""`paperbot import`: JSON Lines in paperbot's format and Hugging Face Daily Papers responses.

A file whose first non-blank character is `[` is read as one JSON array (a Daily Papers API
response, or an array of paperbot records); anything else as JSON Lines. A bad record is
reported with its line (or item) number and skipped; the rest is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.errors import ImportFormatError
from bot.models import Paper
from bot.sources.records import is_hf_item, paper_from_hf, paper_from_jsonl
from bot.storage import Store, UpsertStats


@dataclass(frozen=True)
class Problem:
    """A record that was skipped, and why."""

    path: str
    where: str  # "line 12" or "item 3"
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.where}: {self.reason}"


@dataclass
class ImportReport:
    """What an import did, for the summary line."""

    stats: UpsertStats = field(default_factory=UpsertStats)
    problems: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        """One line: new, updated, unchanged and skipped counts."""
        s = self.stats
        return (
            f"{s.new} new, {s.updated} updated, {s.unchanged} unchanged, "
            f"{len(self.problems)} skipped"
        )


Parsed = tuple[str, Paper | ImportFormatError]


def _parse(record: Any) -> Paper:
    return paper_from_hf(record) if is_hf_item(record) else paper_from_jsonl(record)


def read_file(path: Path) -> Iterator[Parsed]:
    """Yield (location, paper or the error that stopped it) for every record of a file."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        head = handle.read(4096).lstrip()
        handle.seek(0)
        if head.startswith("["):
            try:
                items = json.load(handle)
            except json.JSONDecodeError as exc:
                yield "file", ImportFormatError(f"not valid JSON ({exc.msg}, line {exc.lineno})")
                return
            for number, item in enumerate(items, start=1):
                yield f"item {number}", _safely(_parse, item)
            return
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield f"line {number}", ImportFormatError(f"not valid JSON ({exc.msg})")
                continue
            yield f"line {number}", _safely(_parse, record)


def _safely(parse: Callable[[Any], Paper], record: Any) -> Paper | ImportFormatError:
    try:
        return parse(record)
    except ImportFormatError as exc:
        return exc


def import_records(
    store: Store,
    path_name: str,
    records: Iterable[Parsed],
    now: datetime,
    report: ImportReport,
    batch_size: int = 1000,
) -> None:
    """Store the good records of one file in batches and note the bad ones in `report`."""
    batch: list[Paper] = []
    for where, parsed in records:
        if isinstance(parsed, ImportFormatError):
            report.problems.append(Problem(path_name, where, str(parsed)))
            continue
        batch.append(parsed)
        if len(batch) >= batch_size:
            report.stats.add(store.papers.upsert(batch, now))
            batch = []
    if batch:
        report.stats.add(store.papers.upsert(batch, now))


def import_files(store: Store, paths: Iterable[Path], now: datetime) -> ImportReport:
    """Import every file; unreadable files are reported, not raised."""
    report = ImportReport()
    for path in paths:
        try:
            import_records(store, str(path), read_file(path), now, report)
        except OSError as exc:
            report.problems.append(Problem(str(path), "file", exc.strerror or str(exc)))
    return report


def sample_corpus_path() -> Path:
    """The bundled sample corpus (315 real papers from Hugging Face paper pages)."""
    return Path(__file__).resolve().parent / "data" / "seed_papers.jsonl"


def load_sample_corpus(store: Store, now: datetime) -> ImportReport:
    """Import the bundled sample corpus, so a fresh offline install has papers to show."""
    return import_files(store, [sample_corpus_path()], now)
