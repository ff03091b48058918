"""Peak RSS of a paperbot process answering look-ups over a large store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from benchmarks.harness import queries
from bot.semantic import missing

# Runs `paperbot console` and then reports the process's own peak RSS (VmHWM). Not the
# parent's rusage: on Linux a child's ru_maxrss starts from the parent's at fork, and the
# benchmark process is large by then.
_CHILD = """
import sys
{imports}
from adapters.cli import main
sys.argv = ["paperbot", "console"]
try:
    main()
except SystemExit:
    pass
status = open("/proc/self/status").read()
sys.stderr.write([l for l in status.splitlines() if l.startswith("VmHWM")][0] + "\\n")
"""
ADAPTERS = "import adapters.slack_app, adapters.discord_app"


def _peak_mb(imports: str, stdin: str, env: dict[str, str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(imports=imports)],
        input=stdin,
        text=True,
        capture_output=True,
        env=env,
        check=True,
    )
    found = re.search(r"VmHWM:\s+(\d+) kB", done.stderr)
    if found is None:
        raise RuntimeError(f"no VmHWM in the child's output: {done.stderr[-500:]}")
    return int(found.group(1)) / 1024


def peak_mb(stdin: str, env: dict[str, str]) -> float:
    """Peak RSS (MB) of `paperbot console` fed `stdin`, with `env` over this environment."""
    return _peak_mb("", stdin, {**os.environ, **env})


def run(path: Path) -> dict[str, float]:
    """Peak RSS (MB) of `paperbot console` doing every dev-set look-up twice and a digest
    preview over the store at `path`: matching words, without and with both chat adapters
    loaded; and, when the semantic extra is installed, with its model loaded (the store has no
    vectors: at 1M papers they would add about 400 MB, see docs/semantic.md)."""
    lines = [f"/papers search {q}" for q in queries()] * 2
    lines += ["/papers subscribe MoE", "/papers subscribe KV cache", "/papers digest"]
    env = {**os.environ, "PAPERBOT_DB": str(path), "PAPERBOT_LOG_LEVEL": "WARNING"}
    words = {**env, "PAPERBOT_SEMANTIC": "off"}
    text = "\n".join(lines) + "\n"
    found = {
        "console_peak_mb": _peak_mb("", text, words),
        "with_adapters_peak_mb": _peak_mb(ADAPTERS, text, words),
    }
    if missing() is None:
        found["semantic_peak_mb"] = _peak_mb("", text, {**env, "PAPERBOT_SEMANTIC": "auto"})
    return found
