"""ANN libraries for cg3d.search, side by side on the same clustered embeddings: faiss IVF-Flat
(what cg3d uses), faiss HNSW, hnswlib and usearch (both HNSW). For each: build time, size on
disk, whether two builds answer alike, and recall@10 against exact with single-query latency
over a sweep of its search-time knob (IVF: lists probed; HNSW: efSearch).

All HNSW graphs get the same M=16 and efConstruction=100, float32 vectors and every core for the
build; IVF gets cg3d's defaults (about sqrt(N) lists, 40 k-means samples per list).

    python benchmarks/bench_ann_libraries.py [--size 100000] [--queries 200] [--components 1000]
                                            [--libraries ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import faiss
import hnswlib
import numpy as np
import usearch.index
from search_timing import command_line, interleaved_latencies, p50_p99_ms, report, timed

from cg3d.search.ann import AnnParams, build_ivf
from cg3d.search.index import EmbeddingIndex

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers.synthetic_embeddings import DEFAULT_COMPONENTS, clustered_embeddings, recall_at_k  # noqa: E402

K = 10
M = 16
EF_CONSTRUCTION = 100
THREADS = os.cpu_count()


class FaissIvf:
    knob, values = "probes", (2, 8, 16, 32, 64, 128)

    def __init__(self, vectors):
        self.index = build_ivf(vectors, AnnParams())

    def tune(self, value):
        self.index.nprobe = value

    def search(self, queries):
        return self.index.search(queries, K)[1]

    def save(self, path):
        faiss.write_index(self.index, str(path))


class FaissHnsw(FaissIvf):
    knob, values = "efSearch", (16, 32, 64, 128, 256)

    def __init__(self, vectors):
        self.index = faiss.IndexHNSWFlat(vectors.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = EF_CONSTRUCTION
        self.index.add(vectors)

    def tune(self, value):
        self.index.hnsw.efSearch = value


class Hnswlib:
    knob, values = "ef", (16, 32, 64, 128, 256)

    def __init__(self, vectors):
        self.index = hnswlib.Index(space="ip", dim=vectors.shape[1])
        self.index.init_index(len(vectors), M=M, ef_construction=EF_CONSTRUCTION, random_seed=0)
        self.index.add_items(vectors, num_threads=THREADS)

    def tune(self, value):
        self.index.set_ef(value)

    def search(self, queries):
        return self.index.knn_query(queries, K, num_threads=1)[0]

    def save(self, path):
        self.index.save_index(str(path))


class Usearch:
    knob, values = "expansion_search", (16, 32, 64, 128, 256)

    def __init__(self, vectors):
        self.index = usearch.index.Index(ndim=vectors.shape[1], metric="ip", dtype="f32",
                                         connectivity=M, expansion_add=EF_CONSTRUCTION)
        self.index.add(np.arange(len(vectors)), vectors, threads=THREADS)

    def tune(self, value):
        self.index.expansion_search = value

    def search(self, queries):
        return self.index.search(queries, K, threads=1).keys.reshape(len(queries), K)

    def save(self, path):
        self.index.save(str(path))


LIBRARIES = {"faiss IVF-Flat": FaissIvf, "faiss HNSW": FaissHnsw, "hnswlib": Hnswlib, "usearch": Usearch}


def measure(library, vectors, queries, truth, determinism_vectors) -> dict:
    """Build (timed), size on disk, a second build's agreement, and the knob sweep."""
    index, build_s = timed(library, vectors)
    with tempfile.TemporaryDirectory() as folder:
        index.save(Path(folder) / "index")
        size_mb = (Path(folder) / "index").stat().st_size / 2**20
    first, second = library(determinism_vectors), library(determinism_vectors)
    first.tune(library.values[-2])
    second.tune(library.values[-2])
    same = np.array_equal(first.search(queries), second.search(queries))
    sweep = []
    for value in library.values:
        index.tune(value)
        recall = recall_at_k(index.search(queries), truth)
        latency = p50_p99_ms(interleaved_latencies({"ann": index.search}, queries)["ann"])
        sweep.append((value, recall, latency))
    return {"build_s": build_s, "size_mb": size_mb, "deterministic": same, "sweep": sweep}


def first_reaching(sweep, target: float) -> str:
    for value, recall, (p50, p99) in sweep:
        if recall >= target:
            return f"{value}: {recall:.3f}, {p50:.2f} / {p99:.2f}"
    return "not reached"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--components", type=int, default=DEFAULT_COMPONENTS,
                        help="mixture components; many (e.g. 20000) make tiny clusters, hard for IVF")
    parser.add_argument("--determinism-size", type=int, default=20_000)
    parser.add_argument("--libraries", nargs="+", choices=list(LIBRARIES), default=list(LIBRARIES))
    args = parser.parse_args()

    vectors, queries = clustered_embeddings(args.size, args.dim, args.components, seed=0,
                                            queries=args.queries)
    truth = EmbeddingIndex(vectors, method="exact").search(queries, K)[1]
    small = vectors[: args.determinism_size]
    results = {}
    for name in args.libraries:
        results[name] = measure(LIBRARIES[name], vectors, queries, truth, small)
        print(f"{name}: done", file=sys.stderr, flush=True)

    lines = [
        f"## ANN libraries, {args.size:,} x {args.dim} embeddings in {args.components} clusters, "
        f"{args.queries} queries, k={K}\n",
        f"{command_line()}; faiss {faiss.__version__}, hnswlib {version('hnswlib')}, "
        f"usearch {usearch.__version__}. Build on {THREADS} threads; search one query per call. "
        f"'Same answers': two builds over {len(small):,} rows return identical top-{K} rows.\n",
        "| library | build s | size MB | same answers | knob: recall >= 0.95, p50 / p99 ms "
        "| knob: recall >= 0.99, p50 / p99 ms |",
        "|---|---:|---:|---|---|---|",
    ]
    for name, result in results.items():
        lines.append(f"| {name} | {result['build_s']:.1f} | {result['size_mb']:.0f} "
                     f"| {'yes' if result['deterministic'] else 'no'} "
                     f"| {first_reaching(result['sweep'], 0.95)} | {first_reaching(result['sweep'], 0.99)} |")
    lines += ["\n### The sweeps\n", "| library | knob | value | recall@10 | p50 ms | p99 ms |",
              "|---|---|---:|---:|---:|---:|"]
    for name, result in results.items():
        for value, recall, (p50, p99) in result["sweep"]:
            lines.append(f"| {name} | {LIBRARIES[name].knob} | {value} | {recall:.4f} | {p50:.3f} | {p99:.3f} |")
    report(lines, f"ann_libraries_{args.size}_{args.components}.md")


if __name__ == "__main__":
    main()
