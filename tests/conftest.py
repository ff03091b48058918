"""Shared fixtures: a real in-memory store, optionally filled with the bundled sample corpus."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.importer import import_files
from bot.store import Store

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED = ROOT / "bot" / "data" / "seed_papers.jsonl"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.open(":memory:")
    yield s
    s.close()


@pytest.fixture(scope="session")
def seeded_store() -> Iterator[Store]:
    """The 315 sample papers; shared by read-only tests, never written to."""
    s = Store.open(":memory:")
    report = import_files(s, [SEED], NOW)
    assert report.stats.new == 315 and not report.problems
    yield s
    s.close()
