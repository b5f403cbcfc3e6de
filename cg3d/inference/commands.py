"""`cg3d embed | classify | search`: a trained model on the user's own shapes (`cg3d serve`: cg3d.serve).

Unlike the pipeline's stages, these take ordinary options. A bad file in a batch is skipped and
listed at the end; a bad request (no such checkpoint, an index of another model, no classes)
ends the command with one line naming what and why.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cg3d.data.sources.base import UP_AXES

if TYPE_CHECKING:
    from cg3d.data.shape_files import ShapeFileError


def _load(args):
    import cg3d

    return cg3d.load(args.checkpoint, device=args.device, batch_size=args.batch_size)


def open_search(args):
    """The index of ``--index`` opened for the model of ``--checkpoint``, by default the one the
    index names."""
    from cg3d.inference.model_source import MLFLOW_SCHEMES
    from cg3d.inference.search import ShapeSearch
    from cg3d.search.embeddings_file import inspect_embeddings

    if not args.checkpoint:
        args.checkpoint = inspect_embeddings(args.index)[1]["checkpoint"]
        if not args.checkpoint.startswith(MLFLOW_SCHEMES) and not Path(args.checkpoint).is_file():
            raise FileNotFoundError(f"{args.index} was made by the checkpoint {args.checkpoint}, which is not there "
                                    "from here: run from the folder it was made in, or give --checkpoint")
    return ShapeSearch(_load(args), args.index, args.method)


def _report_skipped(skipped: list[ShapeFileError]) -> None:
    if skipped:
        print(f"skipped {len(skipped)} file(s):", file=sys.stderr)
        for error in skipped:
            print(f"  {error}", file=sys.stderr)


def _embed(args) -> None:
    from cg3d.inference.embed import embed_shape_files, write_index
    from cg3d.inference.thumbnails import Thumbnails

    model = _load(args)
    thumbnails = Thumbnails() if args.thumbnails else None
    try:
        shapes = embed_shape_files(model, args.paths, args.up_axis, thumbnails)
    finally:
        if thumbnails is not None:
            thumbnails.close()
    _report_skipped(shapes.skipped)
    path = write_index(args.out, shapes, model, args.up_axis)
    print(f"{len(shapes.ids)} shapes embedded into {path}")


def _classify(args) -> None:
    from cg3d.inference.classify import class_names, classify_shape_files

    names = class_names(args.labels, args.label_set)
    results, skipped = classify_shape_files(_load(args), args.paths, names, args.top_k, args.up_axis,
                                            prompts=args.prompts)
    if args.json:
        print(json.dumps({"results": [r.as_json() for r in results],
                          "skipped": [{"path": str(e.path), "reason": e.reason} for e in skipped]}, indent=2))
    else:
        width = max((len(r.path) for r in results), default=4)
        for result in results:
            for i, (label, probability) in enumerate(result.top):
                print(f"{result.path if i == 0 else '':<{width}}  {probability:6.1%}  {label}")
    _report_skipped(skipped)


def _search(args) -> None:
    from cg3d.inference.search import write_search_gallery

    searcher = open_search(args)
    hits = searcher.search(searcher.embed_query(args.query), args.k)
    if args.json:
        print(json.dumps([hit.as_json() for hit in hits], indent=2))
    else:
        for hit in hits:
            label = f"  [{hit.label}]" if hit.label else ""
            print(f"{hit.rank:3d}  {hit.score:.4f}  {hit.id}{label}")
    if args.gallery and "thumbnail" in searcher.columns:
        print(f"gallery: {write_search_gallery(searcher, args.query, hits, args.gallery)}", file=sys.stderr)
    elif args.gallery:
        print(f"no gallery: {args.index} holds no thumbnails (cg3d embed --thumbnails makes them)", file=sys.stderr)


def model_options(parser: argparse.ArgumentParser, checkpoint_required: bool = True) -> None:
    where = "a checkpoint.pt, or an MLflow runs:/<run id>/model or models:/<name>/<version> URI"
    if not checkpoint_required:
        where += " (default: the checkpoint the index names)"
    parser.add_argument("--checkpoint", required=checkpoint_required, help=where)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: cuda if there is one)")
    parser.add_argument("--batch-size", type=int, default=64, help="shapes per forward pass (default: 64)")


def method_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", default="auto", help="exact, ann (faiss IVF) or auto (IVF past 200k shapes)")


def _shape_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--up-axis", choices=UP_AXES, default="y",
                        help="the axis the files' shapes stand on (default: y; many scans and CAD files: z)")


def add_commands(sub) -> None:
    """Add the commands to the ``cg3d`` parser's subparsers."""
    embed = sub.add_parser("embed", help="embed shape files (folders walked) into an index file")
    embed.add_argument("paths", nargs="+", metavar="PATH", help="shape files or folders")
    embed.add_argument("--out", required=True, help="the embeddings file to write (.parquet)")
    embed.add_argument("--thumbnails", action="store_true", help="render a thumbnail of each shape")
    model_options(embed)
    _shape_options(embed)
    embed.set_defaults(handler=_embed)

    classify = sub.add_parser("classify", help="zero-shot classes of shape files")
    classify.add_argument("paths", nargs="+", metavar="FILE", help="shape files or folders")
    classify.add_argument("--labels", help="the classes, comma-separated: 'chair,table,lamp'")
    classify.add_argument("--label-set", help="modelnet40, modelnet10, scanobjectnn, or a file of class names")
    classify.add_argument("-k", "--top-k", type=int, default=5, help="classes shown per file (default: 5)")
    classify.add_argument("--prompts", default="ensemble",
                          help="ensemble (62 caption templates per class, the default) or single ('This is a {}')")
    classify.add_argument("--json", action="store_true", help="print JSON instead of a table")
    model_options(classify)
    _shape_options(classify)
    classify.set_defaults(handler=_classify)

    search = sub.add_parser("search", help="search an index by text, an image file or a shape file")
    search.add_argument("query", help="text, or the path of an image or shape file")
    search.add_argument("--index", required=True, help="an embeddings file (cg3d embed, or the pipeline's)")
    search.add_argument("-k", type=int, default=10, help="results (default: 10)")
    search.add_argument("--gallery", default="search_gallery.png", help="the thumbnails PNG ('' for none)")
    method_option(search)
    search.add_argument("--json", action="store_true", help="print JSON instead of a table")
    model_options(search, checkpoint_required=False)
    search.set_defaults(handler=_search)

    for parser in (embed, classify, search):
        parser.set_defaults(user_command=True)


def run_user_command(args) -> None:
    """Run the command; a bad request ends it with one line, not a traceback."""
    try:
        args.handler(args)
    except (ValueError, OSError) as error:  # FileNotFoundError, ShapeFileError, ModelMismatchError, ...
        sys.exit(f"cg3d {args.command}: {error}")
