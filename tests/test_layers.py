"""The package's layers (pyproject's ``[tool.importlinter]``), checked over the real import graph.

Each case runs ``lint-imports`` on a copy of the package, so the test also shows the contract
catches what it exists to catch: an upward import and a cycle between sibling modules.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.workflow_config import REPO

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=tree, env={"PYTHONPATH": str(tree)},
                          capture_output=True, text=True)  # fmt: skip


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    for name in ("cg3d", "rendering"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def append(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}\n")


def test_the_package_keeps_its_layers_and_has_no_cycles(package_copy):
    result = lint(package_copy)
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_upward_import_breaks_the_contract(package_copy):
    append(package_copy / "cg3d/data/shards.py", "from cg3d.train import pretrain  # noqa")
    result = lint(package_copy)
    assert result.returncode != 0
    assert "cg3d.data is not allowed to import cg3d.train" in result.stdout


def test_a_cycle_between_sibling_modules_breaks_the_contract(package_copy):
    append(package_copy / "cg3d/evaluate/metrics.py", "from cg3d.evaluate import zeroshot  # noqa")
    result = lint(package_copy)
    assert result.returncode != 0
    assert "no import cycles" in result.stdout and "BROKEN" in result.stdout
