# The searchable index of a dataset, for `cg3d search` and `cg3d serve`: every object of its
# triplet shards embedded by the pretrained model, with a thumbnail from its renders and its
# source mesh as its path. An MLflow run nested under the pretraining run logs the file.


rule index:
    input:
        checkpoint=rules.pretrain.output.checkpoint,
        run=rules.pretrain.output.run,
        triplets=index_triplets,
        manifest=index_manifest,
    output:
        index=f"{RESULTS}/index_{{dataset}}.parquet",
    params:
        settings=index_settings,
    threads: 2
    resources:
        gpu=evaluation_gpus(),
        mem_mb=8000,
    log:
        "logs/index/{dataset}.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "OMP_NUM_THREADS={threads} cg3d index --settings {params.settings:q}"
        " --checkpoint {input.checkpoint:q} --run {input.run:q} --triplets {input.triplets:q}"
        " --manifest {input.manifest:q} --out {output.index:q} 2> {log:q}"
