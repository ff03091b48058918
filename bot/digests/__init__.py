"""Daily digests, in three parts: `schedule` (when each is due), `build` (what goes in one)
and `runner` (claim -> send -> record, and recovery). Adapters implement `Destination`."""

from bot.digests.build import Budget, preview
from bot.digests.destination import Destination
from bot.digests.runner import DigestRunner, TickReport

__all__ = ["Budget", "Destination", "DigestRunner", "TickReport", "preview"]
