"""Shared test set-up: headless GL and an offline hub for every test, and the one synthetic run of
the whole pipeline that the workflow tests read."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory) -> Path:
    """A workdir where `snakemake all` ran on tests/workflow_config.py's eval_config: meshes to
    pretraining, evaluations, fine-tuning, scene queries and the results table. Run once per
    session, as it is the slowest fixture; tests may rewrite config.yaml but must restore it."""
    from layouts import write_modelnet_raw
    from test_workflow import snakemake
    from workflow_config import eval_config, write_config

    workdir = tmp_path_factory.mktemp("eval-workflow")
    write_modelnet_raw(workdir / "resources/ModelNet40", {"chair": (2, 2), "night_stand": (2, 1)})
    write_config(workdir, eval_config())
    result = snakemake(workdir, "all")
    logs = "".join(p.read_text()[-2000:] for p in (workdir / "logs").rglob("*.log"))
    assert result.returncode == 0, result.stderr[-4000:] + logs
    return workdir
