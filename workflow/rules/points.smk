# Surface point clouds, one job per shard.


rule points:
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.parquet",
    output:
        points=f"{DATA}/{{dataset}}/points/{{shard}}.parquet",
    params:
        settings=points_settings,
    threads: 1
    resources:
        mem_mb=4000,
    log:
        "logs/points/{dataset}/{shard}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "cg3d points --dataset {wildcards.dataset:q} --shard {wildcards.shard:q}"
        " --manifest {input.manifest:q} --settings {params.settings:q} --out {output.points:q} 2> {log:q}"
