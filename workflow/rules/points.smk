# Surface point clouds, one job per shard.


rule points:
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.parquet",
    output:
        points=f"{DATA}/{{dataset}}/points/{{shard}}.parquet",
    params:
        settings=lambda wc: settings(
            dataset=dataset_options(wc.dataset),
            points=config["points"],
            **geometry_budget(),
            seed=config["data"]["seed"],
        ),
    threads: 1
    resources:
        mem_mb=4000,
    log:
        f"logs/points/{{dataset}}/{{shard}}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "{CG3D} points --dataset {wildcards.dataset:q} --shard {wildcards.shard:q}"
        " --manifest {input.manifest:q} --settings {params.settings:q} --out {output.points:q} 2> {log:q}"
