# Evaluations of the pretrained checkpoint: zero-shot classification, cross-modal retrieval and
# language scene queries.
# Each job reads the checkpoint, its run.json and its own data, writes results/<task>_<name>.json
# with a figure beside it, and logs an MLflow run nested under the pretraining run. Only their own
# settings are params, so changing an evaluation setting reruns the evaluations and nothing else.
import shlex

RESULTS = config["paths"]["results"]
EVALUATE = config["evaluate"]


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


def zeroshot_options(name):
    if name not in EVALUATE["zeroshot"]:
        raise ValueError(f"no zero-shot evaluation '{name}': add it under 'evaluate.zeroshot' in the config")
    return {"name": name, **EVALUATE["zeroshot"][name]}


def zeroshot_data(wildcards):
    """A pipeline dataset's manifest + point shards (never its renders), or ScanObjectNN's h5."""
    from cg3d.evaluate.eval_data import scanobjectnn_file

    options = zeroshot_options(wildcards.name)
    if options.get("source") == "scanobjectnn":
        key = f"evaluate.zeroshot.{wildcards.name}.root"
        return [str(scanobjectnn_file(options["root"], options["variant"], options["split"], key))]
    dataset = options["dataset"]
    require_on_disk(dataset)
    points = expand(f"{DATA}/{dataset}/points/{{shard}}.parquet", shard=shards_of(dataset))
    return [f"{DATA}/{dataset}/manifest.parquet", *points]


def zeroshot_files(wildcards):
    """The entry's own class-name and template files, so editing one reruns the entry."""
    from cg3d.evaluate.class_lists import CLASS_LISTS

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


rule zeroshot:
    input:
        checkpoint=rules.pretrain.output.checkpoint,
        run=rules.pretrain.output.run,
        data=zeroshot_data,
        files=zeroshot_files,
    output:
        results=f"{RESULTS}/zeroshot_{{name}}.json",
        confusion=f"{RESULTS}/zeroshot_{{name}}_confusion.png",
    wildcard_constraints:
        name="[a-z0-9_]+",
    params:
        settings=zeroshot_settings,
        data=zeroshot_data_arguments,
    threads: 2
    resources:
        gpu=1 if EVALUATE["device"] == "cuda" else 0,
        mem_mb=8000,
    log:
        "logs/zeroshot/{name}.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {CG3D} zeroshot --settings {params.settings:q}"
        " --checkpoint {input.checkpoint:q} --run {input.run:q} {params.data}"
        " --out {output.results:q} --confusion {output.confusion:q} 2> {log:q}"


def retrieval_options(dataset):
    if dataset not in EVALUATE["retrieval"]:
        raise ValueError(
            f"no retrieval evaluation of '{dataset}': add it under 'evaluate.retrieval' in the config"
        )
    return {"name": dataset, **EVALUATE["retrieval"][dataset]}


def retrieval_triplets(wildcards):
    retrieval_options(wildcards.dataset)
    require_on_disk(wildcards.dataset)
    return expand(f"{DATA}/{wildcards.dataset}/triplets/{{shard}}.parquet", shard=shards_of(wildcards.dataset))


rule retrieval:
    input:
        checkpoint=rules.pretrain.output.checkpoint,
        run=rules.pretrain.output.run,
        triplets=retrieval_triplets,
    output:
        results=f"{RESULTS}/retrieval_{{dataset}}.json",
        gallery=f"{RESULTS}/retrieval_{{dataset}}_gallery.png",
    params:
        settings=lambda wc: evaluation_settings(
            {"gallery": EVALUATE["gallery"]}, retrieval=retrieval_options(wc.dataset)
        ),
    threads: 2
    resources:
        gpu=1 if EVALUATE["device"] == "cuda" else 0,
        mem_mb=8000,
    log:
        "logs/retrieval/{dataset}.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {CG3D} retrieval --settings {params.settings:q}"
        " --checkpoint {input.checkpoint:q} --run {input.run:q} --triplets {input.triplets:q}"
        " --out {output.results:q} --gallery {output.gallery:q} 2> {log:q}"


def scene_query_settings(wildcards):
    from cg3d.evaluate.scene_query import resolve_settings

    resolve_settings(config["scene_query"]["settings"])  # refuse unknown keys while the DAG is built
    return settings(name=config["name"], scene_query=config["scene_query"]["settings"], tracking=config["tracking"])


rule scene_query:
    input:
        checkpoint=rules.pretrain.output.checkpoint,
        triplets=lambda wc: expand(
            f"{DATA}/{{dataset}}/triplets/{{shard}}.parquet",
            dataset=config["scene_query"]["dataset"],
            shard=shards_of(config["scene_query"]["dataset"]),
        ),
    output:
        summary=f"{RESULTS}/scene_query/scene_query.json",
    params:
        settings=scene_query_settings,
        out_dir=f"{RESULTS}/scene_query",
    threads: 2
    resources:
        mem_mb=8000,
    log:
        "logs/scene_query.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {CG3D} scene-query --settings {params.settings:q}"
        " --checkpoint {input.checkpoint:q} --triplets {input.triplets:q} --out-dir {params.out_dir:q} 2> {log:q}"
