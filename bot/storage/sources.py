"""The sources' side of the store: how far each source has been read, and how its ingests went."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from bot.storage.times import parse_utc, utc_iso


@dataclass(frozen=True)
class IngestStatus:
    """The outcome of a source's latest ingests."""

    last_success: datetime | None
    last_error: str | None


class Sources:
    """Source cursors (`source_state`) and ingest outcomes (`ingest_status`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def cursor(self, source: str) -> str | None:
        """The saved position of a source (e.g. the last list date fetched), or None."""
        row = self._conn.execute(
            "SELECT cursor FROM source_state WHERE source = ?", [source]
        ).fetchone()
        return None if row is None else str(row[0])

    def set_cursor(self, source: str, cursor: str, now: datetime) -> None:
        """Remember how far a source has been read."""
        with self._conn:
            self._conn.execute(
                "INSERT INTO source_state (source, cursor, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(source) DO UPDATE SET cursor = excluded.cursor, "
                "updated_at = excluded.updated_at",
                [source, cursor, utc_iso(now)],
            )

    def record_ingest(self, source: str, error: str | None, now: datetime) -> None:
        """Remember that an ingest from a source just succeeded (error None) or failed."""
        if error is None:
            sql = (
                "INSERT INTO ingest_status (source, last_success_at) VALUES (?, ?) "
                "ON CONFLICT(source) DO UPDATE SET last_success_at = excluded.last_success_at"
            )
            params = [source, utc_iso(now)]
        else:
            sql = (
                "INSERT INTO ingest_status (source, last_failure_at, last_error) VALUES (?, ?, ?) "
                "ON CONFLICT(source) DO UPDATE SET last_failure_at = excluded.last_failure_at, "
                "last_error = excluded.last_error"
            )
            params = [source, utc_iso(now), error[:500]]
        with self._conn:
            self._conn.execute(sql, params)

    def ingest_status(self) -> dict[str, IngestStatus]:
        """Per source: when it last succeeded, and why it last failed."""
        return {
            str(r[0]): IngestStatus(parse_utc(r[1]) if r[1] else None, r[2])
            for r in self._conn.execute(
                "SELECT source, last_success_at, last_error FROM ingest_status"
            )
        }
