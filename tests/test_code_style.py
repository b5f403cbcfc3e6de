"""The code's shape, held by tests so it stays as the README promises: imports sorted one way
(pyproject's [tool.isort]), no unused import or undefined name (pyflakes), and no module over 400
lines or function over 60 in the package."""

from __future__ import annotations

import ast
import subprocess
import sys

from helpers.workflow_config import REPO

TREES = ("cg3d", "rendering", "tests", "benchmarks", "workflow/scripts")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def run_tool(*command: str, trees: tuple[str, ...] = TREES) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *command, *trees], cwd=REPO, capture_output=True, text=True)


def test_imports_are_sorted():
    result = run_tool("isort", "--check-only", "--diff")
    assert result.returncode == 0, f"run `isort {' '.join(TREES)}`:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"


def test_no_unused_import_or_undefined_name():
    result = run_tool("pyflakes", trees=TREES[:-1])  # workflow/scripts use the `snakemake` Snakemake gives them
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_modules_and_functions_stay_short():
    too_long = []
    for root in ("cg3d", "rendering"):
        for path in sorted((REPO / root).rglob("*.py")):
            text = path.read_text()
            if len(text.splitlines()) > MAX_MODULE_LINES:
                too_long.append(f"{path.relative_to(REPO)}: {len(text.splitlines())} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {lines} lines")
    assert not too_long, "\n".join(too_long)
