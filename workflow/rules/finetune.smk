# Fine-tuning: a classification head on the pretrained 3D encoder against the same head on a
# randomly initialised encoder, with the same budget; both arms in one results file.


def finetune_triplets(wildcards):
    if wildcards.dataset != config["finetune"]["dataset"]:
        raise ValueError(f"no fine-tuning of '{wildcards.dataset}': set 'finetune.dataset' in the config")
    return expand(f"{DATA}/{wildcards.dataset}/triplets/{{shard}}.parquet", shard=shards_of(wildcards.dataset))


def finetune_settings(wildcards):
    from cg3d.evaluate.finetune import resolve_settings

    resolve_settings(config["finetune"]["settings"])  # refuse unknown keys while the DAG is built
    return settings(name=config["name"], finetune=config["finetune"]["settings"], tracking=config["tracking"])


rule finetune:
    input:
        checkpoint=rules.pretrain.output.checkpoint,
        triplets=finetune_triplets,
    output:
        results=f"{RESULTS}/finetune_{{dataset}}.json",
    params:
        settings=finetune_settings,
        work_dir=lambda wc: f"{RUNS}/{config['name']}/finetune_{wc.dataset}",
    threads: 2
    resources:
        mem_mb=8000,
    log:
        "logs/finetune/{dataset}.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {CG3D} finetune --settings {params.settings:q}"
        " --checkpoint {input.checkpoint:q} --triplets {input.triplets:q}"
        " --out {output.results:q} --work-dir {params.work_dir:q} 2> {log:q}"
