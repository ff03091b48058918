"""Peak RSS of a paperbot process answering look-ups over a large store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from benchmarks.harness import queries

# The chat libraries `paperbot run` imports when tokens are set, loaded as well, so the figure
# is that of a bot with both adapters (the console stands in for the chat traffic).
CONSOLE_WITH_ADAPTERS = (
    "import sys, adapters.slack_app, adapters.discord_app; from adapters.cli import main; "
    "sys.argv = ['paperbot', 'console']; main()"
)


def _peak_child_mb(args: list[str], stdin: str = "", env: dict[str, str] | None = None) -> float:
    child = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    assert child.stdin is not None
    child.stdin.write(stdin.encode())
    child.stdin.close()
    # wait4 gives this child's own peak RSS (RUSAGE_CHILDREN would be the largest child's).
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"{args} failed: {child.stderr.read().decode() if child.stderr else ''}")
    return usage.ru_maxrss / 1024


def run(path: Path) -> dict[str, float]:
    """Peak RSS (MB) of `paperbot console` doing every dev-set look-up twice and a digest
    preview over the store at `path`, without and with both chat adapters loaded."""
    python = sys.executable
    lines = [f"/papers search {q}" for q in queries()] * 2
    lines += ["/papers subscribe MoE", "/papers subscribe KV cache", "/papers digest"]
    env = {**os.environ, "PAPERBOT_DB": str(path), "PAPERBOT_LOG_LEVEL": "WARNING"}
    text = "\n".join(lines) + "\n"
    console = _peak_child_mb([python, "-m", "adapters.cli", "console"], text, env=env)
    full = _peak_child_mb([python, "-c", CONSOLE_WITH_ADAPTERS], text, env=env)
    return {"console_peak_mb": console, "with_adapters_peak_mb": full}
