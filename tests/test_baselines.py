"""The k-mer logistic-regression baseline on the bundled real Prom300: fitted to the optimum of its
objective (checked by an independent Newton solve), its C picked on valid, a stalled fit reported."""

import json

import numpy as np
import pytest
from scipy.special import expit

from configs.finetune import get_config
from grover_jax import bundled
from grover_jax.data.tasks.builders import TaskSpec, prepare_task
from grover_jax.programs import baselines
from grover_jax.programs.baselines import (
    class_probabilities,
    fit_logistic,
    kmer_frequencies,
    kmer_logistic_baseline,
)


@pytest.fixture(scope="module")
def prom300(tmp_path_factory):
    """Prom300 of the bundled chr20 slice (170 train, 76 valid, 54 test sequences), negatives
    shuffled with the shipped model's tokenizer."""
    tokenizer = bundled.MODELS["grover-small-hg19-chr20"] / "tokenizer.json"
    return prepare_task(TaskSpec("prom300", tokenizer=str(tokenizer)), tmp_path_factory.mktemp("tasks"))


@pytest.fixture(scope="module")
def baseline(prom300):
    lines: list[str] = []
    return kmer_logistic_baseline(prom300, get_config(), None, lines.append), lines


def test_kmer_frequencies_count_overlapping_kmers_without_n():
    x = kmer_frequencies(["ACGTA", "ANAC", "A"], 2).toarray()
    expected = np.zeros((3, 16))
    # ACGTA: AC, CG, GT, TA (index 4*first + second, A=0 C=1 G=2 T=3); ANAC: only AC has no N.
    expected[0, [1, 6, 11, 12]] = 0.25
    expected[1, 1] = 1.0
    np.testing.assert_array_equal(x, expected)


def _newton_logistic(x_NxF: np.ndarray, y_N: np.ndarray, c: float) -> np.ndarray:
    """argmin over (w, b) of C * sum(log-loss) + |w|^2 / 2 (scikit-learn's binary objective, the
    intercept unpenalised), by damped Newton steps: [w..., b]."""
    a = np.hstack([x_NxF, np.ones((len(x_NxF), 1))])
    penalty = np.r_[np.ones(x_NxF.shape[1]), 0.0]

    def objective(theta):
        z = a @ theta
        return c * np.sum(np.logaddexp(0, z) - y_N * z) + 0.5 * np.sum(penalty * theta**2)

    theta = np.zeros(a.shape[1])
    for _ in range(100):
        p = expit(a @ theta)
        gradient = c * a.T @ (p - y_N) + penalty * theta
        if np.abs(gradient).max() < 1e-10:
            break
        hessian = c * (a.T * (p * (1 - p))) @ a + np.diag(penalty)
        step, t = np.linalg.solve(hessian, gradient), 1.0
        while objective(theta - t * step) > objective(theta) and t > 1e-8:
            t /= 2
        theta -= t * step
    return theta


def test_the_chosen_fit_is_the_optimum_of_its_objective(prom300, baseline):
    result, _ = baseline
    features = {s: kmer_frequencies(a.sequences, 4).toarray() for s, a in prom300.splits.items()}
    # Centred here, not in the baseline: the unpenalised intercept must absorb the shift exactly.
    mean, std = features["train"].mean(axis=0), features["train"].std(axis=0)
    std[std == 0] = 1.0
    theta = _newton_logistic((features["train"] - mean) / std, prom300.splits["train"].labels, result["C"])
    expected = expit((features["test"] - mean) / std @ theta[:-1] + theta[-1])
    np.testing.assert_allclose(result["test_probabilities"][:, 1], expected, atol=1e-5)


def test_c_is_picked_on_valid_from_fits_that_differ(baseline):
    result, lines = baseline
    grid = result["grid"]
    assert [g["C"] for g in grid] == sorted(get_config().baselines.c_grid)
    assert all(g["converged"] and g["iterations"] < baselines.MAX_ITERATIONS for g in grid)
    # Converged fits at C from 1e-3 to 100 are different models: their valid MCCs differ.
    assert len({round(g["mcc"], 9) for g in grid}) >= 3
    best = max(g["mcc"] for g in grid)
    assert result["C"] == next(g["C"] for g in grid if g["mcc"] == best)  # ties: the smaller C
    assert result["valid"]["mcc"] == best and result["converged"]
    assert len(lines) == len(grid) and all("did not converge" not in line for line in lines)


def test_the_weights_grow_with_c(prom300):
    x = kmer_frequencies(prom300.splits["train"].sequences, 4).toarray()
    norms = [np.linalg.norm(fit_logistic(x, prom300.splits["train"].labels, c, False)[0][-1].coef_)
             for c in (1e-2, 1.0, 100.0)]
    assert norms[0] < norms[1] < norms[2]


def test_the_result_row_keeps_its_shape(prom300, baseline):
    result, _ = baseline
    assert set(result) == {"test_probabilities", "valid", "C", "k", "converged", "grid"}
    probabilities = result["test_probabilities"]
    assert probabilities.shape == (len(prom300.splits["test"].labels), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert set(result["valid"]) == {"accuracy", "f1", "mcc", "auroc", "auprc"}
    json.dumps({key: value for key, value in result.items() if key != "test_probabilities"})  # results.json


def test_a_fit_stopped_short_is_reported(prom300, monkeypatch):
    monkeypatch.setattr(baselines, "MAX_ITERATIONS", 2)
    config = get_config()
    config.baselines.c_grid = (1.0,)
    lines: list[str] = []
    result = kmer_logistic_baseline(prom300, config, None, lines.append)
    assert not result["converged"] and not result["grid"][0]["converged"]
    assert lines[0].endswith("2 L-BFGS iterations (did not converge)")


def test_a_class_missing_from_train_gets_probability_zero():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.repeat([0, 2], 20)
    x[y == 2] += 2.0
    model, _, _ = fit_logistic(x, y, 1.0, False)
    probabilities = class_probabilities(model, x, 3)
    assert probabilities.shape == (40, 3)
    np.testing.assert_array_equal(probabilities[:, 1], 0.0)
    assert (probabilities.argmax(axis=1) == y).mean() > 0.9
