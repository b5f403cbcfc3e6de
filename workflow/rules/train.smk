# Pretraining: torchrun launches `pretrain.nproc` processes (GPUs per node on a cluster, gloo
# processes on a CPU). Rerunning after a kill resumes from the run directory's last.pt.

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
            pretrain=config["pretrain"],
            tracking=config["tracking"],
        ),
        nproc=config["pretrain"]["nproc"],
        out_dir=PRETRAIN_DIR,
    threads: max(2, config["pretrain"]["nproc"] * (config["pretrain"]["workers"] + 1))
    resources:
        gpu=config["pretrain"]["nproc"] if config["pretrain"]["device"] == "cuda" else 0,
        mem_mb=16000,
    log:
        f"logs/pretrain/{config['name']}.log",
    conda:
        "../../envs/train.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {PYTHON} -m torch.distributed.run --standalone --nproc-per-node {params.nproc}"
        " -m cg3d pretrain --settings {params.settings:q} --out-dir {params.out_dir}"
        " --shards {input.shards} 2> {log}"
