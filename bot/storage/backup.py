"""Online backups through SQLite's backup API: consistent while the bot keeps writing.

The copy is made into a temporary file beside the target, checked with `PRAGMA
integrity_check`, and renamed into place, so a backup that exists is a whole one.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bot.errors import PaperbotError

# Pages copied per step; between steps the bot's writers get the database back.
PAGES_PER_STEP = 1024


class BackupError(PaperbotError):
    """The backup could not be made; the message says why."""


@dataclass(frozen=True)
class BackupReport:
    """Where the backup went and what it holds."""

    path: Path
    papers: int
    subscribers: int
    bytes: int


def default_name(now: datetime) -> str:
    """A backup file name that sorts by time: paperbot-20261122T150000Z.db."""
    return f"paperbot-{now.strftime('%Y%m%dT%H%M%SZ')}.db"


def backup(source: Path, target: Path, now: datetime, overwrite: bool = False) -> BackupReport:
    """Copy the database at `source` to `target` (a file, or a directory to put one in)."""
    if not source.exists():
        raise BackupError(f"There is no database at {source}.")
    if target.is_dir():
        target = target / default_name(now)
    if target.exists() and not overwrite:
        raise BackupError(f"{target} exists; pass --force to replace it.")
    if target.resolve() == source.resolve():
        raise BackupError("The backup must not be the database itself.")
    partial = target.with_name(target.name + ".partial")
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=PAGES_PER_STEP)
            verdict = dst.execute("PRAGMA integrity_check").fetchone()[0]
            papers = dst.execute("SELECT count(*) FROM papers").fetchone()[0]
            subscribers = dst.execute("SELECT count(*) FROM subscribers").fetchone()[0]
        finally:
            dst.close()
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise BackupError(f"Backup failed: {exc}") from exc
    finally:
        src.close()
    if verdict != "ok":
        partial.unlink(missing_ok=True)
        raise BackupError(f"The copy failed its integrity check: {verdict}")
    os.replace(partial, target)
    return BackupReport(target, int(papers), int(subscribers), target.stat().st_size)
