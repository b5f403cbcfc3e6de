# Multi-view renders, one job per shard: one process and one GL context render the whole shard.


rule render:
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.parquet",
    output:
        views=f"{DATA}/{{dataset}}/views/{{shard}}.parquet",
    params:
        settings=lambda wc: settings(
            dataset=dataset_options(wc.dataset),
            render=config["render"],
            max_faces=config["data"]["max_faces"],
        ),
    threads: 1
    resources:
        mem_mb=4000,
    log:
        f"logs/render/{{dataset}}/{{shard}}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "{CG3D} render --dataset {wildcards.dataset} --shard {wildcards.shard}"
        " --manifest {input.manifest} --settings {params.settings:q} --out {output.views} 2> {log}"
