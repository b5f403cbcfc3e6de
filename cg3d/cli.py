"""`cg3d`: a trained model on your own shapes (embed, classify, search, serve), and the pipeline's stages.

The first four take ordinary options (cg3d/inference/commands.py). Each pipeline stage gets its
settings as one JSON document (`--settings`), exactly the config sections it reads: the rule
passes them as a Snakemake param, so changing a setting reruns exactly the stages that depend on
it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from cg3d.inference.commands import add_commands, run_user_command
from cg3d.serve.command import add_serve_command


def _fetch_sh3d(args) -> None:
    from cg3d.data.sh3d_fetch import fetch_sh3d

    for folder in fetch_sh3d(Path(args.dest)):
        print(folder)


def _manifest(args) -> None:
    from cg3d.data.stages import build_manifest

    build_manifest(args.dataset, args.settings, Path(args.out))


def _render(args) -> None:
    from cg3d.data.stages import render_shard

    render_shard(args.dataset, args.shard, Path(args.manifest), args.settings, Path(args.out))


def _points(args) -> None:
    from cg3d.data.stages import sample_shard

    sample_shard(args.dataset, args.shard, Path(args.manifest), args.settings, Path(args.out))


def _triplets(args) -> None:
    from cg3d.data.stages import assemble_triplets

    assemble_triplets(
        args.shard, Path(args.manifest), Path(args.views), Path(args.points), args.settings, Path(args.out)
    )


def _summarize(args) -> None:
    from cg3d.data.stages import summarize

    manifest = Path(args.manifest) if args.manifest else None
    summary = summarize([Path(p) for p in args.triplets], Path(args.summary), Path(args.skipped), manifest)
    reasons = ", ".join(f"{n} {r}" for r, n in summary["skipped_reasons"].items()) or "none"
    print(
        f"{summary['objects']} objects in {summary['shards']} shards "
        f"({summary['splits']}); skipped {summary['skipped']}: {reasons}"
    )


def _pretrain(args) -> None:
    from cg3d.train.pretrain import pretrain

    summary = pretrain(args.settings, [Path(p) for p in args.shards], Path(args.out_dir))
    print(json.dumps(summary["final"], indent=2))


def _launch_pretrain(args) -> None:
    from cg3d.train.launch import LaunchError, launch_pretrain

    try:
        launch_pretrain(args.settings, args.out_dir, args.shards, args.rdzv_endpoint, args.dry_run)
    except LaunchError as error:
        sys.exit(f"cg3d launch-pretrain: {error}")


def _zeroshot(args) -> None:
    from cg3d.evaluate.zeroshot import evaluate_zeroshot

    document = evaluate_zeroshot(
        args.settings, Path(args.checkpoint), Path(args.run), Path(args.out), Path(args.confusion),
        points=[Path(p) for p in args.points], manifest=Path(args.manifest) if args.manifest else None,
    )  # fmt: skip
    print(json.dumps({"metrics": document["metrics"], "counts": document["counts"]}, indent=2))


def _retrieval(args) -> None:
    from cg3d.evaluate.retrieval import evaluate_retrieval

    document = evaluate_retrieval(
        args.settings, Path(args.checkpoint), Path(args.run), [Path(p) for p in args.triplets],
        Path(args.out), Path(args.gallery),
    )  # fmt: skip
    print(json.dumps(document["metrics"], indent=2))


def _finetune(args) -> None:
    from cg3d.evaluate.finetune import finetune

    document = finetune(
        args.settings, [Path(p) for p in args.triplets], Path(args.checkpoint), Path(args.out), Path(args.work_dir)
    )
    print(json.dumps(document["metrics"]["difference"], indent=2))


def _scene_query(args) -> None:
    from cg3d.evaluate.scene_query import scene_query

    summary = scene_query(args.settings, [Path(p) for p in args.triplets], Path(args.checkpoint), Path(args.out_dir))
    print(json.dumps(summary["metrics"], indent=2))


def _index(args) -> None:
    from cg3d.inference.dataset_index import index_dataset

    print(index_dataset(args.settings, Path(args.checkpoint), Path(args.run), [Path(p) for p in args.triplets],
                        Path(args.manifest), Path(args.out)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cg3d", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    add_serve_command(sub)

    def stage(name: str, handler, help: str, *args: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        for arg in args:
            p.add_argument(f"--{arg.replace('_', '-')}", dest=arg, required=True)
        if "settings" in args:
            p.set_defaults(parse_settings=True)
        p.set_defaults(handler=handler)
        return p

    stage("fetch-sh3d", _fetch_sh3d, "fetch Debian's sweethome3d-furniture meshes", "dest")
    stage("manifest", _manifest, "list a dataset's objects", "dataset", "settings", "out")
    shard_args = ("dataset", "shard", "manifest", "settings", "out")
    stage("render", _render, "render a shard's multi-view images", *shard_args)
    stage("points", _points, "sample a shard's point clouds", *shard_args)
    stage("triplets", _triplets, "join views, points and captions", "shard", "manifest", "views",
          "points", "settings", "out")
    summarize = stage("summarize", _summarize, "summarise a dataset's shards", "summary", "skipped")
    summarize.add_argument("--triplets", nargs="+", required=True)
    summarize.add_argument("--manifest", help="the dataset's manifest, for the objects it left out")
    pretrain = stage("pretrain", _pretrain, "pretrain the 3D encoder (run under torchrun)", "settings", "out_dir")
    pretrain.add_argument("--shards", nargs="+", required=True)
    launch = stage("launch-pretrain", _launch_pretrain, "check the request, then run pretrain under "
                   "torchrun (through srun on several SLURM nodes)", "settings", "out_dir")
    launch.add_argument("--shards", nargs="+", required=True)
    launch.add_argument("--rdzv-endpoint", help="host:port of the rendezvous, for several nodes outside SLURM")
    launch.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    evaluation = ("settings", "checkpoint", "run", "out")
    zeroshot = stage("zeroshot", _zeroshot, "zero-shot classification of a checkpoint", *evaluation, "confusion")
    zeroshot.add_argument("--manifest", help="a pipeline dataset's manifest (not for ScanObjectNN)")
    zeroshot.add_argument("--points", nargs="*", default=[], help="that dataset's point shards")
    retrieval = stage("retrieval", _retrieval, "text/image/3D retrieval of a checkpoint", *evaluation, "gallery")
    retrieval.add_argument("--triplets", nargs="+", required=True)
    finetune = stage("finetune", _finetune, "fine-tune from the checkpoint and from scratch", "settings",
                     "checkpoint", "out", "work_dir")
    finetune.add_argument("--triplets", nargs="+", required=True)
    scene = stage("scene-query", _scene_query, "language queries over scenes", "settings", "checkpoint", "out_dir")
    scene.add_argument("--triplets", nargs="+", required=True)
    index = stage("index", _index, "embed a dataset's objects into a searchable index", "settings", "checkpoint",
                  "run", "manifest", "out")
    index.add_argument("--triplets", nargs="+", required=True)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "parse_settings", False):
        try:
            args.settings = json.loads(args.settings)
        except json.JSONDecodeError as error:
            sys.exit(f"cg3d {args.command}: --settings is not valid JSON ({error})")
    if getattr(args, "user_command", False):
        run_user_command(args)
    else:
        args.handler(args)
