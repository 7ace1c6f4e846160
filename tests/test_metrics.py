"""Metrics equal scikit-learn's on fixed predictions; bootstrap intervals are seeded percentiles."""

import numpy as np
import pytest
from sklearn import metrics as sk

from grover_jax.evaluation import bootstrap_intervals, classification_metrics
from grover_jax.evaluation.metrics import auroc


def test_binary_metrics_match_sklearn_with_tied_scores():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    # Scores rounded to 0.1, so many ties: AUROC and AUPRC must treat ties as sklearn does.
    scores = np.round(np.clip(0.3 * labels + rng.random(300) * 0.7, 0, 1), 1)
    probabilities = np.stack([1 - scores, scores], axis=1)
    predictions = probabilities.argmax(axis=1)
    ours = classification_metrics(labels, probabilities)
    assert ours["accuracy"] == pytest.approx(sk.accuracy_score(labels, predictions), abs=1e-12)
    assert ours["f1"] == pytest.approx(sk.f1_score(labels, predictions), abs=1e-12)
    assert ours["mcc"] == pytest.approx(sk.matthews_corrcoef(labels, predictions), abs=1e-12)
    assert ours["auroc"] == pytest.approx(sk.roc_auc_score(labels, scores), abs=1e-12)
    assert ours["auprc"] == pytest.approx(sk.average_precision_score(labels, scores), abs=1e-12)


def test_multiclass_metrics_match_sklearn_macro_one_vs_rest():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 200)
    probabilities = rng.dirichlet([1, 1, 1], 200)
    predictions = probabilities.argmax(axis=1)
    ours = classification_metrics(labels, probabilities)
    assert ours["f1"] == pytest.approx(sk.f1_score(labels, predictions, average="macro"), abs=1e-12)
    assert ours["mcc"] == pytest.approx(sk.matthews_corrcoef(labels, predictions), abs=1e-12)
    assert ours["auroc"] == pytest.approx(sk.roc_auc_score(labels, probabilities, multi_class="ovr"), abs=1e-12)
    assert ours["auprc"] == pytest.approx(
        sk.average_precision_score(np.eye(3)[labels], probabilities, average="macro"), abs=1e-12)


def test_constant_predictions_give_zero_mcc_and_half_auroc():
    labels = np.array([0, 0, 1, 1, 1])
    ours = classification_metrics(labels, np.tile([0.4, 0.6], (5, 1)))
    assert ours["mcc"] == 0.0 and ours["auroc"] == 0.5
    assert np.isnan(auroc(np.zeros(4, bool), np.arange(4.0)))


def test_bootstrap_intervals_are_seeded_and_bracket_the_estimate():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 150)
    scores = np.clip(0.4 * labels + rng.random(150) * 0.6, 0, 1)
    probabilities = np.stack([1 - scores, scores], axis=1)
    first = bootstrap_intervals(labels, probabilities, n_resamples=200, seed=3)
    assert first == bootstrap_intervals(labels, probabilities, n_resamples=200, seed=3)
    point = classification_metrics(labels, probabilities)
    for name, (low, high) in first.items():
        assert low <= point[name] <= high, name


def test_bootstrap_intervals_have_the_asked_level_with_half_the_rest_in_each_tail():
    # Two right and two wrong answers: a resample's accuracy is k/4, k ~ Binomial(4, 1/2), so
    # P = 1/16, 4/16, 6/16, 4/16, 1/16 for 0, 1/4, 1/2, 3/4, 1. A 90 % interval leaves 5 % in each
    # tail: 0 to 1 (a 10 % tail each side would give 1/4 to 3/4); a 50 % interval, 1/4 to 3/4.
    labels = np.array([0, 0, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])  # right, wrong, right, wrong
    assert bootstrap_intervals(labels, probabilities, n_resamples=5000, level=0.9, seed=1)["accuracy"] == (0.0, 1.0)
    assert bootstrap_intervals(labels, probabilities, n_resamples=5000, level=0.5, seed=1)["accuracy"] == (0.25, 0.75)
