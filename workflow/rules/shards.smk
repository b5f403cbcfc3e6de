# Views + points + captions -> triplet shards; then one summary per dataset with the skipped objects.


rule triplets:
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.parquet",
        views=f"{DATA}/{{dataset}}/views/{{shard}}.parquet",
        points=f"{DATA}/{{dataset}}/points/{{shard}}.parquet",
    output:
        triplets=f"{DATA}/{{dataset}}/triplets/{{shard}}.parquet",
    params:
        settings=triplets_settings,
    log:
        "logs/triplets/{dataset}/{shard}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "cg3d triplets --shard {wildcards.shard:q} --manifest {input.manifest:q}"
        " --views {input.views:q} --points {input.points:q} --settings {params.settings:q}"
        " --out {output.triplets:q} 2> {log:q}"


rule dataset_summary:
    input:
        manifest=f"{DATA}/{{dataset}}/manifest.parquet",
        triplets=dataset_triplets,
    output:
        summary=f"{DATA}/{{dataset}}/summary.json",
        skipped=f"{DATA}/{{dataset}}/skipped.parquet",
    log:
        "logs/dataset_summary/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "cg3d summarize --manifest {input.manifest:q} --triplets {input.triplets:q}"
        " --summary {output.summary:q} --skipped {output.skipped:q} 2> {log:q}"
