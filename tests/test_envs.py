"""The rules' conda envs hold what their rules import: generated from pyproject's extras, checked
against the imports the rules really reach, and (slow) installed alone into a fresh venv that
then imports every one of those modules."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from helpers.rule_imports import modules_for, stages_by_env
from helpers.workflow_config import REPO

sys.path.insert(0, str(REPO / "scripts"))
from write_envs import ENVS, render_env  # noqa: E402


def pip_requirements(env: str) -> list[str]:
    dependencies = yaml.safe_load((REPO / "envs" / f"{env}.yaml").read_text())["dependencies"]
    return next(item["pip"] for item in dependencies if isinstance(item, dict))


def test_every_env_a_rule_uses_is_generated():
    assert set(stages_by_env()) == set(ENVS)


@pytest.mark.parametrize("env", sorted(ENVS))
def test_env_file_is_generated_from_pyproject(env):
    assert (REPO / "envs" / f"{env}.yaml").read_text() == render_env(env), "run python scripts/write_envs.py"


@pytest.mark.parametrize("env", sorted(ENVS))
def test_env_declares_every_package_its_rules_import(env):
    _, imported = modules_for(stages_by_env()[env])
    declared = {canonicalize_name(Requirement(line).name) for line in pip_requirements(env)}
    providers = importlib.metadata.packages_distributions()
    missing = {
        name: providers.get(name, ["<not installed>"])
        for name in sorted(imported)
        if not declared & {canonicalize_name(dist) for dist in providers.get(name, [])}
    }
    assert not missing, f"envs/{env}.yaml lacks the distributions of these imports: {missing}"


def test_rules_reach_the_modules_the_issue_names():
    data, data_imports = modules_for(stages_by_env()["data"])
    train, train_imports = modules_for(stages_by_env()["train"])
    assert "cg3d.data.sources.sh3d" in data and "javaproperties" in data_imports
    assert "cg3d.data.meshes" in train and "fast_simplification" in train_imports
    assert "cg3d.train.pretrain" in train and "rendering" in data


@pytest.mark.slow
@pytest.mark.parametrize("env", sorted(ENVS))
def test_fresh_venv_with_only_the_env_imports_every_module_its_rules_run(env, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # no system site-packages
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(pip_requirements(env)) + "\n")
    install = subprocess.run([str(venv / "bin/pip"), "install", "-q", "-r", str(requirements)],
                             capture_output=True, text=True)  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    project, imported = modules_for(stages_by_env()[env])
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    # As the rules run: the checkout on PYTHONPATH, cg3d itself not installed, no hub.
    environ = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PYOPENGL_PLATFORM": "egl"}
    result = subprocess.run([str(venv / "bin/python"), "-c", script, *sorted(imported), *sorted(project)],
                            capture_output=True, text=True, env=environ, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    if env == "train":  # the default CLIP's text tower comes from a package imported by name
        clip = "from cg3d.models.clip import TINY_CLIP_MINILM, load_clip; load_clip(TINY_CLIP_MINILM)"
        loaded = subprocess.run([str(venv / "bin/python"), "-c", clip], capture_output=True, text=True,
                                env=environ, cwd=tmp_path)  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr[-3000:]
