# cg3d: CLIP goes 3D, as a Snakemake workflow. Stages live in workflow/rules/, one file each;
# workflow/rules/common.smk holds the paths and every helper they call.
from snakemake.utils import min_version

from cg3d.config import validate_config

min_version("9.0")


configfile: "config.yaml"


# Refuses a wrong key naming it, and fills in the schema's defaults.
validate_config(config)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/render.smk"
include: "workflow/rules/points.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/index.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        [dataset_done(name) for name in config["build"]],
        rules.pretrain.output.checkpoint,
        results_files(),
        index_files(),
        rules.results_table.output.table,
