"""The SQLite store: the only package that holds SQL.

`Store` owns one connection and hands out one repository per group of tables: `papers` (with
the FTS5 index and the vectors), `sources` (cursors, ingest outcomes), `subscribers` (with
topics, mutes and channel managers), `signals` (what readers taught a topic) and `ledger`
(deliveries). The async bot gives the store to
one worker thread (`bot.runtime`), so every call here is plain, short, synchronous work. These
repositories are the interface a second backend (PostgreSQL, `docs/scaling.md`) would implement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from bot.errors import PaperbotError
from bot.storage import migrations
from bot.storage.ledger import Ledger, SentDigest
from bot.storage.papers import Papers, UpsertStats
from bot.storage.signals import Signal, SignalCount, Signals
from bot.storage.sources import IngestStatus, Sources
from bot.storage.subscribers import Subscribers, topic_key
from bot.storage.times import parse_utc, utc_iso

__all__ = [
    "IngestStatus",
    "NotADatabase",
    "SentDigest",
    "Signal",
    "SignalCount",
    "Store",
    "Summary",
    "UpsertStats",
    "parse_utc",
    "summarize",
    "topic_key",
    "utc_iso",
]


class Store:
    """One SQLite database (a file, or ":memory:") and its repositories."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._conn: sqlite3.Connection = db.conn
        self.papers = Papers(db)
        self.sources = Sources(db.conn)
        self.subscribers = Subscribers(db)
        self.signals = Signals(db.conn)
        self.ledger = Ledger(db.conn)

    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open (creating if needed) the database at `path`, or in memory for ":memory:", and
        bring its schema up to date."""
        if str(path) == ":memory:":
            conn = sqlite3.connect(":memory:", check_same_thread=False)
        else:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread=False: created here, then owned by one worker thread.
            conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
        db = Database(conn)
        if str(path) != ":memory:":
            db.enable_wal()
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        migrations.apply(db)
        return cls(db)

    @property
    def conn(self) -> sqlite3.Connection:
        """The raw connection, for tests and benchmarks that fill or inspect the database
        directly. Product code goes through the repositories (`tests/test_project.py` checks
        that no SQL lives outside this package)."""
        return self._conn

    def pending_migrations(self) -> list[str]:
        """Names of the schema migrations this database has not had yet."""
        return migrations.pending(self._db)

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Commit what is written inside as one transaction (rolled back on an error)."""
        with self._conn:
            yield

    @property
    def wal_path(self) -> str | None:
        """The database file when it is in WAL mode (another connection may checkpoint it)."""
        mode = str(self._conn.execute("PRAGMA journal_mode").fetchone()[0])
        file = str(self._conn.execute("PRAGMA database_list").fetchone()[2])
        return file if mode == "wal" and file else None

    def set_autocheckpoint(self, pages: int) -> None:
        """Let the WAL grow to `pages` before a commit checkpoints it (see `bot.runtime`)."""
        self._conn.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")


class NotADatabase(PaperbotError):
    """The file is not a database paperbot can read."""


@dataclass(frozen=True)
class Summary:
    """What a database holds, as `paperbot doctor` reports it."""

    pending_migrations: list[str]
    papers: int
    ingests: dict[str, IngestStatus]
    vectors: dict[str, tuple[int, int]]  # by model: papers with a vector, the latest write's seq


def summarize(path: Path) -> Summary:
    """Read a database's state without changing it (no migrations, read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        db = Database(conn)
        tables = set(db.table_names())
        columns = db["paper_vectors"].columns_dict if "paper_vectors" in tables else {}
        store = Store(db)
        return Summary(
            store.pending_migrations(),
            store.papers.count() if "papers" in tables else 0,
            store.sources.ingest_status() if "ingest_status" in tables else {},
            store.papers.vector_summary() if "seq" in columns else {},
        )
    except sqlite3.DatabaseError as exc:
        raise NotADatabase(str(exc)) from exc
    finally:
        conn.close()
