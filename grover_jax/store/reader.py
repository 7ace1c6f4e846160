"""Read a token store memory-mapped: windows of L tokens by index, and tokens back to genome coordinates."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grover_jax.store.build import STORE_FORMAT
from grover_jax.tokenizer.vocabulary import load_tokenizer


class StoreError(ValueError):
    pass


@dataclass(frozen=True)
class GenomeInterval:
    chromosome: str
    start: int  # 0-based, half-open
    end: int


class TokenStore:
    """A built store. `tokens` and `starts` are read-only memory maps: opening costs nothing and
    many processes share the page cache."""

    def __new__(cls, path: str | Path | None = None):
        # A sharded store's top-level index opens as a ShardedTokenStore (same interface), so every
        # reader (pretraining, evaluation) takes either kind of store unchanged. (No path: unpickling.)
        if cls is TokenStore and path is not None:
            from grover_jax.store.sharded import ShardedTokenStore, is_sharded_store

            if is_sharded_store(path):
                return super().__new__(ShardedTokenStore)
        return super().__new__(cls)

    def __init__(self, path: str | Path):
        self.path = Path(path)
        index_path = self.path / "index.json"
        if not self.path.is_dir():
            raise StoreError(f"{self.path}: no such token store directory")
        if not index_path.exists():
            raise StoreError(f"{self.path}: incomplete token store (no index.json): an interrupted build? rebuild it")
        try:
            self.index = json.loads(index_path.read_text())
        except json.JSONDecodeError as error:
            raise StoreError(f"{index_path}: unreadable ({error})") from None
        if self.index.get("format") != STORE_FORMAT:
            raise StoreError(f"{index_path}: not a grover token store index")
        try:
            self.tokens = np.load(self.path / "tokens.npy", mmap_mode="r")
            self.starts = np.load(self.path / "starts.npy", mmap_mode="r")
        except (OSError, ValueError) as error:
            raise StoreError(f"{self.path}: token arrays unreadable ({error}): rebuild the store") from None
        n = self.index["n_tokens"]
        if self.tokens.shape != (n,) or self.starts.shape != (n,):
            raise StoreError(
                f"{self.path}: index.json says {n:,} tokens but tokens.npy/starts.npy hold "
                f"{self.tokens.shape[0]:,}/{self.starts.shape[0]:,}: rebuild the store"
            )
        self._read_contigs_and_tokenizer()

    def _read_contigs_and_tokenizer(self) -> None:
        """Contig table and the tokenizer the ids refer to (checked against the index's sha256)."""
        self.contigs = self.index["contigs"]
        self._offsets = np.array([c["token_offset"] for c in self.contigs], dtype=np.int64)
        self._ends = np.array([c["end"] for c in self.contigs], dtype=np.int64)
        self.tokenizer = load_tokenizer(self.path / "tokenizer.json")
        if self.tokenizer.sha256 != self.index["tokenizer"]["sha256"]:
            raise StoreError(f"{self.path}: tokenizer.json does not match the sha256 recorded in index.json")
        self.token_lengths = self.tokenizer.token_lengths

    @property
    def vocab_size(self) -> int:
        return int(self.index["vocab_size"])

    @property
    def tokenizer_sha256(self) -> str:
        return self.index["tokenizer"]["sha256"]

    def __len__(self) -> int:
        return int(self.index["n_tokens"])

    def split_contigs(self, split: str) -> list[dict]:
        return [c for c in self.contigs if c["split"] == split]

    def window(self, token_index: int, length: int) -> np.ndarray:
        """Tokens [token_index, token_index + length) as int32 (a copy)."""
        if token_index < 0 or token_index + length > len(self):
            raise IndexError(f"window [{token_index}, {token_index + length}) outside 0..{len(self)}")
        return np.asarray(self.tokens[token_index : token_index + length], dtype=np.int32)

    def contig_of(self, token_index: int) -> int:
        return int(np.searchsorted(self._offsets, token_index, side="right") - 1)

    def token_interval(self, token_index: int) -> GenomeInterval:
        contig = self.contigs[self.contig_of(token_index)]
        start = int(self.starts[token_index])
        return GenomeInterval(contig["chromosome"], start, start + int(self.token_lengths[self.tokens[token_index]]))

    def window_interval(self, token_index: int, length: int) -> GenomeInterval:
        """The genome interval a window covers; the window must lie within one contig."""
        first, last = self.contig_of(token_index), self.contig_of(token_index + length - 1)
        if first != last:
            raise ValueError(f"window [{token_index}, {token_index + length}) spans two contigs")
        start = self.token_interval(token_index)
        return GenomeInterval(start.chromosome, start.start, self.token_interval(token_index + length - 1).end)

    def window_starts(self, split: str, length: int, stride: int | None = None) -> np.ndarray:
        """Token indices of every window of `length` tokens that fits inside one contig of `split`,
        tiled every `stride` tokens (default: non-overlapping)."""
        stride = stride or length
        parts = [
            c["token_offset"] + np.arange(0, c["n_tokens"] - length + 1, stride, dtype=np.int64)
            for c in self.split_contigs(split)
            if c["n_tokens"] >= length
        ]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
