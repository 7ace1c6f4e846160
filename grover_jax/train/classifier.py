"""The classifier trainer shared by `grover finetune` (and its baselines), `grover next-kmer` and
the Python API: inputs in fixed-shape batches, one pure `train_step(state, batch, rng) -> (state,
metrics)` on a class-weighted cross-entropy, one loop that evaluates and keeps the best parameters
(with early stopping where asked), padded batch prediction, and the encoder classifier's parameters
(pretrained embeddings and encoder layers under a new head).
"""

import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training.train_state import TrainState

from grover_jax.configuration import ConfigError
from grover_jax.data.tasks.errors import FinetuneError
from grover_jax.evaluation import METRICS, classification_metrics
from grover_jax.model import BertForSequenceClassification
from grover_jax.parallel import batch_sharding, replicated, shard_batch
from grover_jax.tokenizer import GenomeTokenizer
from grover_jax.train.optimizer import weight_decay_mask

Batch = dict[str, jax.Array]


# ---------------------------------------------------------------- inputs


def encode(sequences: list[str], tokenizer: GenomeTokenizer, max_tokens: int,
           length: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """([N, L] token ids with [CLS] … [SEP] and padding, [N, L] mask, number truncated).

    L is `length`, or the longest encoding rounded up to a multiple of 8, at most `max_tokens`.
    A longer sequence keeps its first max_tokens - 1 tokens and its [SEP].
    """
    encoded = [tokenizer.encode(s) for s in sequences]
    longest = max(len(ids) for ids in encoded)
    length = length or min(max_tokens, -(-longest // 8) * 8)
    ids_NxL = np.zeros((len(encoded), length), np.int32)  # [PAD] = 0
    truncated = 0
    for i, ids in enumerate(encoded):
        if len(ids) > length:
            ids = ids[: length - 1] + ids[-1:]
            truncated += 1
        ids_NxL[i, : len(ids)] = ids
    return ids_NxL, (ids_NxL != 0).astype(np.int32), truncated


def _padded_rows(inputs: dict[str, np.ndarray], index: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """Rows `index` of every array, then zero rows up to `batch_size`."""
    pad = batch_size - len(index)
    return {name: np.concatenate([a[index], np.zeros((pad, *a.shape[1:]), a.dtype)]) for name, a in inputs.items()}


def batches(inputs: dict[str, np.ndarray], batch_size: int, order: np.ndarray
            ) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """Fixed-shape batches in `order`; the last is padded with weight-0 rows."""
    for begin in range(0, len(order), batch_size):
        index = order[begin : begin + batch_size]
        batch = _padded_rows(inputs, index, batch_size)
        batch["weights"] = np.concatenate([np.ones(len(index), np.float32),
                                           np.zeros(batch_size - len(index), np.float32)])
        yield batch, len(index)


def epoch_batches(inputs: dict[str, np.ndarray], batch_size: int, max_epochs: int, seed: int
                  ) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """(batch, epoch from 1): every row once per epoch, in a fresh order; the last batch of an
    epoch padded with weight-0 rows."""
    n = len(inputs["labels"])
    for epoch in range(max_epochs):
        order = np.random.default_rng([seed, epoch]).permutation(n)
        for batch, _ in batches(inputs, batch_size, order):
            yield batch, epoch + 1


def step_batches(inputs: dict[str, np.ndarray], batch_size: int, num_steps: int, seed: int
                 ) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """(batch, pass over the rows from 1) for `num_steps` full batches: rows in a random order,
    drawn afresh when fewer than a batch remain (those are skipped)."""
    n = len(inputs["labels"])
    rng = np.random.default_rng(seed)
    order, cursor, passes = rng.permutation(n), 0, 1
    for _ in range(num_steps):
        if cursor + batch_size > n:
            order, cursor, passes = rng.permutation(n), 0, passes + 1
        rows = order[cursor : cursor + batch_size]
        cursor += batch_size
        batch = {name: a[rows] for name, a in inputs.items()}
        batch["weights"] = np.ones(batch_size, np.float32)
        yield batch, passes


# ---------------------------------------------------------------- the pure steps

ApplyFn = Callable[..., jax.Array]  # (params, batch, deterministic, rngs) -> logits [B, K]


def weighted_loss(logits_BxK: jax.Array, batch: Batch, class_weights_K: jax.Array) -> jax.Array:
    """Mean cross-entropy, each example weighted by its class weight (and 0 for padding rows)."""
    nll_B = optax.softmax_cross_entropy_with_integer_labels(logits_BxK, batch["labels"])
    weight_B = batch["weights"] * class_weights_K[batch["labels"]]
    return jnp.sum(nll_B * weight_B) / jnp.maximum(jnp.sum(weight_B), 1e-9)


def train_step(state: TrainState, batch: Batch, rng: jax.Array, *, class_weights_K: jax.Array,
               ) -> tuple[TrainState, dict[str, jax.Array]]:
    step_rng = jax.random.fold_in(rng, state.step)

    def loss_fn(params):
        logits_BxK = state.apply_fn(params, batch, False, {"dropout": step_rng})
        return weighted_loss(logits_BxK, batch, class_weights_K)

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    return state.apply_gradients(grads=grads), {"loss": loss, "grad_norm": optax.tree.norm(grads)}


def probabilities_step(params: Any, batch: Batch, *, apply_fn: ApplyFn) -> jax.Array:
    return jax.nn.softmax(apply_fn(params, batch, True, None), axis=-1)


def classes_step(params: Any, batch: Batch, *, apply_fn: ApplyFn) -> jax.Array:
    return jnp.argmax(apply_fn(params, batch, True, None), axis=-1)


class_probabilities = jax.jit(probabilities_step, static_argnames="apply_fn")
predicted_classes = jax.jit(classes_step, static_argnames="apply_fn")


def classifier_optimizer(train_cfg: ml_collections.ConfigDict, total_steps: int, learning_rate: float
                   ) -> optax.GradientTransformation:
    warmup = int(train_cfg.warmup_fraction * total_steps)
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, learning_rate, max(warmup, 1)),
         optax.linear_schedule(learning_rate, 0.0, max(total_steps - warmup, 1))], [max(warmup, 1)])
    return optax.chain(optax.clip_by_global_norm(train_cfg.clip_norm),
                       optax.adamw(schedule, weight_decay=train_cfg.weight_decay, mask=weight_decay_mask))


def head_only(optimizer: optax.GradientTransformation) -> optax.GradientTransformation:
    """`optimizer` for the head; the pretrained embeddings and encoder layers stay as they are (a
    linear probe of the frozen encoder)."""

    def label(path, _) -> str:
        top, *rest = (k.key for k in path)
        return "frozen" if top == "bert" and rest[0] in ("embeddings", "encoder") else "head"

    return optax.multi_transform({"head": optimizer, "frozen": optax.set_to_zero()},
                                 lambda params: jax.tree_util.tree_map_with_path(label, params))


# ---------------------------------------------------------------- training loop


@dataclasses.dataclass
class FitResult:
    params: Any
    best_step: int
    steps: int
    valid: dict[str, float]
    history: list[dict]
    seconds: float


def class_weights(labels: np.ndarray, num_classes: int, weighted: bool) -> np.ndarray:
    """Inverse class frequency, normalised so a balanced set gets 1.0 per class."""
    if not weighted:
        return np.ones(num_classes, np.float32)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return (len(labels) / (num_classes * np.maximum(counts, 1))).astype(np.float32)


def batch_outputs(fn: Callable[[Batch], jax.Array], inputs: dict[str, np.ndarray], batch_size: int,
                  mesh=None, length: Callable[[int], int] | None = None) -> Iterator[np.ndarray]:
    """`fn(batch)` of `inputs` in fixed-shape batches of `batch_size` rows: each batch's outputs for
    its real rows, in order (the last batch is padded with zero rows, whose outputs are dropped).

    `mesh` splits each batch over data+fsdp; without one it goes to the default device. `length`,
    given, cuts each batch's columns to `length(longest real row)` by its attention mask (few
    shapes, little padding, for inputs of mixed lengths).
    """
    n = len(next(iter(inputs.values())))
    for begin in range(0, n, batch_size):
        index = np.arange(begin, min(begin + batch_size, n))
        batch = _padded_rows(inputs, index, batch_size)
        if length is not None:
            columns = length(int(batch["attention_mask"].sum(axis=1).max()))
            batch = {name: a[:, :columns] for name, a in batch.items()}
        batch = shard_batch(batch, mesh) if mesh is not None else {k: jnp.asarray(v) for k, v in batch.items()}
        yield np.asarray(jax.device_get(fn(batch)))[: len(index)]


def predict_probabilities(apply_fn: ApplyFn, params: Any, inputs: dict[str, np.ndarray], batch_size: int,
                          mesh) -> np.ndarray:
    """[N, K] class probabilities of `inputs` in fixed-shape batches (one compilation per model)."""
    return np.concatenate(list(batch_outputs(
        lambda batch: class_probabilities(params, batch, apply_fn=apply_fn), inputs, batch_size, mesh)))


def predict_classes(apply_fn: ApplyFn, params: Any, inputs: dict[str, np.ndarray], batch_size: int,
                    mesh) -> np.ndarray:
    """[N] most probable class of each row of `inputs` (the argmax of the logits)."""
    return np.concatenate(list(batch_outputs(
        lambda batch: predicted_classes(params, batch, apply_fn=apply_fn), inputs, batch_size, mesh)))


def fit(state: TrainState, train: dict[str, np.ndarray], valid: dict[str, np.ndarray], *,
        num_classes: int, batch_size: int, max_epochs: int, eval_every: int, patience: int,
        selection_metric: str, weighted: bool, seed: int, mesh, on_best: Callable[[Any], None] | None = None,
        log: Callable[[str], None] = print, max_steps: int = 0) -> FitResult:
    """Train for epochs with early stopping on valid `selection_metric` (`evaluation.METRICS`);
    returns the best parameters. `eval_every` 0: once an epoch. `max_steps` > 0 stops after that
    many steps of the epochs (the same optimizer budget whatever the train split's size)."""
    if selection_metric not in METRICS:
        raise ConfigError(f"train.selection_metric={selection_metric!r}: use one of {', '.join(METRICS)}")
    steps_per_epoch = math.ceil(len(train["labels"]) / batch_size)
    valid_inputs = {k: v for k, v in valid.items() if k != "labels"}

    def evaluate(params: Any) -> dict[str, float]:
        probabilities = predict_probabilities(state.apply_fn, params, valid_inputs, batch_size, mesh)
        return classification_metrics(valid["labels"], probabilities)

    total_steps = min(max_steps, steps_per_epoch * max_epochs) if max_steps > 0 else steps_per_epoch * max_epochs
    return train_loop(state, itertools.islice(epoch_batches(train, batch_size, max_epochs, seed), total_steps),
                      total_steps,
                      evaluate, selection_metric=selection_metric, eval_every=eval_every or steps_per_epoch,
                      patience=patience, class_weights_K=class_weights(train["labels"], num_classes, weighted),
                      seed=seed, mesh=mesh, on_best=on_best, log=log)


def train_loop(state: TrainState, train_batches: Iterable[tuple[dict[str, np.ndarray], int]], total_steps: int,
               evaluate: Callable[[Any], dict[str, float]], *, selection_metric: str, eval_every: int,
               patience: float, class_weights_K: np.ndarray, seed: int, mesh,
               on_best: Callable[[Any], None] | None = None, log: Callable[[str], None] = print) -> FitResult:
    """One `train_step` per (batch, epoch) of `train_batches` (`total_steps` of them), `evaluate(params)`
    every `eval_every` steps and at the last; keeps the parameters of the best `selection_metric`
    and stops after `patience` evaluations without a better one (math.inf: never)."""
    started = time.time()
    weights_K = jnp.asarray(class_weights_K)
    # Data parallel: the state replicated, batches split over data+fsdp. Fixed shardings in and
    # out, so the step compiles once (a fresh state and a stepped one look the same to jit).
    step_fn = jax.jit(lambda s, b, r: train_step(s, b, r, class_weights_K=weights_K),
                      in_shardings=(replicated(mesh), batch_sharding(mesh), replicated(mesh)),
                      out_shardings=(replicated(mesh), replicated(mesh)), donate_argnums=0)
    state = jax.device_put(state, replicated(mesh))
    rng = jax.random.PRNGKey(seed)
    best = {"score": -math.inf, "params": None, "step": 0, "metrics": {}}
    history, waited, step = [], 0, 0
    losses = []
    for step, (batch, epoch) in enumerate(train_batches, 1):
        state, metrics = step_fn(state, shard_batch(batch, mesh), rng)
        losses.append(metrics["loss"])
        if step % eval_every and step != total_steps:
            continue
        valid_metrics = evaluate(state.params)
        score = valid_metrics[selection_metric]
        score = -math.inf if math.isnan(score) else score
        train_loss = float(np.mean(jax.device_get(losses)))
        losses = []
        history.append({"step": step, "epoch": epoch, "train_loss": train_loss,
                        **{f"valid_{k}": v for k, v in valid_metrics.items()}})
        log(f"step {step} epoch {epoch}: train loss {train_loss:.4f}, valid "
            + ", ".join(f"{k} {v:.3f}" for k, v in valid_metrics.items()))
        # The first evaluation is always kept, so a run that never improves still has a best.
        if score > best["score"] or best["params"] is None:
            best = {"score": score, "params": jax.device_get(state.params), "step": step,
                    "metrics": valid_metrics}
            waited = 0
            if on_best is not None:
                on_best(best["params"])
        else:
            waited += 1
        if waited >= patience:
            log(f"early stop at step {step}: no better valid {selection_metric} in {patience} evaluations")
            break
    return FitResult(best["params"], best["step"], step, best["metrics"], history, time.time() - started)


# ---------------------------------------------------------------- the encoder classifier


def bert_apply(model: BertForSequenceClassification) -> ApplyFn:
    def apply(params, batch, deterministic, rngs):
        return model.apply({"params": params}, batch["input_ids"], batch["attention_mask"],
                           deterministic=deterministic, rngs=rngs)

    return apply


def classifier_params(model: BertForSequenceClassification, encoder_params: dict | None, seed: int,
                      head_init: Literal["hf", "flax"] = "hf") -> dict:
    """The classifier's parameters: the pretrained embeddings and encoder layers, and a new head.

    head_init "hf": the head (HF's pooler for "cls", and the classifier) is drawn as HF initialises
    it, N(0, 0.02) kernels and embeddings, unit LayerNorm scales, zero biases; the MLM model has no
    pooler (as HF's BertForMaskedLM). `encoder_params=None` draws the encoder the same way: the
    no-pretraining control. Nothing runs the model here: `eval_shape` gives the expected tree, so
    a mismatch is caught without compiling. "flax": the head as the model's own initialisers draw
    it from PRNGKey(seed) (next-k-mer's heads).
    """
    ids_1x1 = jnp.zeros((1, 1), jnp.int32)
    if head_init == "flax":
        params = nn.unbox(model.init(jax.random.PRNGKey(seed), ids_1x1, ids_1x1)["params"])
        return _with_encoder(jax.tree.map(np.asarray, params), encoder_params)
    expected = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), ids_1x1, ids_1x1))["params"]
    expected = jax.tree.map(lambda x: x.value if hasattr(x, "value") else x, expected,
                            is_leaf=lambda x: hasattr(x, "value"))
    rng = np.random.default_rng(seed)
    std = model.cfg.initializer_range

    def new_leaf(path, shape_dtype):
        name = path[-1].key
        # Embedding tables are drawn only for the no-pretraining control: a pretrained encoder
        # replaces them, and skipping the draw keeps its head's initialisation unchanged.
        if name == "kernel" or (name == "embedding" and encoder_params is None):
            return rng.normal(0.0, std, shape_dtype.shape).astype(shape_dtype.dtype)
        if name == "scale":
            return np.ones(shape_dtype.shape, shape_dtype.dtype)
        return np.zeros(shape_dtype.shape, shape_dtype.dtype)

    return _with_encoder(jax.tree_util.tree_map_with_path(new_leaf, expected), encoder_params)


def _with_encoder(params: dict, encoder_params: dict | None) -> dict:
    """`params` with the pretrained embeddings and encoder layers in place of their own."""
    if encoder_params is None:
        return params
    for name in ("embeddings", "encoder"):
        theirs = jax.tree.map(np.asarray, encoder_params[name])
        ours = params["bert"][name]
        same = jax.tree.structure(ours) == jax.tree.structure(theirs) and all(
            a.shape == b.shape for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)))
        if not same:
            raise FinetuneError(f"pretrained {name} parameters do not match the classifier's")
        params["bert"][name] = theirs
    return params
