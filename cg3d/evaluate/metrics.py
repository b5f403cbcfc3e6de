"""Evaluation metrics for classification, retrieval and scene queries (numpy, vectorised).

Ties are broken the same way everywhere, so a metric never depends on sort internals: among
equal scores, the item with the lower index ranks first. For accuracy that means a true class
tied with a lower-indexed class ranks behind it; for retrieval and AP it means tied gallery
items (or points) are taken in index order. Tie-averaged variants (as scikit-learn's
``average_precision_score`` computes) can differ from these values when scores tie.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "topk_accuracy",
    "class_mean_accuracy",
    "per_class_accuracy",
    "confusion_matrix",
    "recall_at_k",
    "mean_average_precision",
    "point_average_precision",
    "harmonic_mean",
]


def _scores(array, name: str, ndim: int) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _labels(array, name: str, num_classes: int) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class indices, got dtype {array.dtype}")
    if array.min() < 0 or array.max() >= num_classes:
        raise ValueError(
            f"{name} must lie in [0, {num_classes}), got values in [{array.min()}, {array.max()}]"
        )
    return array.astype(np.int64)


def _relevance(array, name: str, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(array)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape} to match the scores")
    if array.dtype != np.bool_:
        raise ValueError(f"{name} must be boolean, got dtype {array.dtype}")
    return array


def _ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be a non-empty sequence of integers >= 1, got {ks}")
    return ks


def _num_classes(num_classes: int) -> int:
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return int(num_classes)


def _prediction_pair(pred, labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    num_classes = _num_classes(num_classes)
    pred = _labels(pred, "pred", num_classes)
    labels = _labels(labels, "labels", num_classes)
    if pred.shape != labels.shape:
        raise ValueError(f"pred has {pred.shape[0]} entries but labels has {labels.shape[0]}")
    return pred, labels


def topk_accuracy(scores, labels, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Fraction of samples whose true class is among the k best-scored, as {"top1": ..}.

    A k at or above the number of classes scores 1.0, as top-k accuracy is defined.
    """
    scores = _scores(scores, "scores", 2)
    labels = _labels(labels, "labels", scores.shape[1])
    if labels.shape[0] != scores.shape[0]:
        raise ValueError(f"scores has {scores.shape[0]} rows but labels has {labels.shape[0]}")
    ks = _ks(ks)
    true_score = scores[np.arange(len(labels)), labels][:, None]
    class_index = np.arange(scores.shape[1])[None, :]
    ranked_ahead = (scores > true_score) | (
        (scores == true_score) & (class_index < labels[:, None])
    )
    rank = ranked_ahead.sum(axis=1)
    return {f"top{k}": float(np.mean(rank < k)) for k in ks}


def confusion_matrix(pred, labels, num_classes: int) -> np.ndarray:
    """Counts [num_classes, num_classes]: row = true class, column = predicted class."""
    pred, labels = _prediction_pair(pred, labels, num_classes)
    flat = np.bincount(labels * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _per_class_hits(pred, labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    pred, labels = _prediction_pair(pred, labels, num_classes)
    support = np.bincount(labels, minlength=num_classes)
    correct = np.bincount(labels[pred == labels], minlength=num_classes)
    return correct, support


def per_class_accuracy(
    pred, labels, num_classes: int, class_names: Sequence[str] | None = None
) -> dict[int | str, float]:
    """Accuracy of each class present in ``labels``, keyed by index or by name when given."""
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"got {len(class_names)} class names for {num_classes} classes")
    correct, support = _per_class_hits(pred, labels, num_classes)
    present = np.flatnonzero(support)
    keys = present.tolist() if class_names is None else [class_names[i] for i in present]
    return {key: float(correct[i] / support[i]) for key, i in zip(keys, present)}


def class_mean_accuracy(pred, labels, num_classes: int) -> float:
    """Mean of per-class accuracies over the classes present in ``labels``.

    Absent classes are left out rather than counted as 0, so a test split that lacks a class
    does not drag the mean down.
    """
    correct, support = _per_class_hits(pred, labels, num_classes)
    present = support > 0
    return float(np.mean(correct[present] / support[present]))


def _ranked_relevance(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Relevance flags of each row reordered best score first, ties in index order."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(relevant, order, axis=1)


def _average_precisions(ranked: np.ndarray) -> np.ndarray:
    """Non-interpolated AP of each row: mean precision at the rank of every relevant item."""
    hits_so_far = np.cumsum(ranked, axis=1)
    precision = hits_so_far / np.arange(1, ranked.shape[1] + 1)[None, :]
    return (precision * ranked).sum(axis=1) / ranked.sum(axis=1)


def _queries_with_relevant(similarity, relevant) -> tuple[np.ndarray, np.ndarray]:
    similarity = _scores(similarity, "similarity", 2)
    relevant = _relevance(relevant, "relevant", similarity.shape)
    answerable = relevant.any(axis=1)
    if not answerable.any():
        raise ValueError("no query has a relevant gallery item; retrieval metrics are undefined")
    return similarity[answerable], relevant[answerable]


def recall_at_k(similarity, relevant, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Fraction of queries with at least one relevant item in their top k, as {"R@1": ..}.

    Queries without any relevant gallery item are left out (they cannot be answered), the same
    queries that ``mean_average_precision`` leaves out.
    """
    ks = _ks(ks)
    similarity, relevant = _queries_with_relevant(similarity, relevant)
    first_hit = np.argmax(_ranked_relevance(similarity, relevant), axis=1)
    return {f"R@{k}": float(np.mean(first_hit < k)) for k in ks}


def mean_average_precision(similarity, relevant) -> float:
    """Mean over queries (with at least one relevant item) of non-interpolated AP."""
    similarity, relevant = _queries_with_relevant(similarity, relevant)
    return float(np.mean(_average_precisions(_ranked_relevance(similarity, relevant))))


def point_average_precision(scores, truth) -> float:
    """AP of a per-point heat map against the points that truly belong to the queried object."""
    scores = _scores(scores, "scores", 1)
    truth = _relevance(truth, "truth", scores.shape)
    if not truth.any():
        raise ValueError("truth marks no point as relevant; average precision is undefined")
    return float(_average_precisions(_ranked_relevance(scores[None], truth[None]))[0])


def harmonic_mean(a: float, b: float) -> float:
    """2ab / (a + b), the usual way to combine two accuracies; 0 when either is 0."""
    if not (np.isfinite(a) and np.isfinite(b)) or a < 0 or b < 0:
        raise ValueError(f"harmonic_mean needs two finite non-negative values, got {a} and {b}")
    if a == 0 or b == 0:
        return 0.0
    return float(2 * a * b / (a + b))
