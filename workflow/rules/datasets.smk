# Mesh sources -> manifest. SH3D, the embedded default, is fetched from Debian's package first.
# Every path, wildcard and param in a shell command is quoted (:q): paths may hold spaces or ';'.

GEOMETRY_BUDGET_KEYS = ("max_faces", "max_file_mb", "max_instances", "max_texture_pixels")


def geometry_budget():
    """The data.* caps on one object, for the settings of every stage that loads meshes."""
    return {key: config["data"][key] for key in GEOMETRY_BUDGET_KEYS}


rule fetch_sh3d:
    output:
        marker="{root}/.fetched",
    log:
        "logs/fetch_sh3d/{root}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "{CG3D} fetch-sh3d --dest {wildcards.root:q} > {log:q} 2>&1"


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
        "{CG3D} manifest --dataset {wildcards.dataset:q} --settings {params.settings:q}"
        " --out {output.manifest:q} 2> {log:q}"
