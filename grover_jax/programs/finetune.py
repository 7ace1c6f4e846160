"""`grover finetune` and `grover predict`: a classification head on a pretrained encoder.

A separately jitted program (it imports neither pretraining nor next-k-mer): the task's splits
come from the TFDS builders in `data/tasks`, the encoder from `load_pretrained`, and one pure
`train_step(state, batch, rng) -> (state, metrics)` is compiled once per model. Early stopping
watches a valid metric; the best parameters are written (atomically) whenever they improve; the
test split is scored once, with the best parameters, at the end. `--baselines` trains a k-mer
logistic regression and a small CNN on the same splits (`programs/baselines.py`).

Output folder:
    finetune.json        what `grover predict` needs: config, classes, encoder config, lengths
    tokenizer.json       the pretrained run's tokenizer
    best/params.npz      the best classifier parameters (flattened paths → arrays)
    history.jsonl        train loss and valid metrics per evaluation
    results.json / results.md   valid and test metrics with bootstrap intervals, every model
"""

import dataclasses
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training.train_state import TrainState

from grover_jax.configuration import ConfigError
from grover_jax.data.tasks.builders import TaskSpec, check_task_name, prepare_task
from grover_jax.data.tasks.errors import FinetuneError, TaskDataError
from grover_jax.evaluation import METRICS, bootstrap_intervals, classification_metrics
from grover_jax.model import BertConfig, BertForSequenceClassification
from grover_jax.parallel import batch_sharding, make_mesh, replicated, shard_batch
from grover_jax.pretrained import load_pretrained, run_folder
from grover_jax.tokenizer import GenomeTokenizer, load_tokenizer
from grover_jax.train import weight_decay_mask

Batch = dict[str, jax.Array]
DEFAULT_WINDOW = {"promscan": 1000, "ctcf": 300}


# ---------------------------------------------------------------- inputs


def task_overrides(config: ml_collections.ConfigDict, task: str | None, fasta: list[str] | None,
                   annotation: str | None, bed: str | None) -> None:
    """The command line's task arguments written into `config.task`."""
    if bed:
        if not fasta:
            raise FinetuneError("--bed needs --fasta (the genome its intervals are on)")
        config.task.name, config.task.bed = "user", bed
    elif task and (task.lower().endswith((".csv", ".csv.gz")) or Path(task).is_file()):
        config.task.name, config.task.csv = "user", task
    elif task:
        config.task.name = task
    if fasta:
        config.task.fasta = ",".join(fasta)
    if annotation:
        config.task.annotation = annotation
    check_task_name(config.task.name)  # before any checkpoint is read or folder made


def task_spec(task_cfg: ml_collections.ConfigDict, tokenizer_path: Path, seed: int) -> TaskSpec:
    fasta = tuple(p.strip() for p in task_cfg.fasta.split(",") if p.strip())
    window = task_cfg.window or DEFAULT_WINDOW.get(task_cfg.name, 300)
    return TaskSpec(
        task=task_cfg.name, fasta=fasta, annotation=task_cfg.annotation, motif=task_cfg.motif,
        tokenizer=str(tokenizer_path) if task_cfg.name == "prom300" else "",
        window=window, span=task_cfg.span or 10 * window, pvalue=task_cfg.ctcf_pvalue,
        block_size=task_cfg.block_size, seed=seed, csv=task_cfg.csv, bed=task_cfg.bed,
    )


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


def batches(inputs: dict[str, np.ndarray], batch_size: int, order: np.ndarray):
    """Fixed-shape batches in `order`; the last is padded with weight-0 rows."""
    for begin in range(0, len(order), batch_size):
        index = order[begin : begin + batch_size]
        pad = batch_size - len(index)
        batch = {name: np.concatenate([a[index], np.zeros((pad, *a.shape[1:]), a.dtype)])
                 for name, a in inputs.items()}
        batch["weights"] = np.concatenate([np.ones(len(index), np.float32), np.zeros(pad, np.float32)])
        yield batch, len(index)


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


_probabilities = jax.jit(probabilities_step, static_argnames="apply_fn")


def make_optimizer(train_cfg: ml_collections.ConfigDict, total_steps: int, learning_rate: float
                   ) -> optax.GradientTransformation:
    warmup = int(train_cfg.warmup_fraction * total_steps)
    schedule = optax.join_schedules(
        [optax.linear_schedule(0.0, learning_rate, max(warmup, 1)),
         optax.linear_schedule(learning_rate, 0.0, max(total_steps - warmup, 1))], [max(warmup, 1)])
    return optax.chain(optax.clip_by_global_norm(train_cfg.clip_norm),
                       optax.adamw(schedule, weight_decay=train_cfg.weight_decay, mask=weight_decay_mask))


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


def predict_probabilities(apply_fn: ApplyFn, params: Any, inputs: dict[str, np.ndarray], batch_size: int,
                          mesh) -> np.ndarray:
    """[N, K] class probabilities of `inputs` in fixed-shape batches (one compilation per model)."""
    out = []
    for batch, n in batches(inputs, batch_size, np.arange(len(next(iter(inputs.values()))))):
        probabilities = _probabilities(params, shard_batch(batch, mesh), apply_fn=apply_fn)
        out.append(np.asarray(jax.device_get(probabilities))[:n])
    return np.concatenate(out)


def fit(state: TrainState, train: dict[str, np.ndarray], valid: dict[str, np.ndarray], *,
        num_classes: int, batch_size: int, max_epochs: int, eval_every: int, patience: int,
        selection_metric: str, weighted: bool, seed: int, mesh, on_best: Callable[[Any], None] | None = None,
        log: Callable[[str], None] = print) -> FitResult:
    """Train with early stopping on valid `selection_metric`; returns the best parameters."""
    if selection_metric not in METRICS:
        raise ConfigError(f"train.selection_metric={selection_metric!r}: use one of {', '.join(METRICS)}")
    started = time.time()
    weights_K = jnp.asarray(class_weights(train["labels"], num_classes, weighted))
    # Data parallel: the state replicated, batches split over data+fsdp. Fixed shardings in and
    # out, so the step compiles once (a fresh state and a stepped one look the same to jit).
    step_fn = jax.jit(lambda s, b, r: train_step(s, b, r, class_weights_K=weights_K),
                      in_shardings=(replicated(mesh), batch_sharding(mesh), replicated(mesh)),
                      out_shardings=(replicated(mesh), replicated(mesh)), donate_argnums=0)
    state = jax.device_put(state, replicated(mesh))
    rng = jax.random.PRNGKey(seed)
    n_train = len(train["labels"])
    steps_per_epoch = math.ceil(n_train / batch_size)
    eval_every = eval_every or steps_per_epoch
    valid_inputs = {k: v for k, v in valid.items() if k != "labels"}
    best = {"score": -math.inf, "params": None, "step": 0, "metrics": {}}
    history, waited, step = [], 0, 0
    losses = []
    total_steps = steps_per_epoch * max_epochs
    for epoch in range(max_epochs):
        order = np.random.default_rng([seed, epoch]).permutation(n_train)
        for batch, _ in batches(train, batch_size, order):
            state, metrics = step_fn(state, shard_batch(batch, mesh), rng)
            step += 1
            losses.append(metrics["loss"])
            if step % eval_every and step != total_steps:
                continue
            probabilities = predict_probabilities(state.apply_fn, state.params, valid_inputs, batch_size, mesh)
            valid_metrics = classification_metrics(valid["labels"], probabilities)
            score = valid_metrics[selection_metric]
            score = -math.inf if math.isnan(score) else score
            train_loss = float(np.mean(jax.device_get(losses)))
            losses = []
            history.append({"step": step, "epoch": epoch + 1, "train_loss": train_loss,
                            **{f"valid_{k}": v for k, v in valid_metrics.items()}})
            log(f"step {step} epoch {epoch + 1}: train loss {train_loss:.4f}, valid "
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
                break
        if waited >= patience:
            log(f"early stop at step {step}: no better valid {selection_metric} in {patience} evaluations")
            break
    return FitResult(best["params"], best["step"], step, best["metrics"], history, time.time() - started)


# ---------------------------------------------------------------- the encoder classifier


def _bert_apply(model: BertForSequenceClassification) -> ApplyFn:
    def apply(params, batch, deterministic, rngs):
        return model.apply({"params": params}, batch["input_ids"], batch["attention_mask"],
                           deterministic=deterministic, rngs=rngs)

    return apply


def classifier_params(model: BertForSequenceClassification, encoder_params: dict | None, seed: int) -> dict:
    """The classifier's parameters: the pretrained embeddings and encoder layers, and a new head.

    The head (HF's pooler for "cls", and the classifier) is drawn as HF initialises it, N(0, 0.02)
    kernels and embeddings, unit LayerNorm scales, zero biases; the MLM model has no pooler (as
    HF's BertForMaskedLM). `encoder_params=None` draws the encoder the same way: the
    no-pretraining control. Nothing runs the model here: `eval_shape` gives the expected tree, so
    a mismatch is caught without compiling.
    """
    ids_1x1 = jnp.zeros((1, 1), jnp.int32)
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

    params = jax.tree_util.tree_map_with_path(new_leaf, expected)
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


def _flatten(params: Any) -> dict[str, np.ndarray]:
    flat = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        flat["/".join(str(k.key) for k in path)] = np.asarray(leaf)
    return flat


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def save_params(params: Any, path: Path) -> None:
    """npz written to a temporary name and renamed: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as handle:
        np.savez(handle, **_flatten(params))
    os.replace(temporary, path)


def load_params(path: Path) -> dict:
    with np.load(path) as archive:
        return _unflatten({key: archive[key] for key in archive.files})


def _majority(train_labels: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    frequencies = np.bincount(train_labels, minlength=num_classes) / len(train_labels)
    return np.tile(frequencies, (n, 1))


def evaluate(labels: np.ndarray, probabilities: np.ndarray, eval_cfg: ml_collections.ConfigDict,
             seed: int) -> dict[str, Any]:
    return {"metrics": classification_metrics(labels, probabilities),
            "ci": bootstrap_intervals(labels, probabilities, eval_cfg.bootstrap, eval_cfg.ci_level, seed)}


def markdown_table(results: dict) -> str:
    task = results["task"]
    caption = (f"Test split of **{task['name']}** ({task['source']}): {task['test_examples']} examples, "
               f"labels {task['labels']['test']}; {int(results['ci_level'] * 100)} % bootstrap intervals "
               f"({results['bootstrap']} resamples).")
    lines = [caption, "",
             "| model | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for name, entry in results["models"].items():
        cells = []
        for metric in METRICS:
            value, (low, high) = entry["test"]["metrics"][metric], entry["test"]["ci"][metric]
            cells.append("–" if math.isnan(value) else f"{value:.3f} [{low:.3f}, {high:.3f}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def finetune(config: ml_collections.ConfigDict, checkpoint: str | Path, out: str | Path,
             baselines: bool = False, log: Callable[[str], None] = print) -> dict:
    """Fine-tune the encoder of pretraining run `checkpoint` on `config.task`; results in `out`."""
    out = Path(out)
    # The task first: bad data stops the run before any model is read.
    tokenizer_path = run_folder(checkpoint) / "tokenizer.json"
    spec = task_spec(config.task, tokenizer_path, config.seed)
    data = prepare_task(spec, config.task.data_dir)
    pretrained = load_pretrained(checkpoint)
    tokenizer = load_tokenizer(pretrained.tokenizer_path)
    num_classes = len(data.class_names)
    log(f"task {spec.task} ({spec.source}) from {data.data_dir}: labels {data.report['labels']}")

    model_cfg = pretrained.model_config
    max_tokens = min(config.model.max_tokens or model_cfg.max_position_embeddings,
                     model_cfg.max_position_embeddings)
    inputs, truncated = {}, {}
    length = 0
    for split, arrays in data.splits.items():
        ids, mask, truncated[split] = encode(arrays.sequences, tokenizer, max_tokens, length)
        length = length or ids.shape[1]
        if ids.shape[1] < length:  # later splits padded to the train length
            ids, mask = (np.pad(a, ((0, 0), (0, length - a.shape[1]))) for a in (ids, mask))
        inputs[split] = {"input_ids": ids, "attention_mask": mask, "labels": arrays.labels}
    if any(truncated.values()):
        log(f"warning: sequences longer than {length} tokens were truncated: {truncated}")

    mesh = make_mesh(config.mesh)
    batch_size = config.train.batch_size
    steps_per_epoch = math.ceil(len(inputs["train"]["labels"]) / batch_size)
    tx = make_optimizer(config.train, steps_per_epoch * config.train.max_epochs, config.train.learning_rate)
    model = BertForSequenceClassification(model_cfg, num_classes, config.model.pooling,
                                          config.model.classifier_dropout)
    params = classifier_params(model, pretrained.encoder_params if config.model.pretrained else None,
                               config.seed)
    state = TrainState.create(apply_fn=_bert_apply(model), params=params, tx=tx)

    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pretrained.tokenizer_path, out / "tokenizer.json")
    (out / "finetune.json").write_text(json.dumps({
        "config": json.loads(config.to_json_best_effort()),
        "checkpoint": str(pretrained.run_dir), "pretrained_step": pretrained.step,
        "encoder": dataclasses.asdict(model_cfg), "num_classes": num_classes,
        "class_names": data.class_names, "length": length, "task": dataclasses.asdict(spec),
    }, indent=1))
    train_cfg = config.train
    result = fit(state, inputs["train"], inputs["valid"], num_classes=num_classes, batch_size=batch_size,
                 max_epochs=train_cfg.max_epochs, eval_every=train_cfg.eval_every, patience=train_cfg.patience,
                 selection_metric=train_cfg.selection_metric, weighted=train_cfg.class_weighted,
                 seed=config.seed, mesh=mesh, on_best=lambda p: save_params(p, out / "best" / "params.npz"),
                 log=log)
    with open(out / "history.jsonl", "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in result.history)
    test_inputs = {k: v for k, v in inputs["test"].items() if k != "labels"}
    test_labels = inputs["test"]["labels"]
    probabilities = predict_probabilities(state.apply_fn, jax.device_put(result.params, replicated(mesh)),
                                          test_inputs, batch_size, mesh)
    name = f"GROVER-jax ({config.model.pooling} pooling)" if config.model.pretrained else (
        f"same encoder, not pretrained ({config.model.pooling} pooling)")
    models = {
        name: {
            "test": evaluate(test_labels, probabilities, config.eval, config.seed),
            "valid": result.valid, "best_step": result.best_step, "steps": result.steps,
            "seconds": round(result.seconds, 1)},
        "majority class": {"test": evaluate(test_labels, _majority(inputs["train"]["labels"], len(test_labels),
                                                                  num_classes), config.eval, config.seed)},
    }
    if baselines:
        from grover_jax.programs.baselines import cnn_baseline, kmer_logistic_baseline

        for name, run in (("k-mer logistic regression", kmer_logistic_baseline), ("CNN", cnn_baseline)):
            fitted = run(data, config, mesh, log)
            models[name] = {"test": evaluate(test_labels, fitted.pop("test_probabilities"), config.eval,
                                             config.seed), **fitted}
    results = {
        "task": {"name": spec.task, "source": spec.source, "spec": dataclasses.asdict(spec),
                 "labels": data.report["labels"], "dropped": data.report.get("dropped", {}),
                 "construction": data.report.get("construction", ""), "class_names": data.class_names,
                 "test_examples": len(test_labels), "data_dir": str(data.data_dir)},
        "checkpoint": str(pretrained.run_dir), "pretrained_step": pretrained.step,
        "tokens": {"length": length, "truncated": truncated},
        "bootstrap": config.eval.bootstrap, "ci_level": config.eval.ci_level,
        "models": models,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    (out / "results.md").write_text(markdown_table(results))
    log(markdown_table(results))
    return results


# ---------------------------------------------------------------- predict


def load_finetuned(ft_dir: str | Path) -> tuple[dict, GenomeTokenizer, Callable[[Batch], jax.Array]]:
    """(finetune.json, tokenizer, jitted batch → class probabilities) of a `grover finetune` folder."""
    ft_dir = Path(ft_dir)
    for required in ("finetune.json", "tokenizer.json", "best/params.npz"):
        if not (ft_dir / required).exists():
            raise FinetuneError(f"{ft_dir}: not a fine-tuning folder ({required} is missing)")
    meta = json.loads((ft_dir / "finetune.json").read_text())
    model = BertForSequenceClassification(BertConfig(**meta["encoder"]), meta["num_classes"],
                                          meta["config"]["model"]["pooling"])
    params = jax.tree.map(jnp.asarray, load_params(ft_dir / "best" / "params.npz"))
    apply = _bert_apply(model)

    def predict(batch: Batch) -> jax.Array:
        return _probabilities(params, batch, apply_fn=apply)

    return meta, load_tokenizer(ft_dir / "tokenizer.json"), predict


def score_sequences(sequences: list[str], meta: dict, tokenizer: GenomeTokenizer, predict: Callable,
                    batch_size: int = 64) -> np.ndarray:
    """[N, K] class probabilities, sequences encoded as in fine-tuning (at most the encoder's
    positions; a warning counts longer sequences, which are scored on their first tokens)."""
    if not sequences:
        return np.zeros((0, meta["num_classes"]))
    ids, mask, truncated = encode(sequences, tokenizer, meta["encoder"]["max_position_embeddings"])
    if truncated:
        print(f"grover: warning: {truncated} of {len(sequences)} sequences are longer than {ids.shape[1]} "
              "tokens and were scored on their first tokens; use --scan for long sequences", file=sys.stderr)
    out = []
    for batch, n in batches({"input_ids": ids, "attention_mask": mask}, batch_size, np.arange(len(ids))):
        out.append(np.asarray(predict({k: jnp.asarray(v) for k, v in batch.items()}))[:n])
    return np.concatenate(out)


def predict_regions(ft_dir: str | Path, fasta: list[str], bed: str | None, out: str | Path, scan: bool,
                    window: int, stride: int, batch_size: int = 64) -> Path:
    """Scores of FASTA records or BED intervals (TSV), or with `scan` a bedGraph of windows."""
    from grover_jax.data.tasks.regions import read_bed, reverse_complement
    from grover_jax.genome import read_fasta, read_genome

    meta, tokenizer, predict = load_finetuned(ft_dir)
    positive = meta["num_classes"] - 1
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not fasta:
        raise FinetuneError("grover predict needs --fasta (the sequences, or the genome of --bed)")
    # Regions: (name, chromosome, start, end, strand, sequence) — a BED's intervals, or whole records.
    regions = []
    if bed:
        genome = read_genome(fasta)
        for row in read_bed(bed):
            try:
                sequence = genome.bases(row.chromosome, row.start, row.end)
            except KeyError as error:
                raise TaskDataError(bed, f"interval not in the FASTA ({error.args[0]})", row.line, "chrom") from None
            regions.append((row.name or f"{row.chromosome}:{row.start + 1}-{row.end}", row.chromosome,
                            row.start, row.end, row.strand, sequence))
    else:
        for path in fasta:
            for record in read_fasta(path, keep_soft_mask=False):
                regions.append((record.header.split()[0], record.chromosome, record.offset, record.end, "+",
                                record.sequence.tobytes().decode("ascii")))
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    with open(temporary, "w") as handle:
        if not scan:
            sequences = [reverse_complement(r[5]) if r[4] == "-" else r[5] for r in regions]
            probabilities = score_sequences(sequences, meta, tokenizer, predict, batch_size)
            names = meta["class_names"]
            handle.write("\t".join(["name", "chrom", "start", "end", "strand", *[f"p_{n}" for n in names]]) + "\n")
            handle.writelines("\t".join(map(str, region[:5])) + "\t" + "\t".join(f"{x:.6f}" for x in p) + "\n" for region, p in zip(regions, probabilities))
        else:
            if window <= 0 or stride <= 0:
                raise FinetuneError(f"--window {window} / --stride {stride} must be positive")
            handle.write(f'track type=bedGraph name="{Path(ft_dir).name}" '
                         f'description="p({meta["class_names"][positive]}) of {window} bp windows, stride {stride}"\n')
            for _, chromosome, start, end, _, sequence in regions:
                starts = [s for s in range(0, len(sequence) - window + 1, stride)
                          if set(sequence[s : s + window]) <= set("ACGT")]
                scores = score_sequences([sequence[s : s + window] for s in starts], meta, tokenizer, predict,
                                         batch_size)[:, positive] if starts else []
                # Each window's score covers the stride-wide bin around its centre: bins do not overlap.
                for s, score in zip(starts, scores):
                    centre = start + s + window // 2
                    low, high = max(start, centre - stride // 2), min(end, centre - stride // 2 + stride)
                    handle.write(f"{chromosome}\t{low}\t{high}\t{score:.6f}\n")
    os.replace(temporary, out)
    return out
