"""Logging set-up: one line per event, as text or JSON, with configured secrets redacted.

Tokens should never reach a log call in the first place; the redacting filter is the second
line of defence for a library that logs a request it should not have (or an exception whose
message quotes one).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime

REDACTED = "[redacted]"
# Slack tokens by their shape (xoxb-, xoxp-, xoxe.xoxb- rotating, xoxe- refresh, xapp-): in
# OAuth mode each workspace's token comes from the database, not the settings, and slack_sdk
# logs oauth.v2.access's answers (the new tokens) at DEBUG.
TOKEN_SHAPE = re.compile(r"\b(?:xox[a-z]|xapp)[.-][\w.-]+")
# A private feed's address holds its secret (bot.feeds), and chat libraries log the replies
# that show it at DEBUG (slack_sdk the response_url's body, discord.py a follow-up's).
FEED_SECRET = re.compile(r"(/feeds/digests/)[\w-]+")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single-line JSON object."""
        event: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False)


class RedactSecrets(logging.Filter):
    """Replaces every occurrence of the given secret values, anything shaped like a Slack
    token, and the secret in a private feed's address, in a record with `[redacted]`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Short values would redact ordinary words; real tokens are long.
        self.secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return FEED_SECRET.sub(rf"\g<1>{REDACTED}", TOKEN_SHAPE.sub(REDACTED, text))

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message (and traceback) without the secrets; keep the record."""
        record.msg, record.args = self._clean(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        return True


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str, fmt: str, secrets: Iterable[str] = ()) -> None:
    """Send every log record to stderr at `level`, formatted as `fmt` (text or json)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "paperbot", False):
            root.removeHandler(old)
    handler.paperbot = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request at INFO; ingest and the sources log what matters themselves.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
