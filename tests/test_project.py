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


def _module_imports(path: Path) -> set[str]:
    """The bot modules `path` imports at its top level (for types too: a cycle there is still a
    tangle), each with the packages above it, whose __init__ runs first. Imports inside
    functions are left out: they are how a module reaches an optional part late."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    top = [n for n in tree.body if not isinstance(n, ast.If)]
    top += [n for block in tree.body if isinstance(block, ast.If) for n in block.body]
    for node in top:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            found |= {".".join(parts[:n]) for n in range(2, len(parts) + 1)}
    return {n for n in found if n.startswith("bot.")}


def test_the_core_has_no_import_cycle() -> None:
    modules: dict[str, set[str]] = {}
    for path in (ROOT / "bot").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = _module_imports(path)
    graph = {
        name: {m for m in deps if m in modules and m != name} for name, deps in modules.items()
    }
    # A module's own packages are being initialised when it loads: no edge back up to them.
    graph = {n: {m for m in deps if not n.startswith(m + ".")} for n, deps in graph.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        for dep in sorted(graph[name]):
            cycle = visit(dep, [*path, name])
            if cycle:
                return cycle
        done.add(name)
        return None

    cycles = [c for name in sorted(graph) if (c := visit(name, []))]
    assert cycles == []


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
