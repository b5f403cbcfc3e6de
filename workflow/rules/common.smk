# Everything the rule files share, in one place so the order of the includes never matters. The
# paths, the command a job runs, each stage's --settings (a param, so a change reruns exactly the
# stages that read it) and every input function, among them the shard lists that the manifest
# checkpoint decides. Building the DAG imports no torch, matplotlib or open_clip: the modules
# below are torch-free (tests/test_snakemake_standard.py holds them to it).
import json
import os
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from cg3d.data.scanobjectnn import scanobjectnn_file
from cg3d.evaluate.class_lists import CLASS_LISTS
from cg3d.evaluate.scene_names import scene_names
from cg3d.train.launch import slurm_resources, training_section

DATA = config["paths"]["data"]
RESULTS = config["paths"]["results"]
RUNS = config["paths"]["runs"]
PRETRAIN_DIR = f"{RUNS}/{config['name']}/pretrain"
SCENE_QUERY_DIR = f"{RESULTS}/scene_query"
SCENES = scene_names(config["scene_query"]["settings"])
EVALUATE = config["evaluate"]
GEOMETRY_BUDGET_KEYS = ("max_faces", "max_file_mb", "max_instances", "max_texture_pixels")
# Sources that a rule downloads (fetch_sh3d); any other dataset must already be on disk.
FETCHED_SOURCES = {"sh3d"}

# A job's `cg3d <stage>` is this checkout's (first on PYTHONPATH, so nothing needs installing),
# run by the interpreter running Snakemake (the project's venv), or by the conda env's python
# under --use-conda. The prefix keeps bash's strict mode, which a prefix of one's own replaces.
_conda = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
_PYTHON = "python" if _conda else sys.executable
_JOB_PREFIX = (
    f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}${{PYTHONPATH:+:$PYTHONPATH}}; "
    f'cg3d() {{ {shlex.quote(_PYTHON)} -m cg3d "$@"; }}; '
)
shell.prefix(_JOB_PREFIX.replace("{", "{{").replace("}", "}}"))


wildcard_constraints:
    dataset="[a-z0-9_]+",
    shard="shard-[0-9]+",


def settings(**sections):
    """JSON for a rule's --settings: the only config a job sees, and its rerun trigger."""
    return json.dumps(sections, sort_keys=True)


def output_folder(wildcards, output):
    """The folder of a rule's first output, for a stage that writes several files there."""
    return os.path.dirname(output[0])


# ---------------------------------------------------------------------------------------- datasets


def dataset_options(dataset):
    if dataset not in config["datasets"]:
        raise ValueError(f"unknown dataset '{dataset}': add it under 'datasets' in the config")
    return config["datasets"][dataset]


def dataset_done(dataset):
    return f"{DATA}/{dataset}/summary.json"


def require_on_disk(dataset):
    """Fail while the DAG is built, not after pretraining, when a dataset no rule can fetch is absent.

    The message says where to put the dataset and which config key points there."""
    from cg3d.data.sources import make_source

    options = dataset_options(dataset)
    if options["source"] not in FETCHED_SOURCES and "root" in options:
        make_source(dataset, options).require_root()


def shards_of(dataset):
    """Shard names, known once the manifest checkpoint has run."""
    import pyarrow.parquet as pq

    manifest = checkpoints.manifest.get(dataset=dataset).output.manifest
    return sorted(set(pq.read_table(manifest, columns=["shard"]).column("shard").to_pylist()))


def shard_files(dataset, stage="triplets"):
    """Every shard file of one stage (views, points, triplets) of a dataset."""
    return expand(f"{DATA}/{dataset}/{stage}/{{shard}}.parquet", shard=shards_of(dataset))


def geometry_budget():
    """The data.* caps on one object, for the settings of every stage that loads meshes."""
    return {key: config["data"][key] for key in GEOMETRY_BUDGET_KEYS}


def manifest_inputs(wildcards):
    require_on_disk(wildcards.dataset)
    options = dataset_options(wildcards.dataset)
    if options["source"] == "sh3d":
        return {"fetched": f"{options['root']}/.fetched"}
    return {}


def manifest_settings(wildcards):
    return settings(
        dataset=dataset_options(wildcards.dataset),
        test_fraction=config["data"]["test_fraction"],
        objects_per_shard=config["data"]["objects_per_shard"],
    )


def render_settings(wildcards):
    return settings(dataset=dataset_options(wildcards.dataset), render=config["render"], **geometry_budget())


def points_settings(wildcards):
    return settings(
        dataset=dataset_options(wildcards.dataset),
        points=config["points"],
        **geometry_budget(),
        seed=config["data"]["seed"],
    )


def triplets_settings(wildcards):
    return settings(captions=config["captions"])


def dataset_triplets(wildcards):
    return shard_files(wildcards.dataset)


# ------------------------------------------------------------------------------------- pretraining


def pretrain_shards(wildcards):
    return shard_files(config["pretrain"]["dataset"])


def pretrain_settings():
    return settings(
        name=config["name"],
        clip=config["clip"],
        pretrain=training_section(config["pretrain"]),
        tracking=config["tracking"],
    )


def rendezvous_arguments():
    endpoint = config["pretrain"]["rdzv_endpoint"]
    return ["--rdzv-endpoint", endpoint] if endpoint else []


def pretrain_threads():
    return max(2, config["pretrain"]["nproc"] * (config["pretrain"]["workers"] + 1))


# ------------------------------------------------------------------------------------- evaluations


def evaluation_settings(common, **sections):
    """--settings of an evaluation: its own settings, plus pretraining's for the MLflow params."""
    return settings(
        name=config["name"],
        clip=config["clip"],
        pretrain=config["pretrain"],
        tracking=config["tracking"],
        evaluate={key: EVALUATE[key] for key in ("num_points", "batch_size", "device")} | common,
        **sections,
    )


def evaluation_gpus():
    return 1 if EVALUATE["device"] == "cuda" else 0


def zeroshot_options(name):
    if name not in EVALUATE["zeroshot"]:
        raise ValueError(f"no zero-shot evaluation '{name}': add it under 'evaluate.zeroshot' in the config")
    return {"name": name, **EVALUATE["zeroshot"][name]}


def zeroshot_data(wildcards):
    """A pipeline dataset's manifest + point shards (never its renders), or ScanObjectNN's h5."""
    options = zeroshot_options(wildcards.name)
    if options.get("source") == "scanobjectnn":
        key = f"evaluate.zeroshot.{wildcards.name}.root"
        return [str(scanobjectnn_file(options["root"], options["variant"], options["split"], key))]
    dataset = options["dataset"]
    require_on_disk(dataset)
    return [f"{DATA}/{dataset}/manifest.parquet", *shard_files(dataset, "points")]


def zeroshot_files(wildcards):
    """The entry's own class-name and template files, so editing one reruns the entry."""
    options = zeroshot_options(wildcards.name)
    classes = options.get("classes")
    return [path for path in (None if classes in CLASS_LISTS else classes, options.get("templates")) if path]


def zeroshot_data_arguments(wildcards, input):
    """--manifest/--points for a pipeline dataset; ScanObjectNN's files follow from --settings.
    Several arguments in one param, so each path is quoted here and the param is not."""
    options = zeroshot_options(wildcards.name)
    if options.get("source") == "scanobjectnn":
        return ""
    manifest = f"{DATA}/{options['dataset']}/manifest.parquet"
    points = [path for path in input.data if path != manifest]
    return " ".join(["--manifest", shlex.quote(manifest), "--points", *map(shlex.quote, points)])


def zeroshot_settings(wildcards):
    options = zeroshot_options(wildcards.name)
    sections = {"zeroshot": options}
    if "dataset" in options:
        sections["dataset"] = dataset_options(options["dataset"])
    return evaluation_settings({}, **sections)


def retrieval_options(dataset):
    if dataset not in EVALUATE["retrieval"]:
        raise ValueError(
            f"no retrieval evaluation of '{dataset}': add it under 'evaluate.retrieval' in the config"
        )
    return {"name": dataset, **EVALUATE["retrieval"][dataset]}


def retrieval_triplets(wildcards):
    retrieval_options(wildcards.dataset)
    require_on_disk(wildcards.dataset)
    return shard_files(wildcards.dataset)


def retrieval_settings(wildcards):
    return evaluation_settings({"gallery": EVALUATE["gallery"]}, retrieval=retrieval_options(wildcards.dataset))


def scene_query_triplets(wildcards):
    return shard_files(config["scene_query"]["dataset"])


def scene_query_settings(wildcards):
    return settings(name=config["name"], scene_query=config["scene_query"]["settings"], tracking=config["tracking"])


def scene_files(suffix):
    """One file (or folder, for no suffix) per scene in the scene-query results."""
    return [f"{SCENE_QUERY_DIR}/scene_query_{scene}{suffix}" for scene in SCENES]


def finetune_triplets(wildcards):
    if wildcards.dataset != config["finetune"]["dataset"]:
        raise ValueError(f"no fine-tuning of '{wildcards.dataset}': set 'finetune.dataset' in the config")
    return shard_files(wildcards.dataset)


def finetune_settings(wildcards):
    return settings(name=config["name"], finetune=config["finetune"]["settings"], tracking=config["tracking"])


def index_datasets():
    """The datasets `all` indexes: index.datasets, or the pretraining dataset."""
    return config["index"]["datasets"] or [config["pretrain"]["dataset"]]


def index_triplets(wildcards):
    require_on_disk(wildcards.dataset)
    return shard_files(wildcards.dataset)


def index_manifest(wildcards):
    return checkpoints.manifest.get(dataset=wildcards.dataset).output.manifest


def index_settings(wildcards):
    return evaluation_settings({}, index={"dataset": wildcards.dataset, "view": config["index"]["view"]})


def index_files():
    return [f"{RESULTS}/index_{dataset}.parquet" for dataset in index_datasets()]


def results_files():
    """Every results file `all` makes: the evaluations, fine-tuning and the scene queries."""
    evaluations = [f"{RESULTS}/{target}.json" for target in EVALUATE["targets"]]
    finetune = f"{RESULTS}/finetune_{config['finetune']['dataset']}.json"
    return [*evaluations, finetune, f"{SCENE_QUERY_DIR}/scene_query.json"]
