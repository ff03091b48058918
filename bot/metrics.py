"""Prometheus metrics for the bot's work: ingest, digests, commands, and the adapters' states.

They live in the default prometheus_client registry (next to its process metrics: memory, CPU,
open files), which the ops HTTP endpoint serves at `/metrics`. Labels are bounded: a platform,
a source, a command action, a failure kind, an adapter; never a user, channel or topic.
"""

from __future__ import annotations

from prometheus_client import Counter, Enum, Histogram

PAPERS_INGESTED = Counter(
    "paperbot_papers_ingested", "Papers new to the store, by source.", ["source"]
)
SOURCE_ERRORS = Counter(
    "paperbot_source_errors", "Ingest runs of a source that failed after retries.", ["source"]
)
DIGESTS_SENT = Counter("paperbot_digests_sent", "Digests delivered, by platform.", ["platform"])
DIGESTS_FAILED = Counter(
    "paperbot_digests_failed",
    "Digest deliveries that failed: 'transient' (retried later) or 'gone' (stopped).",
    ["platform", "kind"],
)
COMMAND_SECONDS = Histogram(
    "paperbot_command_seconds",
    "Time to answer a /papers command, by platform and action.",
    ["platform", "action"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
FEED_SECONDS = Histogram(
    "paperbot_feed_seconds",
    "Time to build an Atom feed: 'search' (a topic's) or 'digests' (a subscriber's).",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
# A gauge per adapter and state, 1 for its current state (see bot.health.Adapters).
ADAPTER_STATE = Enum(
    "paperbot_adapter_state",
    "Each chat adapter's state: starting, ok, retrying (transient failure) or failed.",
    ["adapter"],
    states=["starting", "ok", "retrying", "failed"],
)

# Series exist from the start (at 0), so dashboards and rate() see them before the first event.
for _source in ("hf", "arxiv"):
    PAPERS_INGESTED.labels(_source)
    SOURCE_ERRORS.labels(_source)
for _platform in ("slack", "discord", "console"):
    DIGESTS_SENT.labels(_platform)
    for _kind in ("transient", "gone"):
        DIGESTS_FAILED.labels(_platform, _kind)
for _kind in ("search", "digests"):
    FEED_SECONDS.labels(_kind)
