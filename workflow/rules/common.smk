# Shared helpers of the rules: paths, per-stage settings (as params, so a change reruns exactly
# the stages that read it), and the shard list that the manifest checkpoint decides.
import json
import sys

from snakemake.settings.types import DeploymentMethod

DATA = config["paths"]["data"]
# Jobs run cg3d with the interpreter running Snakemake (the project's venv), or with the conda
# env's python under --use-conda.
_conda = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
PYTHON = "python" if _conda else sys.executable
CG3D = f"{PYTHON} -m cg3d"


wildcard_constraints:
    dataset="[a-z0-9_]+",
    shard="shard-[0-9]+",


def dataset_options(dataset):
    if dataset not in config["datasets"]:
        raise ValueError(f"unknown dataset '{dataset}': add it under 'datasets' in the config")
    return config["datasets"][dataset]


def settings(**sections):
    """JSON for a rule's --settings: the only config a job sees, and its rerun trigger."""
    return json.dumps(sections, sort_keys=True)


def shards_of(dataset):
    """Shard names, known once the manifest checkpoint has run."""
    import pyarrow.parquet as pq

    manifest = checkpoints.manifest.get(dataset=dataset).output.manifest
    return sorted(set(pq.read_table(manifest, columns=["shard"]).column("shard").to_pylist()))


def dataset_done(dataset):
    return f"{DATA}/{dataset}/summary.json"


# Sources that a rule downloads (fetch_sh3d); any other dataset must already be on disk.
FETCHED_SOURCES = {"sh3d"}


def require_on_disk(dataset):
    """Fail while the DAG is built, not after pretraining, when a dataset no rule can fetch is absent.

    The message says where to put the dataset and which config key points there."""
    from cg3d.data.sources import make_source

    options = dataset_options(dataset)
    if options["source"] not in FETCHED_SOURCES and "root" in options:
        make_source(dataset, options).require_root()
