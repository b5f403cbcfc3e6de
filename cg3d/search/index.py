"""An index of L2-normalised embeddings with ids, searched by cosine similarity.

Exact search (a torch matmul and top-k) answers a single query over 100k x 512 rows in about
15 ms on 2 cores and over 1M in about 140 ms; past ``EXACT_LIMIT`` rows the index switches to
faiss IVF (cg3d/search/ann.py), about 15x faster at 1M with recall@10 of 0.99 or better against
exact (benchmarks/bench_search.py, BENCHMARKS.md). ``method`` overrides the choice either way.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import faiss
import numpy as np
import torch

from cg3d.search.ann import AnnParams, build_ivf
from cg3d.search.exact import exact_top_k
from cg3d.search.vectors import checked_embeddings

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

    The exact method keeps the vectors (shared, not copied); the ANN method keeps only its faiss
    index, built deterministically for ``ann_params``, or one loaded with ``from_ann``.
    """

    def __init__(
        self,
        vectors,
        ids: Sequence[str] | None = None,
        *,
        method: str = "auto",
        ann_params: AnnParams = AnnParams(),
        source: str = "embeddings",
    ):
        vectors = checked_embeddings(vectors, "embeddings to index", source)
        self.method = resolve_method(method, len(vectors))
        self._exact_vectors = self.ann = None
        if self.method == "exact":
            with warnings.catch_warnings():  # vectors read from Parquet are read-only; never written
                warnings.filterwarnings("ignore", "The given NumPy array is not writable")
                self._exact_vectors = torch.from_numpy(vectors)
        else:
            self.ann = build_ivf(vectors, ann_params)
        self._describe(vectors.shape, ids, source)

    @classmethod
    def from_ann(cls, ann: faiss.IndexIVF, ids: Sequence[str], *, source: str) -> "EmbeddingIndex":
        """An ANN index over a faiss index built earlier (e.g. ``build_ivf``, then saved)."""
        index = cls.__new__(cls)
        index.method, index.ann, index._exact_vectors = "ann", ann, None
        index._describe((ann.ntotal, ann.d), ids, source)
        return index

    def _describe(self, shape: tuple[int, int], ids: Sequence[str] | None, source: str) -> None:
        self.size, self.dim = shape
        self.source = source
        self.ids = [str(row) for row in range(self.size)] if ids is None else list(ids)
        if len(self.ids) != self.size:
            raise ValueError(f"{source}: {len(self.ids)} ids for {self.size} embeddings")

    def search(self, queries, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Scores [Q, k] (cosine, descending) and row numbers [Q, k] for unit queries [Q, D].

        ``k`` is capped at the index size. An ANN query whose probed lists hold fewer than k
        rows is searched again over every list, so every row number is valid.
        """
        queries = checked_embeddings(queries, "the queries", self.source, dim=self.dim)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"{self.source}: k must be a positive integer, got {k!r}")
        k = min(int(k), self.size)
        if self.method == "exact":
            scores, rows = exact_top_k(self._exact_vectors, torch.from_numpy(queries), k)
            return scores.numpy(), rows.numpy()
        scores, rows = self.ann.search(queries, k)
        short = (rows < 0).any(axis=1)
        if short.any():
            every_list = faiss.SearchParametersIVF(nprobe=self.ann.nlist)
            scores[short], rows[short] = self.ann.search(queries[short], k, params=every_list)
        return scores, rows
