"""What the rules of each conda env execute, derived from the workflow and the source: the
`cg3d <stage>` each rule's shell calls (workflow/rules/*.smk), that stage's handler in
cg3d/cli.py, and every module reachable from it through import statements anywhere in the
code (function-level imports included, as handlers and lazy paths import inside functions)."""

from __future__ import annotations

import ast
import inspect
import re
import sys
import textwrap
from pathlib import Path

from helpers.workflow_config import REPO

PROJECT_PACKAGES = ("cg3d", "rendering")
# `cg3d launch-pretrain` replaces itself with torchrun running `cg3d pretrain`.
STAGE_RUNS = {"launch-pretrain": ("launch-pretrain", "pretrain")}
_RULE = re.compile(r"^(?:rule|checkpoint) (\w+):", re.M)
_ENV = re.compile(r'conda:\s*"\.\./\.\./envs/(\w+)\.yaml"')
_STAGE = re.compile(r'shell:\s*"(?:\w+=\S+ )*cg3d ([\w-]+)')  # the `cg3d` of workflow/rules/common.smk


def stages_by_env() -> dict[str, set[str]]:
    """env name -> the `cg3d` stages its rules run."""
    stages: dict[str, set[str]] = {}
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        text = path.read_text()
        bounds = [m.start() for m in _RULE.finditer(text)] + [len(text)]
        for start, end in zip(bounds, bounds[1:]):
            block = text[start:end]
            env, stage = _ENV.search(block), _STAGE.search(block)
            if env and stage:
                stages.setdefault(env.group(1), set()).update(STAGE_RUNS.get(stage.group(1), (stage.group(1),)))
    return stages


def _imports(tree: ast.Module, module: str) -> set[str]:
    """Every import anywhere in the module; for a package root only its top-level statements, as
    the root's functions (``cg3d.load``) are entry points for users, never run by a rule."""
    names = set()
    nodes = tree.body if module in PROJECT_PACKAGES else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = module.rsplit(".", node.level)[0]
            names.add(f"{base}.{node.module}")
    return names


def _project_file(name: str) -> Path | None:
    parts = name.split(".")
    for candidate in (REPO.joinpath(*parts).with_suffix(".py"), REPO.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def modules_for(stages: set[str]) -> tuple[set[str], set[str]]:
    """(project modules, top-level third-party imports) reachable from these stages' handlers."""
    from cg3d.cli import _parser

    choices = _parser()._subparsers._group_actions[0].choices
    pending = set()
    for stage in stages:
        handler = choices[stage].get_default("handler")
        pending |= _imports(ast.parse(textwrap.dedent(inspect.getsource(handler))), "cg3d.cli")
    project, external = set(), set()
    while pending:
        name = pending.pop()
        top = name.split(".")[0]
        if top not in PROJECT_PACKAGES:
            if top not in sys.stdlib_module_names and top != "__future__":
                external.add(top)
            continue
        path = _project_file(name)
        if path is None or name in project:
            continue  # a name imported from a module, not a module
        project.add(name)
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        importer = name if path.stem != "__init__" or name in PROJECT_PACKAGES else f"{name}.x"
        pending |= parents | _imports(ast.parse(path.read_text()), importer)
    return project, external
