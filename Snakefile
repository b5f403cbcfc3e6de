# cg3d: CLIP goes 3D, as a Snakemake workflow. Stages live in workflow/rules/, one file each.
import os

from cg3d.config import validate_config

configfile: "config.yaml"


validate_config(config)

# Rules call `python -m cg3d ...`; this keeps them working from a source checkout, in a conda
# env (--use-conda) and on cluster nodes, without requiring an installed console script.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")]))


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/points.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/finetune.smk"


rule all:
    input:
        [dataset_done(name) for name in config["build"]],
        rules.pretrain.output.checkpoint,
        [f"{RESULTS}/{target}.json" for target in config["evaluate"]["targets"]],
        rules.scene_query.output.summary,
        f"{RESULTS}/finetune_{config['finetune']['dataset']}.json",
