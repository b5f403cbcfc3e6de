"""An index of L2-normalised embeddings with ids, searched by cosine similarity.

Exact search (a torch matmul and top-k) answers a single query over 100k x 512 rows in about
25 ms on 2 cores and over 1M in about 200 ms; past ``EXACT_LIMIT`` rows the index switches to
faiss IVF (cg3d/search/ann.py), a few ms at 1M with recall@10 >= 0.99 against exact
(benchmarks/bench_search.py). ``method`` overrides the choice either way.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import faiss
import numpy as np
import torch

from cg3d.search.ann import AnnParams, build_ivf
from cg3d.search.exact import exact_top_k
from cg3d.search.vectors import unit_vectors

EXACT_LIMIT = 200_000
METHODS = ("auto", "exact", "ann")


def resolve_method(method: str, size: int) -> str:
    """``exact`` or ``ann`` for an index of ``size`` rows; ``auto`` switches at EXACT_LIMIT."""
    if method not in METHODS:
        raise ValueError(f"search method must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "auto":
        return "ann" if size > EXACT_LIMIT else "exact"
    return method


class EmbeddingIndex:
    """Unit vectors [N, D] and their ids; ``search`` gives each query's best rows by cosine.

    ``ann`` is a faiss index already built over these very vectors (e.g. loaded from a cache);
    without it one is built when the method is ``ann``, deterministically for ``ann_params``.
    """

    def __init__(
        self,
        vectors,
        ids: Sequence[str] | None = None,
        *,
        method: str = "auto",
        ann_params: AnnParams = AnnParams(),
        ann: faiss.IndexIVF | None = None,
        source: str = "embeddings",
    ):
        self.source = source
        self.vectors = unit_vectors(vectors, "embeddings to index", source)
        self.ids = [str(row) for row in range(len(self.vectors))] if ids is None else list(ids)
        if len(self.ids) != len(self.vectors):
            raise ValueError(f"{source}: {len(self.ids)} ids for {len(self.vectors)} embeddings")
        self.method = resolve_method(method, len(self.vectors))
        with warnings.catch_warnings():  # vectors read from Parquet are read-only; never written
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            self._torch_vectors = torch.from_numpy(self.vectors)
        self.ann = None
        if self.method == "ann":
            self.ann = ann if ann is not None else build_ivf(self.vectors, ann_params)
            self.ann.nprobe = ann_params.probes
            if (self.ann.ntotal, self.ann.d) != self.vectors.shape:
                raise ValueError(f"{source}: the ANN index holds {self.ann.ntotal} x {self.ann.d} "
                                 f"vectors, the embeddings are {self.vectors.shape[0]} x {self.dim}")

    @property
    def size(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def search(self, queries, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Scores [Q, k] (cosine, descending) and row numbers [Q, k] for unit queries [Q, D].

        ``k`` is capped at the index size. An ANN query whose probed lists hold fewer than k
        rows is answered exactly instead, so every row number is valid.
        """
        queries = unit_vectors(queries, "the queries", self.source, dim=self.dim)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{self.source}: k must be a positive integer, got {k!r}")
        k = min(int(k), self.size)
        if self.method == "exact":
            return self._exact(queries, k)
        scores, rows = self.ann.search(queries, k)
        short = (rows < 0).any(axis=1)
        if short.any():
            scores[short], rows[short] = self._exact(queries[short], k)
        return scores, rows

    def _exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = exact_top_k(self._torch_vectors, torch.from_numpy(queries), k)
        return scores.numpy(), rows.numpy()
