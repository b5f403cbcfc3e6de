# Evaluations of the pretrained checkpoint: zero-shot classification, cross-modal retrieval and
# language scene queries.
# Each job reads the checkpoint, its run.json and its own data, writes results/<task>_<name>.json
# with a figure beside it, and logs an MLflow run nested under the pretraining run. Only their own
# settings are params, so changing an evaluation setting reruns the evaluations and nothing else.


rule zeroshot:
    input:
        checkpoint=rules.pretrain.output.checkpoint,
        run=rules.pretrain.output.run,
        data=zeroshot_data,
        files=zeroshot_files,
    output:
        results=f"{RESULTS}/zeroshot_{{name}}.json",
        confusion=report(
            f"{RESULTS}/zeroshot_{{name}}_confusion.png",
            caption="../report/zeroshot_confusion.rst",
            category="Zero-shot classification",
            labels={"evaluation": "{name}", "figure": "confusion matrix"},
        ),
    wildcard_constraints:
        name="[a-z0-9_]+",
    params:
        settings=zeroshot_settings,
        data=zeroshot_data_arguments,
    threads: 2
    resources:
        gpu=evaluation_gpus(),
        mem_mb=8000,
    log:
        "logs/zeroshot/{name}.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "OMP_NUM_THREADS={threads} cg3d zeroshot --settings {params.settings:q}"
        " --checkpoint {input.checkpoint:q} --run {input.run:q} {params.data}"
        " --out {output.results:q} --confusion {output.confusion:q} 2> {log:q}"


rule retrieval:
    input:
        checkpoint=rules.pretrain.output.checkpoint,
        run=rules.pretrain.output.run,
        triplets=retrieval_triplets,
    output:
        results=f"{RESULTS}/retrieval_{{dataset}}.json",
        gallery=report(
            f"{RESULTS}/retrieval_{{dataset}}_gallery.png",
            caption="../report/retrieval_gallery.rst",
            category="Retrieval",
            labels={"dataset": "{dataset}", "figure": "gallery"},
        ),
    params:
        settings=retrieval_settings,
    threads: 2
    resources:
        gpu=evaluation_gpus(),
        mem_mb=8000,
    log:
        "logs/retrieval/{dataset}.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "OMP_NUM_THREADS={threads} cg3d retrieval --settings {params.settings:q}"
        " --checkpoint {input.checkpoint:q} --run {input.run:q} --triplets {input.triplets:q}"
        " --out {output.results:q} --gallery {output.gallery:q} 2> {log:q}"


rule scene_query:
    input:
        checkpoint=rules.pretrain.output.checkpoint,
        triplets=scene_query_triplets,
    output:
        summary=f"{SCENE_QUERY_DIR}/scene_query.json",
        scenes=scene_files(".json"),
        heat_maps=[
            report(
                path,
                caption="../report/scene_heat_maps.rst",
                category="Scene queries",
                labels={"scene": scene, "figure": "heat maps"},
            )
            for scene, path in zip(SCENES, scene_files(".png"))
        ],
        heat_clouds=[directory(path) for path in scene_files("")],
    params:
        settings=scene_query_settings,
        out_dir=output_folder,
    threads: 2
    resources:
        mem_mb=8000,
    log:
        "logs/scene_query.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "OMP_NUM_THREADS={threads} cg3d scene-query --settings {params.settings:q}"
        " --checkpoint {input.checkpoint:q} --triplets {input.triplets:q} --out-dir {params.out_dir:q} 2> {log:q}"
