# Multi-view renders, one job per shard: one process and one GL context render the whole shard.


rule render:
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.parquet",
    output:
        views=f"{DATA}/{{dataset}}/views/{{shard}}.parquet",
    params:
        settings=render_settings,
    threads: 1
    resources:
        mem_mb=4000,
    log:
        "logs/render/{dataset}/{shard}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "cg3d render --dataset {wildcards.dataset:q} --shard {wildcards.shard:q}"
        " --manifest {input.manifest:q} --settings {params.settings:q} --out {output.views:q} 2> {log:q}"
