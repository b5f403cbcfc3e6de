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
            max_faces=config["data"]["max_faces"],
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
        "{CG3D} points --dataset {wildcards.dataset} --shard {wildcards.shard}"
        " --manifest {input.manifest} --settings {params.settings:q} --out {output.points} 2> {log}"
