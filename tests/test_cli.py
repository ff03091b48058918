import json
import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from adapters.cli import cli
from tests.conftest import SEED


def run(db: Path, *args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, ["--db", str(db), *args], input=stdin)


def test_import_then_search_json(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    result = run(db, "import", str(SEED))
    assert result.exit_code == 0 and "315 new" in result.output
    again = run(db, "import", str(SEED))
    assert "0 new, 0 updated, 315 unchanged, 0 skipped" in again.output
    found = run(db, "search", "kv-cache", "--json", "--limit", "3")
    assert found.exit_code == 0
    hits = json.loads(found.output)
    assert len(hits) == 3
    assert {"id", "title", "score", "matched", "links"} <= set(hits[0])
    assert "KV Cache" in hits[0]["title"]


def test_invalid_query_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run(tmp_path / "p.db", "search", '"')
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1
    assert run(tmp_path / "p.db", "match", "zzzzqqq", "--json").output.strip() == "[]"


def test_console_script_prints_a_digest_of_kv_cache_papers(tmp_path: Path) -> None:
    result = run(tmp_path / "p.db", "console", stdin="/papers subscribe kv-cache\n/papers digest\n")
    assert result.exit_code == 0, result.output
    assert "Subscribed to `kv-cache`" in result.output
    assert "== kv-cache ==" in result.output
    assert "KV Cache Reduction" in result.output


def test_console_shows_the_private_feed_at_the_public_url(tmp_path: Path) -> None:
    env = {"PAPERBOT_PUBLIC_URL": "https://papers.example.org/"}
    stdin = "/papers feed\n/papers subscribe kv-cache\n/papers feed\n"
    result = CliRunner().invoke(
        cli, ["--db", str(tmp_path / "p.db"), "console"], input=stdin, env=env
    )
    assert result.exit_code == 0, result.output
    assert "https://papers.example.org/feeds/search.atom?q=kv-cache" in result.output
    assert re.search(r"https://papers\.example\.org/feeds/digests/[\w-]{43}\.atom", result.output)


def test_console_survives_hostile_lines(tmp_path: Path) -> None:
    lines = ['"', "NOT", "settings tz Nowhere", "unsubscribe 99", "\x00\x1b", "😀" * 3000]
    result = run(tmp_path / "p.db", "console", stdin="\n".join(f"/papers {x}" for x in lines))
    assert result.exit_code == 0
    assert result.output.count("Error:") == len(lines)


def module(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PAPERBOT_DB": str(db)},
    )


def test_python_m_adapters_is_paperbot_and_python_m_bot_is_gone(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    assert module("adapters", "import", str(SEED), db=db).returncode == 0
    found = module("adapters", "search", "kv-cache", "--limit", "1", db=db)
    assert found.returncode == 0 and "KV Cache" in found.stdout
    whole = module("adapters", "--help", db=db)
    assert whole.returncode == 0 and "run " in whole.stdout and "doctor " in whole.stdout
    # One command line: the core has none of its own (it would need the adapters for `run`).
    gone = module("bot", "--help", db=db)
    assert gone.returncode == 1 and "cannot be directly executed" in gone.stderr


def test_the_one_group_holds_the_core_commands_and_the_adapters() -> None:
    where = {name: command.callback.__module__ for name, command in cli.commands.items()}
    assert where == {
        "import": "bot.cli",
        "search": "bot.cli",
        "match": "bot.cli",
        "feedback": "bot.cli",
        "ingest": "bot.cli",
        "reindex": "bot.cli",
        "backup": "bot.cli",
        "run": "adapters.cli",
        "console": "adapters.cli",
        "doctor": "adapters.cli",
        "health": "adapters.cli",
        "discord-invite": "adapters.cli",
    }
