"""What pretraining adds downstream: one task fine-tuned from the pretrained encoder and from the
same encoder randomly initialised, with several seeds and fractions of the training labels, beside
k-mer logistic regressions and the CNN on the same splits, scored on the same test examples.

Every arm gets the same budget and the same (absent) search: exactly the same optimizer steps and
evenly spaced valid evaluations, the parameters of the best valid MCC kept (no early stop); the
logistic regressions pick their L2 strength on valid. The examples are drawn once (`task.seed`),
so every seed and arm sees the same splits; a seed sets initialisation, data order and, below 100 %
of the labels, which labels are kept. The baseline beside the model is the one best on valid. The
test split is read once per arm and seed. Intervals are paired: each bootstrap resample of the test
examples scores both arms, every seed, on the same draw (evaluation/bootstrap.paired_metric_bootstrap);
they hold the fine-tuning runs fixed, so they are conditional on these seeds.

Folder layout (every run resumes: a finished arm is read back, not redone):
    <out>/<fraction>/seed<s>/pretrained/       grover finetune folder (test_probabilities.npz)
    <out>/<fraction>/seed<s>/not_pretrained/
    <out>/<fraction>/seed<s>/baselines/test_probabilities.npz, valid.json
    <out>/result.json                          per-arm MCC per seed, paired intervals
"""

import copy
import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path

import ml_collections
import numpy as np

from grover_jax.atomic_files import write_text
from grover_jax.data.tasks.builders import prepare_task
from grover_jax.data.tasks.label_fraction import with_train_fraction
from grover_jax.evaluation.bootstrap import paired_metric_bootstrap
from grover_jax.evaluation.metrics import mcc
from grover_jax.parallel import make_mesh
from grover_jax.programs.baselines import cnn_baseline, kmer_logistic_baseline
from grover_jax.programs.finetune import finetune, finished_results, read_results, task_spec
from grover_jax.runs import (
    load_pretrained,
    load_test_probabilities,
    save_test_probabilities,
)

PRETRAINED, NOT_PRETRAINED = "pretrained", "not pretrained"
KMER_KS = (4, 6)
CNN = "CNN"


def _mcc(labels: np.ndarray, probabilities_NxK: np.ndarray) -> float:
    return mcc(labels, probabilities_NxK.argmax(axis=1), probabilities_NxK.shape[1])


def budget(config: ml_collections.ConfigDict, train_examples: int, steps: int, evaluations: int) -> None:
    """Exactly `steps` optimizer steps and `evaluations` evenly spaced valid evaluations for every
    arm and every label fraction (epochs as many as the steps need), no early stopping (the best
    valid evaluation is kept), written into `config`."""
    if steps % evaluations:
        raise ValueError(f"steps={steps} must be a multiple of evaluations={evaluations}")
    epochs = max(1, math.ceil(steps / math.ceil(train_examples / config.train.batch_size)))
    config.train.max_epochs = config.baselines.cnn_max_epochs = epochs
    config.train.max_steps = steps
    config.train.eval_every = steps // evaluations
    config.train.patience = evaluations + 1


def _baselines(config: ml_collections.ConfigDict, data, out: Path, log: Callable[[str], None]
               ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """(test probabilities, valid MCC) of each baseline; read back when they ran with this config."""
    path = out / "baselines"
    settings = json.loads(config.to_json_best_effort())
    try:  # valid.json is written last: its presence and config mark a finished run
        done = json.loads((path / "valid.json").read_text())
        if done["config"] == settings:
            return load_test_probabilities(path)[1], done["valid_mcc"]
    except (OSError, ValueError, KeyError):
        pass
    fitted = {}
    mesh = make_mesh(config.mesh)
    for k in KMER_KS:
        kmer_config = copy.deepcopy(config)
        kmer_config.baselines.kmer_k = k
        fitted[f"{k}-mer logistic regression"] = kmer_logistic_baseline(data, kmer_config, mesh, log)
    fitted[CNN] = cnn_baseline(data, config, mesh, log)
    path.mkdir(parents=True, exist_ok=True)
    probabilities = {name: f["test_probabilities"] for name, f in fitted.items()}
    valid_mcc = {name: float(f["valid"]["mcc"]) for name, f in fitted.items()}
    save_test_probabilities(path, data.splits["test"].labels, probabilities)
    write_text(path / "valid.json", json.dumps({"config": settings, "valid_mcc": valid_mcc}))
    return probabilities, valid_mcc


def compare(config: ml_collections.ConfigDict, checkpoint: str | Path, out: str | Path, seeds: tuple[int, ...],
            fractions: tuple[float, ...] = (1.0,), steps: int = 300, evaluations: int = 10,
            log: Callable[[str], None] = print) -> dict:
    """Fine-tune `config.task` from `checkpoint` and from scratch for each fraction and seed, with the
    baselines; result.json in `out` (also returned)."""
    out = Path(out)
    pretrained = load_pretrained(checkpoint)
    # One dataset for every seed and arm: the fine-tuning seed never redraws the examples.
    spec = task_spec(config.task, pretrained.tokenizer_path, config.task.seed)
    full = prepare_task(spec, config.task.data_dir)
    spec_json = json.loads(json.dumps(dataclasses.asdict(spec)))  # as results.json holds it
    result = {"task": {"name": spec.task, "source": spec.source, "labels": full.report["labels"],
                       "construction": full.report.get("construction", "")},
              "checkpoint": str(pretrained.run_dir), "pretrained_step": pretrained.step, "seeds": list(seeds),
              "steps": steps, "evaluations": evaluations, "bootstrap": config.eval.bootstrap,
              "ci_level": config.eval.ci_level, "fractions": {}}
    for fraction in fractions:
        by_arm: dict[str, list[np.ndarray]] = {}
        valid: dict[str, list[float]] = {}
        steps_run: dict[str, list[int]] = {}
        labels = full.splits["test"].labels
        train_counts = []
        for seed in seeds:
            data = with_train_fraction(full, fraction, seed)
            train_counts.append(len(data.splits["train"].labels))
            run_config = copy.deepcopy(config)
            run_config.seed = seed
            run_config.task.train_fraction = fraction
            budget(run_config, len(data.splits["train"].labels), steps, evaluations)
            folder = out / f"{fraction:g}" / f"seed{seed}"
            for arm, is_pretrained in ((PRETRAINED, True), (NOT_PRETRAINED, False)):
                arm_config = copy.deepcopy(run_config)
                arm_config.model.pretrained = is_pretrained
                arm_out = folder / arm.replace(" ", "_")
                if finished_results(arm_config, checkpoint, pretrained.step, arm_out, baselines=False,
                                    encoder_sha256=pretrained.encoder_sha256) is None:
                    log(f"{spec.task} fraction {fraction:g} seed {seed}: {arm}")
                    finetune(arm_config, checkpoint, arm_out, baselines=False, log=log)
                test_labels, probabilities = load_test_probabilities(arm_out)
                finished = read_results(arm_out)
                # The same examples as the baselines: the same task spec (draws included) and labels.
                if finished["task"]["spec"] != spec_json or not np.array_equal(test_labels, labels):
                    raise RuntimeError(f"{arm_out}: fine-tuned on other examples than the baselines")
                by_arm.setdefault(arm, []).append(next(iter(probabilities.values())))
                run = next(iter(finished["models"].values()))
                valid.setdefault(arm, []).append(run["valid"]["mcc"])
                steps_run.setdefault(arm, []).append(run["steps"])
            probabilities, valid_mcc = _baselines(run_config, data, folder, log)
            for name, p in probabilities.items():
                by_arm.setdefault(name, []).append(p)
                valid.setdefault(name, []).append(valid_mcc[name])
        arms = {name: np.stack(values) for name, values in by_arm.items()}
        entry = {"train_examples": train_counts, "steps": steps_run,
                 "mcc": {name: [_mcc(labels, p) for p in values] for name, values in arms.items()},
                 "valid_mcc": valid, "paired": {}}
        for other, values in arms.items():
            if other != PRETRAINED:
                entry["paired"][other] = paired_metric_bootstrap(
                    labels, arms[PRETRAINED], values, _mcc, config.eval.bootstrap, config.eval.ci_level)
        result["fractions"][f"{fraction:g}"] = entry
    write_text(out / "result.json", json.dumps(result, indent=1))
    return result


def markdown_rows(name: str, result: dict) -> list[str]:
    """Table rows (task, fraction, train examples, each arm's mean MCC ± sd over seeds, pretrained −
    not pretrained and pretrained − best baseline with intervals)."""
    rows = []
    for fraction, entry in result["fractions"].items():
        scores = {arm: np.array(values) for arm, values in entry["mcc"].items()}
        baselines = [arm for arm in scores if arm not in (PRETRAINED, NOT_PRETRAINED)]
        # The baseline compared with is picked on valid (mean over seeds), never on test.
        best = max(baselines, key=lambda arm: np.mean(entry["valid_mcc"][arm]))
        cells = [f"{scores[arm].mean():.3f} ± {scores[arm].std(ddof=1) if len(scores[arm]) > 1 else 0:.3f}"
                 for arm in (PRETRAINED, NOT_PRETRAINED, *baselines)]

        paired = {arm: f"{p['difference']:+.3f} [{p['low']:+.3f}, {p['high']:+.3f}]"
                  for arm, p in entry["paired"].items()}
        rows.append(f"| {name} | {fraction} | {int(np.mean(entry['train_examples']))} | " + " | ".join(cells)
                    + f" | {paired[NOT_PRETRAINED]} | {best}: {paired[best]} |")
    return rows


def markdown_header(result: dict) -> list[str]:
    arms = list(next(iter(result["fractions"].values()))["mcc"])
    header = (f"| task | label fraction | train examples | {' | '.join(arms)} | pretrained − not pretrained "
              "| pretrained − best baseline |")
    return [header, "|---" * (len(arms) + 5) + "|"]
