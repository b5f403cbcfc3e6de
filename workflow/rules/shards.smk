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
        "{CG3D} triplets --shard {wildcards.shard:q} --manifest {input.manifest:q}"
        " --views {input.views:q} --points {input.points:q} --settings {params.settings:q}"
        " --out {output.triplets:q} 2> {log:q}"


rule dataset_summary:
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.parquet",
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
        "{CG3D} summarize --manifest {input.manifest:q} --triplets {input.triplets:q}"
        " --summary {output.summary:q} --skipped {output.skipped:q}"
