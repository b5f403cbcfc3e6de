"""Does the official recipe learn better here? Our augmentation (`cg3d`, the stored FPS prefix) vs
the official one (`official`, fresh point subsets every step), each scored on the classes held out
of pretraining under both zero-shot protocols (`single`: "This is a {}"; `ensemble`: the 62
templates), over several seeds. Everything else is config.yaml's. Needs the SH3D shards
(`snakemake --cores 2 data/sh3d/summary.json`).

    .venv/bin/python benchmarks/bench_recipe.py [--epochs 20] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from holdout_runs import PROTOCOLS, default_config, pretrain_and_score

RECIPES = {"cg3d": {"augment": "cg3d", "subsample": "prefix"}, "official": {"augment": "official", "subsample": "prefix_subset"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3, help="pretraining seeds per recipe (0, 1, ...)")
    args = parser.parse_args()
    config = default_config()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-recipe-") as tmp:
        for seed in range(args.seeds):
            for recipe, overrides in RECIPES.items():
                out_dir = Path(tmp) / f"{recipe}-seed{seed}"
                scored = pretrain_and_score(config, out_dir, seed, epochs=args.epochs, **overrides)
                rows.extend((recipe, protocol, seed, scored[protocol]) for protocol in PROTOCOLS)
                print(f"done: {recipe} seed {seed}: " + ", ".join(
                    f"{p} unseen {scored[p]['unseen']['top1']:.3f} seen {scored[p]['seen']['top1']:.3f}"
                    for p in PROTOCOLS), flush=True)  # fmt: skip
    print(f"\n{args.epochs} epochs of {config['pretrain']['schedule']} pretraining, "
          f"held out: {', '.join(rows[0][3]['classes'])}\n")
    print("| recipe | protocol | seed | unseen top-1 | unseen class-mean | seen top-1 | harmonic mean |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for recipe, protocol, seed, scored in rows:
        unseen, seen = scored["unseen"], scored["seen"]
        print(f"| {recipe} | {protocol} | {seed} | {unseen['top1']:.3f} | {unseen['class_mean']:.3f} "
              f"| {seen['top1']:.3f} | {scored['harmonic_mean']:.3f} |")
    print("\nMeans over seeds (unseen chance "
          f"{rows[0][3]['unseen']['chance']:.3f}, seen chance {rows[0][3]['seen']['chance']:.3f}):\n")
    print("| recipe | protocol | unseen top-1 | unseen class-mean | seen top-1 | harmonic mean |")
    print("|---|---|---:|---:|---:|---:|")
    for recipe in RECIPES:
        for protocol in PROTOCOLS:
            runs = [scored for r, p, _, scored in rows if (r, p) == (recipe, protocol)]

            def mean(pick) -> float:
                return statistics.mean(pick(scored) for scored in runs)

            print(f"| {recipe} | {protocol} | {mean(lambda s: s['unseen']['top1']):.3f} "
                  f"| {mean(lambda s: s['unseen']['class_mean']):.3f} | {mean(lambda s: s['seen']['top1']):.3f} "
                  f"| {mean(lambda s: s['harmonic_mean']):.3f} |")
    print(f"\n    python benchmarks/bench_recipe.py --epochs {args.epochs} --seeds {args.seeds}")


if __name__ == "__main__":
    main()
