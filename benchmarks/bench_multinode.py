"""2 nodes x 2 processes vs 1 node x 4: the same pretraining (same global batch, same shards) once
under one torchrun agent and once under two agents meeting through c10d rendezvous on localhost,
interleaved round by round so machine noise hits both alike. Reports the epoch time of the last
epoch (start-up excluded) and the whole launch, as ratios against 1 x 4. On one machine the two
"nodes" share its cores and talk over loopback, so this measures what the rendezvous and the
second agent cost, not a network.

Builds a small synthetic dataset through the workflow's own data rules first.

    .venv/bin/python benchmarks/bench_multinode.py [--rounds 3] [--epochs 2] [--objects 96]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def build_shards(work: Path, objects: int) -> tuple[dict, list[Path]]:
    """A synthetic dataset's triplet shards, through Snakemake; returns the config and shards."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["datasets"]["bench"] = {"source": "synthetic", "count": objects, "seed": 0}
    config["build"] = ["bench"]
    config["data"]["objects_per_shard"] = 16
    config["render"]["image_size"] = 64
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run(
        [sys.executable, "-m", "snakemake", "data/bench/summary.json", "--snakefile", str(REPO / "Snakefile"),
         "--directory", str(work), "--configfile", str(work / "config.yaml"), "--cores", str(os.cpu_count()),
         "--quiet", "all"],
        check=True, cwd=work, env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    return config, sorted((work / "data" / "bench" / "triplets").glob("*.parquet"))


def settings_for(config: dict, work: Path, epochs: int) -> dict:
    pretrain = dict(config["pretrain"], dataset="bench", holdout={"label_map": None, "classes": []}, device="cpu",
                    schedule="cached", epochs=epochs, prompt_epochs=0, batch_size=4, num_points=512, workers=0)
    clip = dict(config["clip"], model="cg3d-tiny-vit")
    return {"name": "bench-multinode", "clip": clip, "pretrain": pretrain,
            "tracking": {"uri": f"sqlite:///{work / 'mlflow.db'}"}}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(layout: str, settings: dict, shards: list[Path], out_dir: Path) -> float:
    """Run one pretraining in ``layout`` ('1x4' or '2x2'); returns the wall time of the launch."""
    job = ["-m", "cg3d", "pretrain", "--settings", json.dumps(settings), "--out-dir", str(out_dir),
           "--shards", *map(str, shards)]
    if layout == "1x4":
        agents = [TORCHRUN + ["--standalone", "--nproc-per-node=4", *job]]
    else:
        port = free_port()
        rendezvous = ["--nnodes=2", "--nproc-per-node=2", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}"]
        agents = [TORCHRUN + rendezvous + job for _ in range(2)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    started = time.perf_counter()
    running = [subprocess.Popen(agent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for agent in agents]
    for process in running:
        _, errors = process.communicate()
        if process.returncode:
            raise RuntimeError(f"{layout} pretraining failed:\n{errors[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--objects", type=int, default=96)
    args = parser.parse_args()
    layouts = ("1x4", "2x2")
    epoch, wall = {layout: [] for layout in layouts}, {layout: [] for layout in layouts}
    with tempfile.TemporaryDirectory(prefix="bench-multinode-") as tmp:
        work = Path(tmp)
        config, shards = build_shards(work, args.objects)
        settings = settings_for(config, work, args.epochs)
        for round_index in range(args.rounds):
            for layout in layouts:
                out_dir = work / f"{layout}-{round_index}"
                wall[layout].append(launch(layout, settings, shards, out_dir))
                run = json.loads((out_dir / "run.json").read_text())
                assert run["world_size"] == 4, run["world_size"]
                epoch[layout].append(run["final"]["points/epoch_seconds"])
    base_epoch, base_wall = statistics.median(epoch["1x4"]), statistics.median(wall["1x4"])
    print(f"{args.objects} synthetic objects, global batch 16 (4 x 4), {args.epochs} epochs, "
          f"{os.cpu_count()} cores, median of {args.rounds} interleaved rounds\n")
    print("| layout | last epoch (s) | vs 1x4 | whole launch (s) | vs 1x4 |")
    print("|---|---:|---:|---:|---:|")
    for layout in layouts:
        e, w = statistics.median(epoch[layout]), statistics.median(wall[layout])
        print(f"| {layout} | {e:.2f} | {e / base_epoch:.2f}x | {w:.1f} | {w / base_wall:.2f}x |")


if __name__ == "__main__":
    main()
