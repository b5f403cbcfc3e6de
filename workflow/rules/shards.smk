# Views + points + captions -> triplet shards; then one summary per dataset with the skipped objects.


rule triplets:
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.parquet",
        views=f"{DATA}/{{dataset}}/views/{{shard}}.parquet",
        points=f"{DATA}/{{dataset}}/points/{{shard}}.parquet",
    output:
        triplets=f"{DATA}/{{dataset}}/triplets/{{shard}}.parquet",
    params:
        settings=lambda wc: settings(captions=config["captions"]),
    log:
        f"logs/triplets/{{dataset}}/{{shard}}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "{CG3D} triplets --shard {wildcards.shard} --manifest {input.manifest}"
        " --views {input.views} --points {input.points} --settings {params.settings:q}"
        " --out {output.triplets} 2> {log}"


rule dataset_summary:
    input:
        triplets=lambda wc: expand(
            f"{DATA}/{{dataset}}/triplets/{{shard}}.parquet",
            dataset=wc.dataset,
            shard=shards_of(wc.dataset),
        ),
    output:
        summary=f"{DATA}/{{dataset}}/summary.json",
        skipped=f"{DATA}/{{dataset}}/skipped.parquet",
    conda:
        "../../envs/data.yaml"
    shell:
        "{CG3D} summarize --triplets {input.triplets} --summary {output.summary}"
        " --skipped {output.skipped}"
