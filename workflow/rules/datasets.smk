# Mesh sources -> manifest. SH3D, the embedded default, is fetched from Debian's package first.


rule fetch_sh3d:
    output:
        marker="{root}/.fetched",
    log:
        "logs/fetch_sh3d/{root}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "{CG3D} fetch-sh3d --dest {wildcards.root} > {log} 2>&1"


def manifest_inputs(wildcards):
    require_on_disk(wildcards.dataset)
    options = dataset_options(wildcards.dataset)
    if options["source"] == "sh3d":
        return {"fetched": f"{options['root']}/.fetched"}
    return {}


checkpoint manifest:
    input:
        unpack(manifest_inputs),
    output:
        manifest=f"{DATA}/{{dataset}}/manifest.parquet",
    params:
        settings=lambda wc: settings(
            dataset=dataset_options(wc.dataset),
            test_fraction=config["data"]["test_fraction"],
            objects_per_shard=config["data"]["objects_per_shard"],
        ),
    log:
        f"logs/manifest/{{dataset}}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "{CG3D} manifest --dataset {wildcards.dataset} --settings {params.settings:q}"
        " --out {output.manifest} 2> {log}"
