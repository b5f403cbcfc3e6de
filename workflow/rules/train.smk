# Pretraining: `cg3d launch-pretrain` checks the request (GPUs visible, nodes) and becomes torchrun
# with `pretrain.nproc` processes per node: standalone on one node, or one torchrun per node
# through srun under SLURM (cg3d/train/launch.py). Rerunning after a kill resumes from last.pt,
# which with the image cache and the trainer's lock stays undeclared: Snakemake deletes declared
# outputs before it reruns a job.


rule pretrain:
    input:
        shards=pretrain_shards,
    output:
        checkpoint=f"{PRETRAIN_DIR}/checkpoint.pt",
        run=f"{PRETRAIN_DIR}/run.json",
        loss_curves=report(
            f"{PRETRAIN_DIR}/loss_curves.png",
            caption="../report/pretrain_loss_curves.rst",
            category="Pretraining",
            labels={"figure": "loss curves"},
        ),
    params:
        settings=pretrain_settings(),
        out_dir=output_folder,
        rendezvous=rendezvous_arguments(),
    threads: pretrain_threads()
    resources:
        **slurm_resources(config["pretrain"]),
    log:
        f"logs/pretrain/{config['name']}.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "OMP_NUM_THREADS={threads} cg3d launch-pretrain --settings {params.settings:q}"
        " --out-dir {params.out_dir:q} {params.rendezvous:q}"
        " --shards {input.shards:q} 2> {log:q}"
