"""Write envs/<extra>.yaml, the rules' conda envs, from pyproject.toml's `data` and `train` extras.

pyproject is the one list of dependencies; these files are generated from it (`--check` says
whether they are current, as tests/test_envs.py does). Self-references such as `cg3d[core]`
are expanded, so each env holds plain pip requirements. cg3d itself is not installed there:
the rules put the checkout on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENVS = {
    "data": "Data stage (fetch, manifest, render, points, triplets, summary)",
    "train": "Pretraining, evaluation and fine-tuning (GPU nodes included)",
}
_SELF = re.compile(r"^cg3d\[([\w,\s]+)\]$")


def requirements(extra: str, pyproject: Path = REPO / "pyproject.toml") -> list[str]:
    """The pip requirements of ``extra``, self-references expanded, in first-seen order."""
    extras = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    seen: list[str] = []

    def add(name: str) -> None:
        for requirement in extras[name]:
            nested = _SELF.match(requirement)
            if nested:
                for inner in nested.group(1).split(","):
                    add(inner.strip())
            elif requirement not in seen:
                seen.append(requirement)

    add(extra)
    return seen


def render_env(extra: str) -> str:
    lines = [
        f"# {ENVS[extra]} under `snakemake --use-conda`.",
        f"# Generated from pyproject.toml's `{extra}` extra by scripts/write_envs.py: edit pyproject, then rerun it.",
        "# The rules put the checkout on PYTHONPATH, so cg3d itself needs no install here.",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
        *(f"      - {requirement}" for requirement in requirements(extra)),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file differs instead of writing it")
    args = parser.parse_args()
    stale = []
    for extra in ENVS:
        path, text = REPO / "envs" / f"{extra}.yaml", render_env(extra)
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path.relative_to(REPO)))
        else:
            path.write_text(text)
    if stale:
        sys.exit(f"out of date with pyproject.toml: {', '.join(stale)}; run `python scripts/write_envs.py`")


if __name__ == "__main__":
    main()
