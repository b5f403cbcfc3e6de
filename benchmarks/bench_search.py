"""Search latency (single query, k=10): exact torch top-k against faiss IVF, side by side in one
process, at 10k, 100k and 1M clustered synthetic embeddings (D=512), with IVF's recall@10
against exact and the time to build it and to open a saved index.

Data: tests/helpers/synthetic_embeddings.py (a normalised Gaussian mixture of 1000 uneven components by default);
queries are fresh draws of the same mixture. Exact and IVF take turns per query. "open" is
``open_index`` on the Parquet file: the first one builds and caches IVF past the exact limit,
the second memory-maps the cache and skips the embedding column.

    python benchmarks/bench_search.py [--sizes 10000 100000 1000000] [--queries 200] [--components 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import faiss
from search_timing import command_line, interleaved_latencies, p50_p99_ms, report, timed

from cg3d.search.ann import AnnParams
from cg3d.search.embeddings_file import write_embeddings
from cg3d.search.index import EXACT_LIMIT, EmbeddingIndex, resolve_method
from cg3d.search.saved_index import open_index

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.synthetic_embeddings import DEFAULT_COMPONENTS, clustered_embeddings, recall_at_k  # noqa: E402

K = 10
MODEL = {"checkpoint": "synthetic", "checkpoint_sha256": "0" * 64, "clip_model": "none",
         "clip_pretrained": "none", "settings": {}}


def measure(size: int, dim: int, components: int, query_count: int) -> dict:
    """One row of the table: the two methods compared, then the index file opened."""
    vectors, queries = clustered_embeddings(size, dim, components, seed=0, queries=query_count)
    row = {"size": size, "auto": resolve_method("auto", size), **compare(vectors, queries)}
    row["open_s"] = open_times(vectors)
    return row


def compare(vectors, queries) -> dict:
    """Both methods built over the same vectors, IVF's recall against exact, then timed per query."""
    exact = EmbeddingIndex(vectors, method="exact")
    ann, build_s = timed(EmbeddingIndex, vectors, method="ann")
    truth = exact.search(queries, K)[1]
    recall = recall_at_k(ann.search(queries, K)[1], truth)
    times = interleaved_latencies({"exact": lambda q: exact.search(q, K),
                                   "ann": lambda q: ann.search(q, K)}, queries)
    return {"lists": ann.ann.nlist, "build_s": build_s, "recall": recall,
            "exact_ms": p50_p99_ms(times["exact"]), "ann_ms": p50_p99_ms(times["ann"])}


def open_times(vectors) -> tuple[float, float]:
    """Seconds to open a written index file the first time (may build IVF) and the second."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "index.parquet"
        ids = [f"shape-{row}" for row in range(len(vectors))]
        write_embeddings(path, ids, ids, vectors, MODEL)
        first = timed(open_index, path)[1]
        second = timed(open_index, path)[1]
    return first, second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--components", type=int, default=DEFAULT_COMPONENTS,
                        help="mixture components; many (e.g. 20000) make tiny clusters, hard for IVF")
    args = parser.parse_args()

    rows = []
    for size in args.sizes:
        rows.append(measure(size, args.dim, args.components, args.queries))
        print(f"{size}: done", file=sys.stderr, flush=True)
    lines = [
        f"## Search, single query, k={K}, D={args.dim}, {args.components} clusters, "
        f"{args.queries} queries per size\n",
        f"{command_line()}, faiss {faiss.__version__} with {faiss.omp_get_max_threads()} threads. "
        f"`auto` is exact up to {EXACT_LIMIT:,} rows; IVF probes {AnnParams().probes} lists.\n",
        "| embeddings | auto picks | IVF lists | IVF build s | exact p50 ms | exact p99 ms "
        "| IVF p50 ms | IVF p99 ms | IVF speed-up (p50) | IVF recall@10 | open file s, first / cached |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        (exact_p50, exact_p99), (ann_p50, ann_p99) = row["exact_ms"], row["ann_ms"]
        lines.append(
            f"| {row['size']:,} | {row['auto']} | {row['lists']} | {row['build_s']:.1f} "
            f"| {exact_p50:.2f} | {exact_p99:.2f} | {ann_p50:.2f} | {ann_p99:.2f} "
            f"| {exact_p50 / ann_p50:.0f}x | {row['recall']:.4f} "
            f"| {row['open_s'][0]:.1f} / {row['open_s'][1]:.1f} |")
    report(lines, "search.md" if args.components == DEFAULT_COMPONENTS else f"search_{args.components}.md")


if __name__ == "__main__":
    main()
