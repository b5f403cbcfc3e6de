# Mesh sources -> manifest. SH3D, the embedded default, is fetched from Debian's package first.
# Every path, wildcard and param in a shell command is quoted (:q): paths may hold spaces or ';'.


rule fetch_sh3d:
    output:
        marker="{root}/.fetched",
    log:
        "logs/fetch_sh3d/{root}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "cg3d fetch-sh3d --dest {wildcards.root:q} > {log:q} 2>&1"


checkpoint manifest:
    input:
        unpack(manifest_inputs),
    output:
        manifest=f"{DATA}/{{dataset}}/manifest.parquet",
    params:
        settings=manifest_settings,
    log:
        "logs/manifest/{dataset}.log",
    conda:
        "../../envs/data.yaml"
    shell:
        "cg3d manifest --dataset {wildcards.dataset:q} --settings {params.settings:q}"
        " --out {output.manifest:q} 2> {log:q}"
