"""What pretraining adds downstream: one task fine-tuned from the pretrained encoder and from the
same encoder randomly initialised, with several seeds and fractions of the training labels, beside
k-mer logistic regressions and the CNN on the same splits, scored on the same test examples.

Every arm gets the same budget and the same (absent) search: the same optimizer steps, the same
valid evaluations, early stopping on the same valid metric; the logistic regressions pick their L2
strength on valid. The test split is read once per arm and seed. Intervals are paired: each
bootstrap resample of the test examples scores both arms, every seed, on the same draw
(evaluation/bootstrap.paired_metric_bootstrap).

Folder layout (every run resumes: a finished arm is read back, not redone):
    <out>/<fraction>/seed<s>/pretrained/       grover finetune folder (test_probabilities.npz)
    <out>/<fraction>/seed<s>/not_pretrained/
    <out>/<fraction>/seed<s>/baselines/test_probabilities.npz
    <out>/result.json                          per-arm MCC per seed, paired intervals
"""

import copy
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
from grover_jax.evaluation.metrics import classification_metrics
from grover_jax.parallel import make_mesh
from grover_jax.programs.baselines import cnn_baseline, kmer_logistic_baseline
from grover_jax.programs.finetune import finetune, finished_results, task_spec
from grover_jax.runs import (
    TEST_PROBABILITIES,
    load_pretrained,
    load_test_probabilities,
    save_test_probabilities,
)

PRETRAINED, NOT_PRETRAINED = "pretrained", "not pretrained"
KMER_KS = (4, 6)
CNN = "CNN"


def _mcc(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return classification_metrics(labels, probabilities)["mcc"]


def budget(config: ml_collections.ConfigDict, train_examples: int, steps: int, evaluations: int) -> None:
    """The same optimizer steps and valid evaluations for every arm and every label fraction
    (at least `steps` steps, whole epochs), written into `config`."""
    steps_per_epoch = math.ceil(train_examples / config.train.batch_size)
    epochs = max(1, math.ceil(steps / steps_per_epoch))
    config.train.max_epochs = epochs
    config.baselines.cnn_max_epochs = epochs
    config.train.eval_every = max(1, (epochs * steps_per_epoch) // evaluations)


def _baselines(config: ml_collections.ConfigDict, data, out: Path, log: Callable[[str], None]) -> dict:
    path = out / "baselines"
    if (path / TEST_PROBABILITIES).exists():  # written whole, last: the baselines finished
        return load_test_probabilities(path)[1]
    probabilities = {}
    mesh = make_mesh(config.mesh)
    for k in KMER_KS:
        kmer_config = copy.deepcopy(config)
        kmer_config.baselines.kmer_k = k
        probabilities[f"{k}-mer logistic regression"] = kmer_logistic_baseline(data, kmer_config, mesh, log)[
            "test_probabilities"]
    probabilities[CNN] = cnn_baseline(data, config, mesh, log)["test_probabilities"]
    path.mkdir(parents=True, exist_ok=True)
    save_test_probabilities(path, data.splits["test"].labels, probabilities)
    return probabilities


def compare(config: ml_collections.ConfigDict, checkpoint: str | Path, out: str | Path, seeds: tuple[int, ...],
            fractions: tuple[float, ...] = (1.0,), steps: int = 300, evaluations: int = 10,
            log: Callable[[str], None] = print) -> dict:
    """Fine-tune `config.task` from `checkpoint` and from scratch for each fraction and seed, with the
    baselines; result.json in `out` (also returned)."""
    out = Path(out)
    pretrained = load_pretrained(checkpoint)
    spec = task_spec(config.task, pretrained.tokenizer_path, config.seed)
    full = prepare_task(spec, config.task.data_dir)
    result = {"task": {"name": spec.task, "source": spec.source, "labels": full.report["labels"],
                       "construction": full.report.get("construction", "")},
              "checkpoint": str(pretrained.run_dir), "pretrained_step": pretrained.step, "seeds": list(seeds),
              "steps": steps, "evaluations": evaluations, "bootstrap": config.eval.bootstrap,
              "ci_level": config.eval.ci_level, "fractions": {}}
    for fraction in fractions:
        by_arm: dict[str, list[np.ndarray]] = {}
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
                if finished_results(arm_config, checkpoint, pretrained.step, arm_out, baselines=False) is None:
                    log(f"{spec.task} fraction {fraction:g} seed {seed}: {arm}")
                    finetune(arm_config, checkpoint, arm_out, baselines=False, log=log)
                _, probabilities = load_test_probabilities(arm_out)
                by_arm.setdefault(arm, []).append(next(iter(probabilities.values())))
            for name, probabilities in _baselines(run_config, data, folder, log).items():
                by_arm.setdefault(name, []).append(probabilities)
        arms = {name: np.stack(values) for name, values in by_arm.items()}
        entry = {"train_examples": train_counts,
                 "mcc": {name: [_mcc(labels, p) for p in values] for name, values in arms.items()},
                 "paired": {}}
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
        mcc = {arm: np.array(values) for arm, values in entry["mcc"].items()}
        baselines = [arm for arm in mcc if arm not in (PRETRAINED, NOT_PRETRAINED)]
        best = max(baselines, key=lambda arm: mcc[arm].mean())
        cells = [f"{mcc[arm].mean():.3f} ± {mcc[arm].std(ddof=1) if len(mcc[arm]) > 1 else 0:.3f}"
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
