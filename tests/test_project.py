"""Checks of the project's promises: layout boundaries and documented settings."""

import ast
import re
from pathlib import Path

from bot.config import env_names

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("discord", "slack_bolt", "slack_sdk", "adapters")


def test_core_never_imports_chat_libraries_or_adapters() -> None:
    offenders = []
    for path in (ROOT / "bot").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


# What SQL looks like in Python source: a statement's first word in capitals, then a space.
_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE FROM|PRAGMA|CREATE TABLE|ALTER TABLE) ")


def test_no_sql_outside_the_storage_package() -> None:
    # The repositories in bot/storage/ are the only modules that hold SQL: the interface a
    # second backend would implement (docs/architecture.md).
    storage = ROOT / "bot" / "storage"
    offenders = []
    for path in [*(ROOT / "bot").rglob("*.py"), *(ROOT / "adapters").rglob("*.py")]:
        if storage in path.parents:
            continue
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("conn", "execute", "executemany"):
                offenders.append(f"{path.name}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.Import | ast.ImportFrom):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                names = [module] if module else [a.name for a in node.names]
                bad = [n for n in names if n and n.split(".")[0] in ("sqlite3", "sqlite_utils")]
                offenders += [f"{path.name}:{node.lineno}: import {n}" for n in bad]
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _SQL.search(node.value)
            ):
                offenders.append(f"{path.name}:{node.lineno}: {node.value[:40]!r}")
    assert offenders == []


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    listed = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, flags=re.M))
    assert listed == env_names()
    # Every setting has a comment line right above it (or above its block).
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]+=", line):
            assert any(lines[j].startswith("#") for j in range(max(0, i - 2), i)), line


def test_no_module_named_like_a_chat_library() -> None:
    for name in ("slack.py", "discord.py"):
        assert not list(ROOT.glob(f"*/{name}"))
