"""The core's exception hierarchy; adapters turn these into polite replies in one place."""

from __future__ import annotations


class PaperbotError(Exception):
    """Base of every error the core raises on purpose; its message is safe to show a user."""


class InvalidQuery(PaperbotError):
    """A topic or search text that cannot be understood."""


class ImportFormatError(PaperbotError):
    """A file or record that is not in a format paperbot reads."""


class DestinationGone(PaperbotError):
    """A digest destination that will not accept messages (DMs closed, channel deleted, removed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SourceError(PaperbotError):
    """A paper source could not be read (down, rate-limited past our patience, or malformed)."""


class LookupUnavailable(PaperbotError):
    """A platform cannot tell whether it holds a message (a scope missing, no history at all).

    The digest runner then resends the uncertain message: at least once instead of exactly once.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PostRejected(PaperbotError):
    """The platform answered a post with an error (a 5xx, a rate limit past the client's
    retries): the message is certainly not posted, so sending it again cannot repeat it."""
