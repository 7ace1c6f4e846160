"""Simpler models on the same splits, so every fine-tuning number stands next to what they get.

k-mer logistic regression: overlapping k-mer frequencies (scaled on train) → scikit-learn's
multinomial logistic regression fitted to convergence, its L2 strength 1/C picked on valid. It sees
counts only, never order: on Prom300 (token-shuffled negatives) it shows how much of the signal
survives without context.
Small CNN (Flax): one-hot bases → two convolutions with ReLU and max-pooling → global max → linear,
trained by the same loop, optimizer and early stopping as the encoder.
"""

import warnings
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import scipy.sparse
from flax.training.train_state import TrainState
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from grover_jax.data.tasks.builders import TaskData
from grover_jax.evaluation import classification_metrics
from grover_jax.train.classifier import classifier_optimizer, fit, predict_probabilities

_CODE = np.full(256, 4, np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _CODE[_b] = _i


def base_codes(sequences: list[str], length: int = 0) -> np.ndarray:
    """[N, L] codes 0-3 for A, C, G, T, 4 for N and padding."""
    length = length or max(len(s) for s in sequences)
    codes = np.full((len(sequences), length), 4, np.uint8)
    for i, s in enumerate(sequences):
        row = _CODE[np.frombuffer(s[:length].encode(), np.uint8)]
        codes[i, : len(row)] = row
    return codes


def kmer_frequencies(sequences: list[str], k: int) -> scipy.sparse.csr_matrix:
    """[N, 4^k] overlapping k-mer frequencies, sparse (a 300 bp sequence holds at most 298 of the
    4^k k-mers); k-mers with N are not counted."""
    rows, columns, values = [], [], []
    for i, s in enumerate(sequences):
        codes = _CODE[np.frombuffer(s.encode(), np.uint8)].astype(np.int64)
        if len(codes) < k:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(codes, k)
        index = windows[(windows < 4).all(axis=1)] @ (4 ** np.arange(k - 1, -1, -1))
        kmers, counts = np.unique(index, return_counts=True)
        rows.append(np.full(len(kmers), i))
        columns.append(kmers)
        values.append(counts / max(counts.sum(), 1))
    if not rows:
        return scipy.sparse.csr_matrix((len(sequences), 4**k), dtype=np.float64)
    return scipy.sparse.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))),
                                   shape=(len(sequences), 4**k))


# Generous for L-BFGS on a few hundred scaled features (it needs tens to hundreds of iterations);
# a fit that still stops short is reported, not silently used. scikit-learn's default tolerance
# (1e-4 on the gradient) stops nearly separable fits (many k-mers, few sequences) after a few
# iterations, far from the optimum and with the same valid score for every C.
MAX_ITERATIONS = 10_000
TOLERANCE = 1e-8


def fit_logistic(x_NxF, y_N: np.ndarray, c: float, class_weighted: bool) -> tuple[Pipeline, int, bool]:
    """(features scaled to unit variance on train → multinomial L-BFGS logistic regression with
    L2 strength 1/C, its number of iterations, whether L-BFGS converged). Frequencies are scaled but
    not centred: centring would densify the sparse matrix, and the unpenalised intercept absorbs
    any shift exactly."""
    model = make_pipeline(StandardScaler(with_mean=False),
                          LogisticRegression(C=c, max_iter=MAX_ITERATIONS, tol=TOLERANCE,
                                             class_weight="balanced" if class_weighted else None))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(x_NxF, y_N)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return model, int(model[-1].n_iter_.max()), converged


def class_probabilities(model: Pipeline, x_NxF, num_classes: int) -> np.ndarray:
    """[N, num_classes], 0 for a class the train split lacks (sklearn's columns are its classes_)."""
    probabilities = np.zeros((x_NxF.shape[0], num_classes))
    probabilities[:, model.classes_] = model.predict_proba(x_NxF)
    return probabilities


def kmer_logistic_baseline(data: TaskData, config: ml_collections.ConfigDict, mesh,
                           log: Callable[[str], None]) -> dict:
    k = config.baselines.kmer_k
    num_classes = len(data.class_names)
    metric = config.train.selection_metric
    x = {split: kmer_frequencies(arrays.sequences, k) for split, arrays in data.splits.items()}
    # Sparse products pay only where most entries are zero (k-mers far outnumber a sequence's
    # positions); at k=4 on 300 bp most of the 256 are present, and dense L-BFGS is faster.
    if x["train"].nnz > 0.1 * np.prod(x["train"].shape):
        x = {split: f.toarray() for split, f in x.items()}
    y = {split: arrays.labels for split, arrays in data.splits.items()}
    grid, best = [], None
    # Ascending C (strongest penalty first), so a tie on valid keeps the more regularised model.
    for c in sorted(config.baselines.c_grid):
        model, iterations, converged = fit_logistic(x["train"], y["train"], c, config.train.class_weighted)
        valid = classification_metrics(y["valid"], class_probabilities(model, x["valid"], num_classes))
        log(f"k-mer logistic regression (k={k}, C={c:g}): valid {metric} {valid[metric]:.3f}, "
            f"{iterations} L-BFGS iterations" + ("" if converged else " (did not converge)"))
        grid.append({"C": float(c), metric: float(valid[metric]), "iterations": iterations, "converged": converged})
        if best is None or valid[metric] > best[2][metric]:
            best = (c, model, valid, converged)
    c, model, valid, converged = best
    return {"test_probabilities": class_probabilities(model, x["test"], num_classes), "valid": valid,
            "C": float(c), "k": k, "converged": converged, "grid": grid}


class SequenceCNN(nn.Module):
    num_classes: int
    channels: int = 64
    kernel: int = 9

    @nn.compact
    def __call__(self, codes_BxL: jax.Array, deterministic: bool = True) -> jax.Array:
        # Code 4 (N, padding) is the zero vector.
        x_BxLx4 = jax.nn.one_hot(codes_BxL, 5)[..., :4]
        h = nn.relu(nn.Conv(self.channels, (self.kernel,))(x_BxLx4))
        h = nn.max_pool(h, (4,), strides=(4,))
        h = nn.relu(nn.Conv(self.channels, (self.kernel,))(h))
        h = jnp.max(h, axis=1)
        h = nn.Dropout(0.1)(h, deterministic=deterministic)
        return nn.Dense(self.num_classes)(h).astype(jnp.float32)


def cnn_baseline(data: TaskData, config: ml_collections.ConfigDict, mesh, log: Callable[[str], None]) -> dict:
    num_classes = len(data.class_names)
    length = max(len(s) for arrays in data.splits.values() for s in arrays.sequences)
    inputs = {split: {"codes": base_codes(arrays.sequences, length), "labels": arrays.labels}
              for split, arrays in data.splits.items()}
    model = SequenceCNN(num_classes, config.baselines.cnn_channels, config.baselines.cnn_kernel)
    params = model.init(jax.random.PRNGKey(config.seed), jnp.zeros((1, length), jnp.uint8))["params"]

    def apply(p, batch, deterministic, rngs):
        return model.apply({"params": p}, batch["codes"], deterministic, rngs=rngs)

    train_cfg = config.train
    batch_size = train_cfg.batch_size
    steps = -(-len(inputs["train"]["labels"]) // batch_size) * config.baselines.cnn_max_epochs
    steps = min(steps, train_cfg.max_steps) if train_cfg.max_steps > 0 else steps
    tx = classifier_optimizer(train_cfg, steps, config.baselines.cnn_learning_rate)
    state = TrainState.create(apply_fn=apply, params=params, tx=tx)
    result = fit(state, inputs["train"], inputs["valid"], num_classes=num_classes, batch_size=batch_size,
                 max_epochs=config.baselines.cnn_max_epochs, eval_every=train_cfg.eval_every,
                 patience=train_cfg.patience,
                 selection_metric=train_cfg.selection_metric, weighted=train_cfg.class_weighted,
                 seed=config.seed, mesh=mesh, log=lambda line: log(f"CNN {line}"), max_steps=train_cfg.max_steps)
    test = predict_probabilities(apply, result.params, {"codes": inputs["test"]["codes"]}, batch_size, mesh)
    return {"test_probabilities": test, "valid": result.valid, "best_step": result.best_step,
            "steps": result.steps, "seconds": round(result.seconds, 1)}
