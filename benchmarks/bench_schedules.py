"""`cached` vs `alternating` pretraining on the SH3D triplet shards, side by side in one process:
wall time per epoch of each, and zero-shot accuracy on held-out SH3D objects (ModelNet40-style
classes) after the same number of 3D-encoder updates. `alternating` spends every other step on
the prompts, so it runs twice the epochs of `cached` to give its 3D encoder as many updates.

Needs the SH3D shards (`snakemake --cores 2 data/sh3d/summary.json`). Runs the pipeline's own
pretraining and zero-shot code with the settings of config.yaml, shortened by --epochs.
--clip-model swaps the CLIP architecture (e.g. ViT-B-16, randomly initialised: enough for
timing) and --shards trains on the first N shards that hold training rows, to keep a large image
tower affordable on a CPU. From the measured parts (prompt epochs, the embedding pass, one epoch
of each) it also projects whole-run times at longer schedules.

    .venv/bin/python benchmarks/bench_schedules.py [--epochs 5] [--clip-model ViT-B-16] [--shards 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml

from cg3d.data.shards import count_rows
from cg3d.evaluate.zeroshot import assign_labels, classification_scores, load_zeroshot_clouds
from cg3d.models.trained import load_trained
from cg3d.train.pretrain import pretrain

REPO = Path(__file__).resolve().parent.parent


def run_schedule(config: dict, schedule: str, epochs: int, shards: list[Path], workdir: Path) -> dict:
    settings = {
        "name": "bench-schedules",
        "clip": config["clip"],
        "pretrain": dict(config["pretrain"], schedule=schedule, epochs=epochs),
        "tracking": {"uri": f"sqlite:///{workdir / 'mlflow.db'}"},
    }
    summary = pretrain(settings, shards, workdir / schedule)
    seconds = {key: value for key, value in summary["final"].items() if key.endswith("/epoch_seconds")}
    return {"summary": summary, "epoch_seconds": seconds, "checkpoint": workdir / schedule / "checkpoint.pt"}


def zero_shot(config: dict, result: dict, workdir: Path, schedule: str) -> dict:
    data_dir = REPO / config["paths"]["data"] / "sh3d"
    spec = dict(config["evaluate"]["zeroshot"]["sh3d"], name="sh3d")
    clouds = load_zeroshot_clouds(
        spec, config["evaluate"]["num_points"], sorted((data_dir / "points").glob("*.parquet")),
        data_dir / "manifest.parquet",
    )  # fmt: skip
    data = assign_labels(clouds, spec["label_map"])
    model = load_trained(result["checkpoint"], workdir / schedule / "run.json", "cpu")
    scores = (model.encode_prepared(data.points) @ model.encode_classes(data.class_names).T).numpy()
    metrics = classification_scores(scores, data.labels, data.class_names)["metrics"]
    return {**metrics, "classes": len(data.class_names), "objects": len(data.labels)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--clip-model", help="open_clip architecture instead of config.yaml's clip.model")
    parser.add_argument("--shards", type=int, help="train on the first N triplet shards that hold training rows")
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    if args.clip_model:
        config["clip"] = dict(config["clip"], model=args.clip_model, pretrained=None)
    shards = sorted((REPO / config["paths"]["data"] / "sh3d" / "triplets").glob("*.parquet"))
    shards = [shard for shard in shards if count_rows(shard, "train")][: args.shards]
    if not shards:
        parser.error("no SH3D triplet shards: run `snakemake --cores 2 data/sh3d/summary.json` first")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-schedules-") as tmp:
        workdir = Path(tmp)
        for schedule, epochs in (("cached", args.epochs), ("alternating", 2 * args.epochs)):
            result = run_schedule(config, schedule, epochs, shards, workdir)
            rows[schedule] = (result, zero_shot(config, result, workdir, schedule))
    cached_epoch = rows["cached"][0]["epoch_seconds"]["points/epoch_seconds"]
    alternating_epoch = rows["alternating"][0]["epoch_seconds"]["alternating/epoch_seconds"]
    final = rows["cached"][0]["summary"]["final"]
    setup = config["pretrain"]["prompt_epochs"] * final.get("prompts/epoch_seconds", 0.0) + final["image_cache/seconds"]
    print(f"\ncached: {args.epochs} 3D-encoder epochs; alternating: {2 * args.epochs} epochs (as many 3D-encoder "
          f"updates); {len(shards)} SH3D shards, CLIP {config['clip']['model']}\n")
    print("| schedule | last epoch s | total train s | zero-shot top-1 | top-5 | class-mean | chance |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for schedule, (result, zs) in rows.items():
        epoch = cached_epoch if schedule == "cached" else alternating_epoch
        total = result["summary"]["train_seconds_this_launch"]
        print(f"| {schedule} | {epoch:.1f} | {total:.0f} | {zs['top1']:.3f} | {zs['top5']:.3f} | "
              f"{zs['class_mean']:.3f} | {1 / zs['classes']:.3f} |")
    print(f"\nepoch-time ratio alternating / cached: {alternating_epoch / cached_epoch:.2f}x; per 3D-encoder "
          f"update: {2 * alternating_epoch / cached_epoch:.2f}x (cached's total includes its prompt epochs "
          f"and one embedding pass)")
    print(f"cached's one-off cost: {setup:.0f} s ({config['pretrain']['prompt_epochs']} prompt epochs + "
          f"embedding pass {final['image_cache/seconds']:.0f} s)")
    for epochs in (20, 100):
        cached_total, alternating_total = setup + epochs * cached_epoch, 2 * epochs * alternating_epoch
        print(f"projected at {epochs} 3D-encoder epochs: cached {cached_total:.0f} s, alternating "
              f"{alternating_total:.0f} s ({alternating_total / cached_total:.2f}x)")
    flags = f" --clip-model {args.clip_model}" if args.clip_model else ""
    flags += f" --shards {args.shards}" if args.shards else ""
    print(f"\n    python benchmarks/bench_schedules.py --epochs {args.epochs}{flags}")


if __name__ == "__main__":
    main()
