# Fine-tuning: a classification head on the pretrained 3D encoder against the same head on a
# randomly initialised encoder, with the same budget; both arms in one results file, each arm's
# final weights in its work folder.


rule finetune:
    input:
        checkpoint=rules.pretrain.output.checkpoint,
        triplets=finetune_triplets,
    output:
        results=f"{RESULTS}/finetune_{{dataset}}.json",
        curves=report(
            f"{RESULTS}/finetune_{{dataset}}_curves.png",
            caption="../report/finetune_curves.rst",
            category="Fine-tuning",
            labels={"dataset": "{dataset}", "figure": "loss curves"},
        ),
        confusion=report(
            f"{RESULTS}/finetune_{{dataset}}_confusion.png",
            caption="../report/finetune_confusion.rst",
            category="Fine-tuning",
            labels={"dataset": "{dataset}", "figure": "confusion matrix"},
        ),
        arms=directory(f"{RUNS}/{config['name']}/finetune_{{dataset}}"),
    params:
        settings=finetune_settings,
    threads: 2
    resources:
        mem_mb=8000,
    log:
        "logs/finetune/{dataset}.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "OMP_NUM_THREADS={threads} cg3d finetune --settings {params.settings:q}"
        " --checkpoint {input.checkpoint:q} --triplets {input.triplets:q}"
        " --out {output.results:q} --work-dir {output.arms:q} 2> {log:q}"
