"""Evaluation of fine-tuned classifiers: metrics with bootstrap confidence intervals."""

from grover_jax.evaluation.metrics import METRICS, bootstrap_intervals, classification_metrics

__all__ = ["METRICS", "bootstrap_intervals", "classification_metrics"]
