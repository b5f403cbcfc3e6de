"""The one check every embedding passes before it is indexed, written or used as a query.

Cosine similarity is an inner product only between unit vectors, so a vector that is not
normalised (or holds NaN) would rank silently wrong; it is refused with the source's name.
"""

from __future__ import annotations

import numpy as np
import torch

NORM_TOLERANCE = 1e-3


def checked_embeddings(vectors, what: str, source: str, dim: int | None = None) -> np.ndarray:
    """``vectors`` as a C-contiguous float32 [N, D] array, or a ValueError saying what is wrong."""
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().cpu().numpy()
    array = np.asarray(vectors)
    if array.ndim != 2:
        raise ValueError(f"{source}: {what} must be a 2-D [count, dim] array, got shape {array.shape}")
    if len(array) == 0:
        raise ValueError(f"{source}: no {what} (the array is empty)")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{source}: {what} must be floating point, got {array.dtype}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{source}: {what} have dimension {array.shape[1]}, the index has {dim}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", array, array))  # NaN or inf in a row makes its norm so
    bad = np.abs(norms - 1.0) > NORM_TOLERANCE
    bad |= ~np.isfinite(norms)
    if bad.any():
        row = int(np.argmax(bad))
        if not np.isfinite(array[row]).all():
            raise ValueError(f"{source}: {what}, row {row}, holds NaN or infinity")
        raise ValueError(f"{source}: {what}, row {row}, has norm {norms[row]:.4g}, not 1 "
                         "(cosine search needs L2-normalised vectors)")
    return array
