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
