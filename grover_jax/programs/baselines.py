"""Simpler models on the same splits, so every fine-tuning number stands next to what they get.

k-mer logistic regression: overlapping k-mer frequencies (standardised on train) → multinomial
logistic regression with an L2 penalty picked on valid. It sees counts only, never order: on
Prom300 (token-shuffled negatives) it shows how much of the signal survives without context.
Small CNN (Flax): one-hot bases → two convolutions with ReLU and max-pooling → global max → linear,
trained by the same loop, optimizer and early stopping as the encoder.
"""

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training.train_state import TrainState

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


def kmer_frequencies(sequences: list[str], k: int) -> np.ndarray:
    """[N, 4^k] overlapping k-mer frequencies; k-mers with N are not counted."""
    out = np.zeros((len(sequences), 4**k), np.float32)
    for i, s in enumerate(sequences):
        codes = _CODE[np.frombuffer(s.encode(), np.uint8)].astype(np.int64)
        if len(codes) < k:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(codes, k)
        valid = (windows < 4).all(axis=1)
        index = windows[valid] @ (4 ** np.arange(k - 1, -1, -1))
        counts = np.bincount(index, minlength=4**k)
        out[i] = counts / max(counts.sum(), 1)
    return out


def _fit_logistic(x_NxF: jax.Array, y_N: jax.Array, num_classes: int, l2: float, steps: int = 500) -> Any:
    params = {"w": jnp.zeros((x_NxF.shape[1], num_classes)), "b": jnp.zeros(num_classes)}

    def loss(p):
        logits = x_NxF @ p["w"] + p["b"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y_N).mean() + l2 * jnp.sum(p["w"] ** 2)

    tx = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry, _):
        p, state = carry
        value, grad = value_and_grad(p, state=state)
        updates, state = tx.update(grad, state, p, value=value, grad=grad, value_fn=loss)
        return (optax.apply_updates(p, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return params


def kmer_logistic_baseline(data: TaskData, config: ml_collections.ConfigDict, mesh,
                           log: Callable[[str], None]) -> dict:
    k = config.baselines.kmer_k
    num_classes = len(data.class_names)
    features = {split: kmer_frequencies(arrays.sequences, k) for split, arrays in data.splits.items()}
    mean, std = features["train"].mean(axis=0), features["train"].std(axis=0) + 1e-6
    x = {split: jnp.asarray((f - mean) / std) for split, f in features.items()}
    y = {split: arrays.labels for split, arrays in data.splits.items()}
    fit_jit = jax.jit(_fit_logistic, static_argnums=(2,))
    best = None
    for l2 in config.baselines.l2_grid:
        params = fit_jit(x["train"], jnp.asarray(y["train"]), num_classes, l2)
        valid = classification_metrics(y["valid"], np.asarray(jax.nn.softmax(x["valid"] @ params["w"] + params["b"])))
        log(f"k-mer logistic regression (k={k}, l2={l2}): valid mcc {valid['mcc']:.3f}")
        if best is None or valid[config.train.selection_metric] > best[2][config.train.selection_metric]:
            best = (l2, params, valid)
    l2, params, valid = best
    test = np.asarray(jax.nn.softmax(x["test"] @ params["w"] + params["b"]))
    return {"test_probabilities": test, "valid": valid, "l2": l2, "k": k}


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
    tx = classifier_optimizer(train_cfg, steps, config.baselines.cnn_learning_rate)
    state = TrainState.create(apply_fn=apply, params=params, tx=tx)
    result = fit(state, inputs["train"], inputs["valid"], num_classes=num_classes, batch_size=batch_size,
                 max_epochs=config.baselines.cnn_max_epochs, eval_every=0, patience=train_cfg.patience,
                 selection_metric=train_cfg.selection_metric, weighted=train_cfg.class_weighted,
                 seed=config.seed, mesh=mesh, log=lambda line: log(f"CNN {line}"))
    test = predict_probabilities(apply, result.params, {"codes": inputs["test"]["codes"]}, batch_size, mesh)
    return {"test_probabilities": test, "valid": result.valid, "best_step": result.best_step,
            "steps": result.steps, "seconds": round(result.seconds, 1)}
