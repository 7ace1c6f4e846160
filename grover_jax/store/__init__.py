"""The token store: the genome tokenized once into memory-mapped arrays, split into train/valid/test."""

from grover_jax.store.build import StoreBuildError, build_store
from grover_jax.store.reader import GenomeInterval, StoreError, TokenStore

__all__ = ["GenomeInterval", "StoreBuildError", "StoreError", "TokenStore", "build_store"]
