"""Approximate search for large indexes: faiss's IVF-Flat on inner product.

k-means splits the rows into ``lists``; a query scans only its ``probes`` nearest lists, exactly.
Chosen over HNSW graphs (faiss's, hnswlib's, usearch's) by benchmarks/bench_ann_libraries.py:
on 100k x 512 on 2 cores it builds in under a second where the graphs take 13-25 s, for a query
time of about a millisecond at recall@10 0.99 (the graphs: a tenth of that, which no one typing
a query notices); its build is deterministic for a seed (hnswlib's and usearch's graphs differ
from build to build); a saved IVF index is memory-mapped in no time, paging in only the lists a
query probes; and faiss is actively maintained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from cg3d.io import atomic_path


@dataclass(frozen=True)
class AnnParams:
    """IVF settings. At 1M x 512 the defaults (1000 lists, 128 probed: 13% of the rows scanned,
    about 20 ms a query on 2 cores) give recall@10 1.00 against exact on 1000 clusters and 0.97
    on 20000 tiny ones, where lists mix many clusters and 16 probes give only 0.80
    (bench_search.py --components)."""

    lists: int | None = None  # None: about sqrt(rows), the usual IVF rule
    probes: int = 128
    train_per_list: int = 40  # k-means sample per list; faiss asks for at least 39
    iterations: int = 20
    seed: int = 1234

    def lists_for(self, size: int) -> int:
        """The number of lists for ``size`` rows, never more than the sample can train."""
        wanted = self.lists or round(math.sqrt(size))
        return max(1, min(wanted, size // self.train_per_list))


def build_ivf(vectors: np.ndarray, params: AnnParams) -> faiss.IndexIVFFlat:
    """Train the lists on a seeded sample of ``vectors`` (float32, unit rows), then add all rows."""
    dim = vectors.shape[1]
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, params.lists_for(len(vectors)),
                               faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = params.seed
    index.cp.niter = params.iterations
    index.cp.max_points_per_centroid = params.train_per_list
    index.cp.min_points_per_centroid = 1  # lists_for already keeps the sample large enough
    index.train(vectors)
    index.add(vectors)
    index.nprobe = params.probes
    return index


def save_ivf(index: faiss.Index, path: Path) -> None:
    """Write ``index`` atomically, so a reader never loads half of it."""
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))


def load_ivf(path: Path, params: AnnParams) -> faiss.IndexIVF:
    """Memory-map an index written by ``save_ivf``, searching ``params.probes`` lists."""
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP)
    if not isinstance(index, faiss.IndexIVF):
        raise ValueError(f"{path}: not an IVF index (found {type(index).__name__})")
    index.nprobe = params.probes
    return index
