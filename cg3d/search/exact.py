"""Exact top-k by inner product in torch: one matmul per block of rows, memory bounded.

The score matrix of Q queries against N rows would be Q x N floats; blocks of queries and of
rows keep each product under ``BLOCK_ELEMENTS`` floats, and a running top-k merges the blocks.
"""

from __future__ import annotations

import torch

BLOCK_ELEMENTS = 1 << 24  # 64 MiB of float32 scores per block
QUERY_BLOCK = 1024


@torch.inference_mode()
def exact_top_k(vectors: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores [Q, k] (descending) and row numbers [Q, k] of each query's k best rows."""
    scores, rows = [], []
    for start in range(0, len(queries), QUERY_BLOCK):
        block_scores, block_rows = _top_k_block(vectors, queries[start:start + QUERY_BLOCK], k)
        scores.append(block_scores)
        rows.append(block_rows)
    return torch.cat(scores), torch.cat(rows)


def _top_k_block(vectors: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k of a few queries over all rows, taking rows in blocks and merging as it goes."""
    row_block = max(k, BLOCK_ELEMENTS // len(queries))
    best_scores = best_rows = None
    for start in range(0, len(vectors), row_block):
        scores = queries @ vectors[start:start + row_block].T
        top_scores, top_rows = scores.topk(min(k, scores.shape[1]), dim=1)
        top_rows += start
        if best_scores is not None:
            top_scores = torch.cat([best_scores, top_scores], dim=1)
            top_rows = torch.cat([best_rows, top_rows], dim=1)
            top_scores, picked = top_scores.topk(k, dim=1)
            top_rows = top_rows.gather(1, picked)
        best_scores, best_rows = top_scores, top_rows
    return best_scores, best_rows
