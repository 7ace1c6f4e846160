"""The token store: the genome tokenized once into memory-mapped arrays, split into train/valid/test."""

from grover_jax.store.build import StoreBuildError, build_store
from grover_jax.store.reader import (
    GenomeInterval,
    ShardedTokenStore,
    StoreError,
    TokenStore,
    open_store,
)
from grover_jax.store.sharded import build_sharded_store

__all__ = ["GenomeInterval", "ShardedTokenStore", "StoreBuildError", "StoreError", "TokenStore", "build_sharded_store",
           "build_store", "open_store"]
