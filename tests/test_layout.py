"""The layout's promises: the service never loads the local tooling or the studio."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "consumer"
# What the service and the operator's commands are made of (everything but the tools).
SERVICE_PROBE = (
    "import importlib, pkgutil, sys, consumer.app, consumer.replay.command, "
    "consumer.reports.command, consumer.mapping\n"
    "for m in pkgutil.walk_packages(consumer.mapping.__path__, 'consumer.mapping.'):\n"
    "    importlib.import_module(m.name)\n"
)


def loaded(prefix: str) -> list[str]:
    probe = SERVICE_PROBE + f"print(sorted(m for m in sys.modules if m.startswith({prefix!r})))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return list(ast.literal_eval(out.strip()))


def test_the_service_loads_nothing_from_the_local_tooling() -> None:
    assert loaded("consumer.local") == []


def test_the_service_loads_nothing_from_the_product_teams_tools() -> None:
    # The preview page (an HTTP server), the diff, render and the cost report are
    # for people editing mappings; the running service must not carry them. Every
    # module of the mapping package is loaded: the tools import it, never the reverse.
    assert loaded("consumer.studio") == []


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


@pytest.mark.parametrize("tools", ["local", "studio"])
def test_only_the_tools_import_the_tools(tools: str) -> None:
    # The import probe above sees what loading the service loads; this sees an
    # import written anywhere, a late one inside a function too. The CLI names
    # each command's module as a string, so it is no exception.
    package = f"consumer.{tools}"
    offenders = [
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.relative_to(PACKAGE).parts[0] not in ("local", "studio")
        for module in sorted(imports_of(path))
        if module == package or module.startswith(f"{package}.")
    ]
    assert offenders == []


def test_the_cli_lists_local_commands_without_loading_them_for_run() -> None:
    # `run` goes through the CLI, which registers every command; the local ones must
    # still be importable from there (a moved module would break `--help`).
    out = subprocess.run(
        [sys.executable, "-m", "consumer", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in (
        "run",
        "mappings",
        "demo",
        "kafka",
        "simulate",
        "bench",
        "dlq",
        "samples",
        "history",
    ):
        assert command in out
