"""Checkpointing the WAL from a thread of its own, so the store thread's commits need not."""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger(__name__)


class Checkpointer:
    """A thread that checkpoints a WAL database through its own connection until stopped."""

    def __init__(self, path: str, every: float) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._work, args=(path, every), name="paperbot-checkpoint", daemon=True
        )
        self._thread.start()

    def _work(self, path: str, every: float) -> None:
        conn = sqlite3.connect(path, timeout=10)
        try:
            while not self._stop.wait(every):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the store's own backstop checkpoints meanwhile
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop after the checkpoint under way, if any, and close the connection."""
        self._stop.set()
        self._thread.join()
