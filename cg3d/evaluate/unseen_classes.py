"""Zero-shot scores on classes held out of pretraining: unseen, seen, and their harmonic mean.

The splits of zero-shot learning (as in Xian et al., "Zero-Shot Learning: The Good, the Bad and
the Ugly", 2017), given scores of every evaluated object against every class name:

* **unseen**: the objects of the held-out classes, classified among the unseen class names only.
  Every split of them counts, as pretraining saw none. This is the figure that says whether the
  3D encoder learned language it can transfer to shapes it never saw.
* **seen**: the evaluated split's objects of the other classes, classified among the seen names.
* **harmonic mean** of the two top-1 accuracies: high only when both are.
* **generalized**: both groups classified among all names together, where an unseen object must
  also beat every seen class; with its own harmonic mean.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from cg3d.evaluate import metrics


def harmonic_mean(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def _group(scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str], classes: list[int]) -> dict:
    """Scores of the objects of ``classes``, classified among ``classes`` only."""
    rows = np.isin(labels, classes)
    local = {c: i for i, c in enumerate(classes)}
    sub_labels = np.array([local[label] for label in labels[rows]], dtype=np.int64)
    sub_scores = scores[rows][:, classes]
    predicted = np.argmax(sub_scores, axis=1)
    names = [class_names[c] for c in classes]
    return {
        "objects": int(rows.sum()),
        "classes": len(classes),
        "chance": 1.0 / len(classes),
        "top1": metrics.topk_accuracy(sub_scores, sub_labels, ks=(1,))["top1"],
        "class_mean": metrics.class_mean_accuracy(predicted, sub_labels, len(classes)),
        "per_class": metrics.per_class_accuracy(predicted, sub_labels, len(classes), names),
    }


def unseen_and_seen_scores(
    scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str], unseen: Collection[str]
) -> dict:
    """The metrics above. ``scores`` [M, C] rank the objects against all ``class_names``;
    ``labels`` [M] index ``class_names``; objects of ``unseen`` names form the unseen group, the
    rest the seen group. Both groups must be present."""
    unseen_index = [i for i, name in enumerate(class_names) if name in unseen]
    seen_index = [i for i, name in enumerate(class_names) if name not in unseen]
    present = set(labels.tolist())
    for group, index in (("unseen", unseen_index), ("seen", seen_index)):
        if not present & set(index):
            raise ValueError(f"no evaluated object of a {group} class (unseen classes: {sorted(unseen)})")
    unseen_group = _group(scores, labels, class_names, unseen_index)
    seen_group = _group(scores, labels, class_names, seen_index)
    predicted = np.argmax(scores, axis=1)
    is_unseen = np.isin(labels, unseen_index)
    generalized_unseen = float(np.mean(predicted[is_unseen] == labels[is_unseen]))
    generalized_seen = float(np.mean(predicted[~is_unseen] == labels[~is_unseen]))
    return {
        "unseen": unseen_group,
        "seen": seen_group,
        "harmonic_mean": harmonic_mean(unseen_group["top1"], seen_group["top1"]),
        "generalized": {
            "unseen_top1": generalized_unseen,
            "seen_top1": generalized_seen,
            "harmonic_mean": harmonic_mean(generalized_unseen, generalized_seen),
        },
    }
