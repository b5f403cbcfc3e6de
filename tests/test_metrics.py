"""Metrics on hand-computed cases, tie rules, edge cases, and a cross-check against scikit-learn."""

import numpy as np
import pytest
from sklearn import metrics as sklearn_metrics

from cg3d.evaluate.metrics import (
    class_mean_accuracy,
    confusion_matrix,
    harmonic_mean,
    mean_average_precision,
    per_class_accuracy,
    point_average_precision,
    recall_at_k,
    topk_accuracy,
)

# 4 samples x 3 classes. True-class ranks, ties going to the lower class index:
# row 0: label 1 is best -> rank 0
# row 1: label 2 is worst -> rank 2
# row 2: label 0 ties class 1 (0.2) and loses to class 2 -> rank 1 (the tie is won by index 0)
# row 3: label 1 ties class 0 (0.4), which has the lower index -> rank 1
SCORES = np.array(
    [
        [0.1, 0.7, 0.2],
        [0.5, 0.3, 0.2],
        [0.2, 0.2, 0.6],
        [0.4, 0.4, 0.2],
    ]
)
LABELS = np.array([1, 2, 0, 1])


def test_topk_accuracy_hand_computed():
    result = topk_accuracy(SCORES, LABELS, ks=(1, 2, 3))
    assert result == pytest.approx({"top1": 0.25, "top2": 0.75, "top3": 1.0})


def test_topk_accuracy_k_beyond_class_count_is_one():
    assert topk_accuracy(SCORES, LABELS, ks=(5,)) == {"top5": 1.0}


def test_topk_accuracy_ties_go_to_lower_class_index():
    tied = np.array([[0.5, 0.5]])
    assert topk_accuracy(tied, np.array([0]), ks=(1,))["top1"] == 1.0
    assert topk_accuracy(tied, np.array([1]), ks=(1,))["top1"] == 0.0


# true 0 -> predicted 0; true 1 -> 1 and 0; true 2 -> 2 and 1; class 3 never occurs.
PRED = np.array([0, 2, 1, 1, 0])
TRUE = np.array([0, 2, 2, 1, 1])


def test_confusion_matrix_rows_are_true_classes():
    expected = np.array(
        [
            [1, 0, 0, 0],
            [1, 1, 0, 0],
            [0, 1, 1, 0],
            [0, 0, 0, 0],
        ]
    )
    np.testing.assert_array_equal(confusion_matrix(PRED, TRUE, 4), expected)


def test_per_class_accuracy_skips_absent_class():
    assert per_class_accuracy(PRED, TRUE, 4) == pytest.approx({0: 1.0, 1: 0.5, 2: 0.5})
    named = per_class_accuracy(PRED, TRUE, 4, class_names=["bed", "chair", "desk", "sofa"])
    assert named == pytest.approx({"bed": 1.0, "chair": 0.5, "desk": 0.5})


def test_class_mean_accuracy_averages_present_classes_only():
    # (1 + 0.5 + 0.5) / 3; counting absent class 3 as 0 would give 0.5 instead
    assert class_mean_accuracy(PRED, TRUE, 4) == pytest.approx(2 / 3)


# Retrieval: 4 queries x 4 gallery items.
SIMILARITY = np.array(
    [
        [0.9, 0.1, 0.5, 0.3],  # order 0,2,3,1 -> relevant at ranks 2 and 3: AP (1/2 + 2/3) / 2
        [0.2, 0.8, 0.4, 0.6],  # relevant item ranks first: AP 1
        [0.5, 0.5, 0.5, 0.1],  # three-way tie taken in index order: relevant at rank 3, AP 1/3
        [0.3, 0.2, 0.1, 0.0],  # no relevant item: left out of every retrieval metric
    ]
)
RELEVANT = np.array(
    [
        [False, False, True, True],
        [False, True, False, False],
        [False, False, True, False],
        [False, False, False, False],
    ]
)


def test_recall_at_k_hand_computed():
    result = recall_at_k(SIMILARITY, RELEVANT, ks=(1, 2, 3))
    assert result == pytest.approx({"R@1": 1 / 3, "R@2": 2 / 3, "R@3": 1.0})


def test_mean_average_precision_hand_computed():
    expected = (7 / 12 + 1 + 1 / 3) / 3
    assert mean_average_precision(SIMILARITY, RELEVANT) == pytest.approx(expected)


def test_retrieval_without_any_relevant_item_is_refused():
    with pytest.raises(ValueError, match="no query has a relevant"):
        mean_average_precision(SIMILARITY, np.zeros_like(RELEVANT))
    with pytest.raises(ValueError, match="no query has a relevant"):
        recall_at_k(SIMILARITY, np.zeros_like(RELEVANT))


def test_point_average_precision_hand_computed():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    truth = np.array([True, False, True, False, True])
    # precision at each true point: 1/1, 2/3, 3/5
    assert point_average_precision(scores, truth) == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)


def test_point_average_precision_ties_in_index_order():
    tied = np.array([0.5, 0.5])
    assert point_average_precision(tied, np.array([False, True])) == pytest.approx(0.5)
    assert point_average_precision(tied, np.array([True, False])) == pytest.approx(1.0)


def test_point_average_precision_needs_a_true_point():
    with pytest.raises(ValueError, match="no point"):
        point_average_precision(np.array([0.1, 0.2]), np.array([False, False]))


def test_harmonic_mean():
    assert harmonic_mean(0.5, 0.25) == pytest.approx(1 / 3)
    assert harmonic_mean(0.0, 0.7) == 0.0
    assert harmonic_mean(0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="non-negative"):
        harmonic_mean(-0.1, 0.5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: topk_accuracy(SCORES, LABELS[:3]), "rows but labels has"),
        (lambda: topk_accuracy(np.zeros((0, 3)), np.zeros(0, dtype=int)), "empty"),
        (lambda: topk_accuracy(SCORES, np.array([0, 1, 2, 3])), r"must lie in \[0, 3\)"),
        (lambda: topk_accuracy(SCORES, LABELS.astype(float)), "integer class indices"),
        (lambda: topk_accuracy(SCORES, LABELS, ks=(0,)), "ks must be"),
        (lambda: topk_accuracy(np.full((2, 2), np.nan), np.array([0, 1])), "NaN"),
        (lambda: confusion_matrix(PRED, TRUE[:4], 4), "entries but labels has"),
        (lambda: per_class_accuracy(PRED, TRUE, 4, class_names=["a"]), "1 class names"),
        (lambda: recall_at_k(SIMILARITY, RELEVANT[:, :3]), "expected"),
        (lambda: mean_average_precision(SIMILARITY, RELEVANT.astype(int)), "boolean"),
        (lambda: mean_average_precision(np.zeros((0, 0)), np.zeros((0, 0), bool)), "empty"),
        (lambda: point_average_precision(np.ones(3), np.ones(2, bool)), "expected"),
    ],
)
def test_bad_input_is_refused_with_reason(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_agrees_with_scikit_learn_when_scores_do_not_tie():
    rng = np.random.default_rng(0)
    scores = rng.random((200, 7))
    labels = rng.permutation(np.arange(200) % 7)
    pred = scores.argmax(axis=1)

    top3 = sklearn_metrics.top_k_accuracy_score(labels, scores, k=3, labels=np.arange(7))
    assert topk_accuracy(scores, labels, ks=(3,))["top3"] == pytest.approx(top3)
    np.testing.assert_array_equal(
        confusion_matrix(pred, labels, 7), sklearn_metrics.confusion_matrix(labels, pred)
    )
    assert class_mean_accuracy(pred, labels, 7) == pytest.approx(
        sklearn_metrics.balanced_accuracy_score(labels, pred)
    )

    similarity = rng.random((12, 30))
    relevant = rng.random((12, 30)) < 0.2
    relevant[:, 0] = True  # every query answerable
    expected_map = np.mean(
        [sklearn_metrics.average_precision_score(r, s) for r, s in zip(relevant, similarity)]
    )
    assert mean_average_precision(similarity, relevant) == pytest.approx(expected_map)
