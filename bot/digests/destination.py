"""What a platform must offer to receive digests; each adapter implements `Destination`."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from bot.models import Digest, Subscriber


class Destination(Protocol):
    """Where one platform's digests go; each adapter implements it.

    A digest is posted as a sequence of messages. `render` turns it into their bodies (text the
    ledger keeps, so a digest cut by a crash resumes with the very same messages); each body
    carries the ledger key `"{subscriber_id}:{local_date}"` and its part number where
    `find_posted` can see them (Slack message metadata, a Discord embed footer).

    `post` sends one body and returns the platform's message id. It raises `DestinationGone`
    when the destination will never accept messages, and `PostRejected` when the platform
    answered with an error (so the message is certainly not posted); any other exception
    leaves it uncertain whether the message went out.

    `find_posted` settles an uncertain message (its post began between `since` and `until`):
    the message id when the platform holds it, None when it does not. It raises
    `LookupUnavailable` when the platform cannot tell (a scope missing, no history), and the
    runner then resends: at least once instead of exactly once.
    """

    platform: str

    def render(self, digest: Digest, key: str) -> list[str]:
        """The digest's messages, in order, each carrying `key` and its part number."""
        ...

    async def post(self, subscriber: Subscriber, body: str) -> str:
        """Post one rendered message; return the platform message id."""
        ...

    async def find_posted(
        self, subscriber: Subscriber, key: str, part: int, since: datetime, until: datetime
    ) -> str | None:
        """The id of part `part` of digest `key` if the platform holds it, else None."""
        ...
