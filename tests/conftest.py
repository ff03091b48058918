"""Shared fixtures: a real in-memory store, optionally filled with the bundled sample corpus."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.importer import import_files
from bot.storage import Store
from tests.netguard import no_internet  # noqa: F401  (autouse: no test reaches the internet)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SEED = ROOT / "bot" / "data" / "seed_papers.jsonl"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


# The tokens the suite's flows run with. No log line of any test may contain one of them.
SLACK_TEST_TOKEN = "xoxb-test-token-9f8e7d6c5b4a"
SLACK_TEST_SIGNING_SECRET = "test-signing-secret-4b3a2c1d"
DISCORD_TEST_TOKEN = "MTExMTExMTExMTExMTExMTEx.Gtest1.discord-test-secret-5e4d3c"
KNOWN_SECRETS = (
    SLACK_TEST_TOKEN,
    SLACK_TEST_SIGNING_SECRET,
    DISCORD_TEST_TOKEN,
    "discord-test-secret-5e4d3c",  # the part of the Discord token that is the secret
)


class _AllLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(logging.Formatter().format(record))


@pytest.fixture(autouse=True)
def no_secret_in_any_log_line() -> Iterator[None]:
    """Every test runs with DEBUG logging captured; a known test token in any line fails it."""
    root = logging.getLogger()
    handler, level = _AllLines(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    leaked = [line for line in handler.lines if any(s in line for s in KNOWN_SECRETS)]
    assert not leaked, f"a test token reached the logs: {leaked[:3]}"


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
