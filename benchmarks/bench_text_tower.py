"""Does language grounding work offline? The same pretraining and held-out-classes zero-shot with
a randomly initialised text tower (`cg3d-tiny-vit`) and with the pretrained MiniLM text tower
(`cg3d-tiny-vit-minilm`), side by side. Both image towers are random; everything else is
config.yaml's, including `pretrain.holdout`, the classes no run ever reads.

The figure that matters is top-1 on the unseen classes, classified among the unseen class names:
a random text tower gives their names arbitrary vectors, so only a text tower that already knows
"stool" is near "chair" can place an unseen stool. Needs the SH3D shards
(`snakemake --cores 2 data/sh3d/summary.json`).

    .venv/bin/python benchmarks/bench_text_tower.py [--epochs 20] [--seeds 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from holdout_runs import default_config, pretrain_and_score

TOWERS = {"random": "cg3d-tiny-vit", "MiniLM": "cg3d-tiny-vit-minilm"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=1, help="pretraining seeds per tower (0, 1, ...)")
    args = parser.parse_args()
    config = default_config()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-text-tower-") as tmp:
        for seed in range(args.seeds):
            for tower, clip_model in TOWERS.items():
                out_dir = Path(tmp) / f"{clip_model}-seed{seed}"
                clip = {"model": clip_model, "pretrained": None}
                scored = pretrain_and_score(config, out_dir, seed, clip, epochs=args.epochs)["ensemble"]
                rows.append((tower, seed, scored))
    first = rows[0][2]
    print(f"\nheld out of pretraining: {', '.join(first['classes'])} ({first['unseen']['objects']} objects); "
          f"seen: {first['seen']['classes']} classes, {first['seen']['objects']} test-split objects; "
          f"{args.epochs} epochs of {config['pretrain']['schedule']} pretraining\n")
    print("| text tower | seed | unseen top-1 | unseen class-mean | unseen chance | seen top-1 | seen chance "
          "| harmonic mean | generalized unseen / seen / H |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for tower, seed, scored in rows:
        unseen, seen, generalized = scored["unseen"], scored["seen"], scored["generalized"]
        print(f"| {tower} | {seed} | {unseen['top1']:.3f} | {unseen['class_mean']:.3f} | {unseen['chance']:.3f} "
              f"| {seen['top1']:.3f} | {seen['chance']:.3f} | {scored['harmonic_mean']:.3f} "
              f"| {generalized['unseen_top1']:.3f} / {generalized['seen_top1']:.3f} / "
              f"{generalized['harmonic_mean']:.3f} |")
    for tower, seed, scored in rows:
        per_class = ", ".join(f"{name} {value:.2f}" for name, value in scored["unseen"]["per_class"].items())
        print(f"\n{tower} seed {seed}, unseen per class: {per_class}")
    for tower in TOWERS:
        unseen = [scored["unseen"] for name, _, scored in rows if name == tower]
        mean = sum(u["top1"] for u in unseen) / len(unseen)
        print(f"\n{tower}: unseen top-1 {mean:.3f} over {len(unseen)} seed(s) = {mean / unseen[0]['chance']:.2f}x chance")
    print(f"\n    python benchmarks/bench_text_tower.py --epochs {args.epochs} --seeds {args.seeds}")


if __name__ == "__main__":
    main()
