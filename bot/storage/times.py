"""How the store writes moments: ISO 8601 UTC text, which sorts and compares as time does."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_iso(moment: datetime) -> str:
    """Format an aware datetime as the ISO UTC text the store sorts and compares."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_utc(text: str) -> datetime:
    """Parse the store's ISO UTC text back into an aware datetime."""
    return datetime.fromisoformat(text).astimezone(UTC)
