"""`grover finetune`: a classification head on a pretrained encoder.

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
                         (these three written and read by `grover_jax/runs.py` only)
    history.jsonl        train loss and valid metrics per evaluation
    test_probabilities.npz  every model's test class probabilities and the labels (paired comparisons)
    results.json / results.md   valid and test metrics with bootstrap intervals, every model
"""

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from flax.training.train_state import TrainState

from grover_jax.atomic_files import write_text
from grover_jax.data.tasks.builders import TaskSpec, check_task_name, prepare_task
from grover_jax.data.tasks.errors import FinetuneError
from grover_jax.data.tasks.label_fraction import with_train_fraction
from grover_jax.evaluation import METRICS, bootstrap_intervals, classification_metrics
from grover_jax.model import BertForSequenceClassification
from grover_jax.parallel import make_mesh, replicated
from grover_jax.programs.baselines import cnn_baseline, kmer_logistic_baseline
from grover_jax.runs import (
    RESULTS_FILE,
    load_pretrained,
    run_folder,
    save_best_params,
    save_test_probabilities,
    start_finetuned_folder,
)
from grover_jax.tokenizer import load_tokenizer
from grover_jax.train.classifier import (
    bert_apply,
    classifier_optimizer,
    classifier_params,
    encode,
    fit,
    predict_probabilities,
)

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


# ---------------------------------------------------------------- fine-tuning


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
    # Both inputs before anything is written: the checkpoint, then the task (built in the task
    # cache, not here); `out` is made only once both are usable.
    pretrained = load_pretrained(checkpoint)
    tokenizer = load_tokenizer(pretrained.tokenizer_path)
    spec = task_spec(config.task, pretrained.tokenizer_path, config.task.seed)
    data = with_train_fraction(prepare_task(spec, config.task.data_dir), config.task.train_fraction, config.seed)
    num_classes = len(data.class_names)
    log(f"task {spec.task} ({spec.source}) from {data.data_dir}: labels {data.report['labels']}")
    if "train_fraction" in data.report:
        log(f"training on {config.task.train_fraction:g} of the train labels: {data.report['train_fraction']['labels']}")

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
    total_steps = steps_per_epoch * config.train.max_epochs
    total_steps = min(total_steps, config.train.max_steps) if config.train.max_steps > 0 else total_steps
    tx = classifier_optimizer(config.train, total_steps, config.train.learning_rate)
    model = BertForSequenceClassification(model_cfg, num_classes, config.model.pooling,
                                          config.model.classifier_dropout)
    params = classifier_params(model, pretrained.encoder_params if config.model.pretrained else None,
                               config.seed)
    state = TrainState.create(apply_fn=bert_apply(model), params=params, tx=tx)

    start_finetuned_folder(out, pretrained.tokenizer_path, {
        "config": json.loads(config.to_json_best_effort()),
        "checkpoint": str(pretrained.run_dir), "pretrained_step": pretrained.step,
        "encoder": dataclasses.asdict(model_cfg), "num_classes": num_classes,
        "class_names": data.class_names, "length": length, "task": dataclasses.asdict(spec),
    })
    train_cfg = config.train
    result = fit(state, inputs["train"], inputs["valid"], num_classes=num_classes, batch_size=batch_size,
                 max_epochs=train_cfg.max_epochs, eval_every=train_cfg.eval_every, patience=train_cfg.patience,
                 selection_metric=train_cfg.selection_metric, weighted=train_cfg.class_weighted,
                 seed=config.seed, mesh=mesh, on_best=lambda p: save_best_params(out, p),
                 log=log, max_steps=train_cfg.max_steps)
    with open(out / "history.jsonl", "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in result.history)
    test_inputs = {k: v for k, v in inputs["test"].items() if k != "labels"}
    test_labels = inputs["test"]["labels"]
    probabilities = predict_probabilities(state.apply_fn, jax.device_put(result.params, replicated(mesh)),
                                          test_inputs, batch_size, mesh)
    name = f"GROVER-jax ({config.model.pooling} pooling)" if config.model.pretrained else (
        f"same encoder, not pretrained ({config.model.pooling} pooling)")
    test_probabilities = {name: probabilities}
    models = {
        name: {
            "test": evaluate(test_labels, probabilities, config.eval, config.seed),
            "valid": result.valid, "best_step": result.best_step, "steps": result.steps,
            "seconds": round(result.seconds, 1)},
        "majority class": {"test": evaluate(test_labels, _majority(inputs["train"]["labels"], len(test_labels),
                                                                  num_classes), config.eval, config.seed)},
    }
    if baselines:
        for name, run in (("k-mer logistic regression", kmer_logistic_baseline), ("CNN", cnn_baseline)):
            fitted = run(data, config, mesh, log)
            test_probabilities[name] = fitted.pop("test_probabilities")
            models[name] = {"test": evaluate(test_labels, test_probabilities[name], config.eval, config.seed),
                            **fitted}
    results = {
        "task": {"name": spec.task, "source": spec.source, "spec": dataclasses.asdict(spec),
                 "labels": data.report["labels"], "train_fraction": data.report.get("train_fraction"),
                 "dropped": data.report.get("dropped", {}),
                 "construction": data.report.get("construction", ""), "class_names": data.class_names,
                 "test_examples": len(test_labels), "data_dir": str(data.data_dir)},
        "checkpoint": str(pretrained.run_dir), "pretrained_step": pretrained.step,
        "encoder_sha256": pretrained.encoder_sha256,
        "tokens": {"length": length, "truncated": truncated},
        "bootstrap": config.eval.bootstrap, "ci_level": config.eval.ci_level,
        "models": models,
    }
    save_test_probabilities(out, test_labels, test_probabilities)
    # results.json last and whole: its presence marks a finished run (read_results).
    write_text(out / "results.md", markdown_table(results))
    write_text(out / RESULTS_FILE, json.dumps(results, indent=1))
    log(markdown_table(results))
    return results


def read_results(out: str | Path) -> dict | None:
    """results.json of a fine-tuning run that finished; None where there is none (not run, or
    stopped before the test split was scored)."""
    try:
        return json.loads((Path(out) / RESULTS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def finished_results(config: ml_collections.ConfigDict, checkpoint: str | Path, pretrained_step: int,
                     out: str | Path, baselines: bool, encoder_sha256: str | None = None) -> dict | None:
    """The results in `out` if they came from this very fine-tuning (same config, the same encoder,
    the same baselines); None where it has to be done (again). The encoder is the same when its
    `Pretrained.encoder_sha256` is, wherever it lies; for results without one, when the run folder
    and step are."""
    results = read_results(out)
    try:
        meta = json.loads((Path(out) / "finetune.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if results is None or meta.get("config") != json.loads(config.to_json_best_effort()):
        return None
    if results.get("encoder_sha256") and encoder_sha256:
        same_encoder = results["encoder_sha256"] == encoder_sha256
    else:
        same_encoder = (Path(results.get("checkpoint", "")).resolve() == run_folder(checkpoint).resolve()
                        and results.get("pretrained_step") == pretrained_step)
    has_baselines = "CNN" in results.get("models", {})
    return results if same_encoder and has_baselines == baselines else None
