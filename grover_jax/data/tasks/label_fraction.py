"""A fraction of a task's training labels, for label-efficiency curves: the same valid and test
splits, a class-stratified subset of the train split.

Each class keeps round(fraction x its count) examples (at least one), drawn without replacement
with `seed`, so every arm fine-tuned with the same seed sees the same subset, and the class
balance of the full train split is kept.
"""

import dataclasses

import numpy as np

from grover_jax.data.tasks.builders import SplitArrays, TaskData
from grover_jax.data.tasks.errors import TaskDataError


def stratified_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the kept examples."""
    if not 0.0 < fraction <= 1.0:
        raise TaskDataError("task.train_fraction", f"{fraction!r} is not in (0, 1]")
    if fraction == 1.0:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    kept = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        kept.append(rng.choice(members, size=max(1, round(fraction * len(members))), replace=False))
    return np.sort(np.concatenate(kept))


def with_train_fraction(data: TaskData, fraction: float, seed: int) -> TaskData:
    """`data` with its train split cut to a stratified `fraction` (valid and test untouched); the
    report records the kept label counts under 'train_fraction'."""
    if fraction == 1.0:
        return data
    train = data.splits["train"]
    index = stratified_subset(train.labels, fraction, seed)
    subset = SplitArrays(sequences=[train.sequences[i] for i in index], labels=train.labels[index],
                         chromosomes=[train.chromosomes[i] for i in index], starts=train.starts[index],
                         ends=train.ends[index])
    labels, counts = np.unique(subset.labels, return_counts=True)
    report = {**data.report, "train_fraction": {"fraction": fraction, "seed": seed,
                                                "labels": {str(k): int(n) for k, n in zip(labels, counts)}}}
    return dataclasses.replace(data, splits={**data.splits, "train": subset}, report=report)
