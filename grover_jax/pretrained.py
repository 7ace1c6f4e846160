"""Transitional name: the pretraining run folder is read by grover_jax/runs.py (`load_pretrained`).
Kept only until scripts/reproduce.py imports it from there; then this file goes."""

from grover_jax.runs import load_pretrained

__all__ = ["load_pretrained"]
