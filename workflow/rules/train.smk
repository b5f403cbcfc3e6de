# Pretraining: `cg3d launch-pretrain` checks the request (GPUs visible, nodes) and becomes torchrun
# with `pretrain.nproc` processes per node: standalone on one node, or one torchrun per node
# through srun under SLURM (cg3d/train/launch.py). Rerunning after a kill resumes from last.pt.
from cg3d.train.launch import slurm_resources, training_section

RUNS = config["paths"]["runs"]
PRETRAIN_DIR = f"{RUNS}/{config['name']}/pretrain"


def pretrain_shards(wildcards):
    dataset = config["pretrain"]["dataset"]
    return expand(f"{DATA}/{dataset}/triplets/{{shard}}.parquet", shard=shards_of(dataset))


rule pretrain:
    input:
        shards=pretrain_shards,
    output:
        checkpoint=f"{PRETRAIN_DIR}/checkpoint.pt",
        run=f"{PRETRAIN_DIR}/run.json",
    params:
        settings=settings(
            name=config["name"],
            clip=config["clip"],
            pretrain=training_section(config["pretrain"]),
            tracking=config["tracking"],
        ),
        out_dir=PRETRAIN_DIR,
        rendezvous=["--rdzv-endpoint", config["pretrain"]["rdzv_endpoint"]] if config["pretrain"]["rdzv_endpoint"] else [],
    threads: max(2, config["pretrain"]["nproc"] * (config["pretrain"]["workers"] + 1))
    resources:
        **slurm_resources(config["pretrain"]),
    log:
        f"logs/pretrain/{config['name']}.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {CG3D} launch-pretrain --settings {params.settings:q}"
        " --out-dir {params.out_dir:q} {params.rendezvous:q}"
        " --shards {input.shards:q} 2> {log:q}"
