"""Clustered, L2-normalised synthetic embeddings, and recall against exact, for the search tests
and benchmarks (bench_search.py, bench_ann_libraries.py).

A Gaussian mixture of uneven weights whose members vary mostly inside a small subspace of their
component (plus a little isotropic noise), normalised onto the sphere: like real embeddings,
neighbours are structured (so ANN recall means something) and lists are uneven (so IVF pays
for its largest lists). Queries come from the same mixture, not from the indexed rows.
"""

from __future__ import annotations

import numpy as np

DEFAULT_COMPONENTS = 1000
SUBSPACE_DIM = 24
SPREAD = 0.8  # within-component latent std relative to the unit-norm centre
NOISE = 0.15  # isotropic noise std (whole vector) relative to the unit-norm centre


def clustered_embeddings(
    count: int, dim: int = 512, components: int = DEFAULT_COMPONENTS, seed: int = 0, queries: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` indexed rows and ``queries`` query rows, float32, unit norm, of one mixture."""
    rng = np.random.default_rng(seed)
    components = min(components, max(count, 1))
    centres = _unit(rng.standard_normal((components, dim), dtype=np.float32))
    bases = rng.standard_normal((components, dim, SUBSPACE_DIM), dtype=np.float32)
    bases *= SPREAD / np.sqrt(dim * SUBSPACE_DIM, dtype=np.float32)
    weights = rng.lognormal(sigma=0.7, size=components)
    weights /= weights.sum()
    return _draw(rng, count, centres, bases, weights), _draw(rng, queries, centres, bases, weights)


def _draw(rng, count, centres, bases, weights) -> np.ndarray:
    """``count`` members of the mixture in random order, built one component at a time."""
    dim = centres.shape[1]
    out = np.empty((count, dim), dtype=np.float32)
    labels = rng.choice(len(centres), size=count, p=weights)
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(len(centres) + 1))
    for component, (start, stop) in enumerate(zip(starts[:-1], starts[1:])):
        latent = rng.standard_normal((stop - start, SUBSPACE_DIM), dtype=np.float32)
        noise = rng.standard_normal((stop - start, dim), dtype=np.float32) * (NOISE / np.sqrt(dim))
        out[order[start:stop]] = _unit(centres[component] + latent @ bases[component].T + noise)
    return out


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each query's true top-k rows (``truth`` [Q, k]) that ``found`` holds."""
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)]))
