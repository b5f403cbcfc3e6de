"""The held-out-classes protocol's metrics on a case worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cg3d.evaluate.unseen_classes import harmonic_mean, unseen_and_seen_scores

CLASSES = ["chair", "table", "stool", "desk"]
UNSEEN = {"stool", "desk"}
# Per object: true class, scores against CLASSES; then the prediction among the unseen (or seen)
# names only, and among all names (generalized).
CASE = [
    ("stool", [0.9, 0.1, 0.5, 0.2]),  # unseen: stool (right); all: chair (wrong)
    ("stool", [0.1, 0.2, 0.3, 0.6]),  # unseen: desk (wrong);  all: desk (wrong)
    ("desk", [0.0, 0.7, 0.1, 0.4]),  # unseen: desk (right);   all: table (wrong)
    ("desk", [0.1, 0.1, 0.2, 0.8]),  # unseen: desk (right);   all: desk (right)
    ("desk", [0.5, 0.0, 0.6, 0.1]),  # unseen: stool (wrong);  all: stool (wrong)
    ("chair", [0.6, 0.5, 0.9, 0.0]),  # seen: chair (right);   all: stool (wrong)
    ("table", [0.7, 0.3, 0.0, 0.0]),  # seen: chair (wrong);   all: chair (wrong)
    ("table", [0.2, 0.4, 0.1, 0.1]),  # seen: table (right);   all: table (right)
]


def test_unseen_seen_and_generalized_scores_by_hand():
    labels = np.array([CLASSES.index(name) for name, _ in CASE])
    scores = np.array([row for _, row in CASE])
    scored = unseen_and_seen_scores(scores, labels, CLASSES, UNSEEN)

    unseen, seen = scored["unseen"], scored["seen"]
    assert (unseen["objects"], unseen["classes"], unseen["chance"]) == (5, 2, 0.5)
    assert unseen["top1"] == pytest.approx(3 / 5)
    assert unseen["per_class"] == pytest.approx({"stool": 1 / 2, "desk": 2 / 3})
    assert unseen["class_mean"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert (seen["objects"], seen["classes"], seen["chance"]) == (3, 2, 0.5)
    assert seen["top1"] == pytest.approx(2 / 3)
    assert seen["per_class"] == pytest.approx({"chair": 1.0, "table": 1 / 2})
    assert scored["harmonic_mean"] == pytest.approx(2 * (3 / 5) * (2 / 3) / (3 / 5 + 2 / 3))
    generalized = scored["generalized"]
    assert generalized["unseen_top1"] == pytest.approx(1 / 5)
    assert generalized["seen_top1"] == pytest.approx(1 / 3)
    assert generalized["harmonic_mean"] == pytest.approx(0.25)


def test_harmonic_mean_is_zero_when_either_side_is():
    assert harmonic_mean(0.0, 0.9) == 0.0 and harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(0.5, 0.5) == pytest.approx(0.5)


def test_a_missing_group_is_refused():
    labels = np.array([0, 1])
    scores = np.eye(4)[:2]
    with pytest.raises(ValueError, match="no evaluated object of a unseen class"):
        unseen_and_seen_scores(scores, labels, CLASSES, UNSEEN)
