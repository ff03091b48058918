"""What `/healthz` and `paperbot doctor` report: is the store reachable, is the clock running,
how long ago each source last ingested successfully, and the state of each chat adapter.

A stale ingest makes the bot `degraded`, not `failing`: it still answers and sends digests from
what it has, and restarting it would not bring a source back. So does a chat adapter that is not
`ok` (still starting, retrying a connection, or failed for a reason a person must fix, such as a
refused token): the other adapters keep working, and a restart would not fix it. Only a store
that does not answer or a scheduler that has stopped are failures worth a restart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.metrics import ADAPTER_STATE
from bot.runtime import StoreRunner
from bot.storage import IngestStatus, Store

STORE_TIMEOUT_SECONDS = 2.0
# A source is stale when it has not succeeded for this many ingest intervals.
STALE_INTERVALS = 3


@dataclass
class Health:
    """The verdict and the facts behind it, ready to serve as JSON."""

    status: str  # ok, degraded or failing
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def failing(self) -> bool:
        """Whether the process should be restarted."""
        return self.status == "failing"


AdapterStateName = Literal["starting", "ok", "retrying", "failed"]


@dataclass(frozen=True)
class AdapterState:
    """One adapter's state and, unless ok, why."""

    state: AdapterStateName
    reason: str = ""


class Adapters:
    """The chat adapters' states: set by the adapters, read by /healthz, exported to /metrics.

    `starting` until connected, `ok` while serving, `retrying` after a transient failure (it
    will try again by itself), `failed` after one retrying cannot fix (the reason says what
    to fix). Only the adapters that were started are listed.
    """

    def __init__(self) -> None:
        self._states: dict[str, AdapterState] = {}

    def set(self, name: str, state: AdapterStateName, reason: str = "") -> None:
        """Record an adapter's state (and the reason, unless it is ok)."""
        self._states[name] = AdapterState(state, "" if state == "ok" else reason)
        ADAPTER_STATE.labels(name).state(state)

    def get(self, name: str) -> AdapterState | None:
        """An adapter's current state, if it was started."""
        return self._states.get(name)

    def snapshot(self) -> dict[str, AdapterState]:
        """Every started adapter's state, by name."""
        return dict(self._states)


def _snapshot(store: Store) -> tuple[int, dict[str, IngestStatus]]:
    return store.papers.count(), store.sources.ingest_status()


def _age(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else round((now - moment).total_seconds(), 1)


async def check_health(
    runner: StoreRunner,
    scheduler_alive: bool,
    now: datetime,
    started_at: datetime,
    ingest_minutes: int,
    sources: tuple[str, ...] = ("hf", "arxiv"),
    adapters: Adapters | None = None,
) -> Health:
    """Check the store (within 2 s), the scheduler, each source's last ingest, the adapters."""
    checks: dict[str, Any] = {"scheduler": "ok" if scheduler_alive else "stopped"}
    try:
        papers, statuses = await asyncio.wait_for(runner.call(_snapshot), STORE_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure to answer is the finding, not an error of ours
        checks["store"] = f"unreachable: {exc!r}"
        return Health("failing", checks)
    checks["store"] = "ok"
    checks["papers"] = papers
    stale_after = STALE_INTERVALS * ingest_minutes * 60
    ingest: dict[str, Any] = {}
    for source in sources:
        seen = statuses.get(source, IngestStatus(None, None))
        age = _age(seen.last_success, now)
        # Before the first success, count from the start so a fresh process is not stale.
        waited = age if age is not None else _age(started_at, now) or 0.0
        ingest[source] = {
            "last_success_age_seconds": age,
            "last_error": seen.last_error,
            "stale": waited > stale_after,
        }
    checks["ingest"] = ingest
    # One line per thing that is not ok, so a reader of /healthz sees why at a glance.
    reasons = [f"ingest {name}: stale" for name, seen in ingest.items() if seen["stale"]]
    if adapters is not None:
        states = adapters.snapshot()
        checks["adapters"] = {
            name: {"state": s.state, **({"reason": s.reason} if s.reason else {})}
            for name, s in states.items()
        }
        reasons += [
            f"{name}: {s.state}" + (f": {s.reason}" if s.reason else "")
            for name, s in states.items()
            if s.state != "ok"
        ]
    if not scheduler_alive:
        reasons.insert(0, "scheduler: stopped")
    if reasons:
        checks["reasons"] = reasons
    verdict = "failing" if not scheduler_alive else "degraded" if reasons else "ok"
    return Health(verdict, checks)
