"""Read a token store memory-mapped: windows of L tokens by index, and tokens back to genome coordinates.

`open_store(path)` opens either layout: a single store (build.py) as a TokenStore, a sharded one
(sharded.py) as a ShardedTokenStore, which answers the same interface.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grover_jax.errors import GroverError
from grover_jax.store.build import STORE_FORMAT
from grover_jax.tokenizer.vocabulary import load_tokenizer

SHARDED_FORMAT = "grover-token-store-sharded"
SHARDS = "shards"


class StoreError(GroverError):
    pass


@dataclass(frozen=True)
class GenomeInterval:
    chromosome: str
    start: int  # 0-based, half-open
    end: int


class TokenStore:
    """A built single store (a sharded store's shards are ones; `open_store` opens either layout).
    `tokens` and `starts` are read-only memory maps: opening costs nothing and many processes share
    the page cache."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        index_path = self.path / "index.json"
        if not self.path.is_dir():
            raise StoreError(f"{self.path}: no such token store directory")
        if not index_path.exists():
            raise StoreError(f"{self.path}: incomplete token store (no index.json): an interrupted build? rebuild it")
        self.index = _read_index(index_path, STORE_FORMAT)
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
        self.contigs = _rows(self.index, "contigs", self.path / "index.json", CONTIG_FIELDS)
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


class ShardedArray:
    """`tokens` or `starts` of a sharded store as one read-only 1-D array: integers and slices (any
    positive step) are served from the shards they fall in, each opened on first use."""

    def __init__(self, store: "ShardedTokenStore", field: str, dtype: type):
        self.store, self.field, self.dtype = store, field, np.dtype(dtype)
        self.shape = (len(store),)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        n = len(self)
        if isinstance(key, (int, np.integer)):
            index = int(key) + n if key < 0 else int(key)
            if not 0 <= index < n:
                raise IndexError(f"index {key} outside 0..{n}")
            shard = self.store.shard_of(index)
            return getattr(self.store.shard(shard), self.field)[index - self.store.shard_offsets[shard]]
        if not isinstance(key, slice):
            raise TypeError("a sharded store's arrays take an integer or a slice")
        start, stop, step = key.indices(n)
        if step <= 0:
            raise ValueError("a sharded store's arrays take slices with a positive step")
        pieces = []
        if start < stop:
            for shard in range(self.store.shard_of(start), self.store.shard_of(stop - 1) + 1):
                first_token = int(self.store.shard_offsets[shard])
                end_token = first_token + self.store.shards[shard]["n_tokens"]
                first = start + -(-(max(start, first_token) - start) // step) * step
                if first < min(stop, end_token):
                    array = getattr(self.store.shard(shard), self.field)
                    pieces.append(array[first - first_token : min(stop, end_token) - first_token : step])
        return np.concatenate(pieces) if pieces else np.zeros(0, self.dtype)

    def __array__(self, dtype=None, copy=None):
        array = self[:]
        return array if dtype is None else array.astype(dtype)


class ShardedTokenStore(TokenStore):
    """The TokenStore interface over a sharded store (window, window_starts, window_interval, ...,
    `tokens`/`starts` as ShardedArray). Opening reads only the top-level index; a shard is opened,
    memory-mapped, when a window first falls in it, so each host maps only what it samples."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        index_path = self.path / "index.json"
        if not index_path.exists():
            raise StoreError(f"{self.path}: incomplete sharded store (no index.json): run the build again")
        self.index = _read_index(index_path, SHARDED_FORMAT)
        self.shards = _rows(self.index, "shards", index_path, ("name", "path", "token_offset", "n_tokens"))
        self.shard_offsets = np.array([s["token_offset"] for s in self.shards], dtype=np.int64)
        self._read_contigs_and_tokenizer()
        self._open: dict[int, TokenStore] = {}
        self.tokens = ShardedArray(self, "tokens", np.uint16)
        self.starts = ShardedArray(self, "starts", np.uint32)

    @property
    def open_shards(self) -> list[str]:
        return [self.shards[k]["name"] for k in sorted(self._open)]

    def shard_of(self, token_index: int) -> int:
        return int(np.searchsorted(self.shard_offsets, token_index, side="right") - 1)

    def shard(self, k: int) -> TokenStore:
        if k not in self._open:
            record = self.shards[k]
            shard = TokenStore(self.path / record["path"])
            if len(shard) != record["n_tokens"] or shard.tokenizer_sha256 != self.tokenizer_sha256:
                raise StoreError(f"{shard.path}: does not match {self.path / 'index.json'} (rebuilt since?): "
                                 "run `grover store --sharded` again")
            self._open[k] = shard
        return self._open[k]

    def window(self, token_index: int, length: int) -> np.ndarray:
        if token_index < 0 or token_index + length > len(self):
            raise IndexError(f"window [{token_index}, {token_index + length}) outside 0..{len(self)}")
        k = self.shard_of(token_index)
        local = token_index - int(self.shard_offsets[k])
        if local + length <= self.shards[k]["n_tokens"]:
            return self.shard(k).window(local, length)
        return np.asarray(self.tokens[token_index : token_index + length], dtype=np.int32)


# The fields every reader of an index relies on, with their JSON types: checked when a store opens,
# so a damaged index.json is one line naming the field, not a KeyError deep in training.
_INDEX_FIELDS = {STORE_FORMAT: {"n_tokens": int, "vocab_size": int, "contigs": list, "tokenizer": dict},
                 SHARDED_FORMAT: {"n_tokens": int, "vocab_size": int, "contigs": list, "tokenizer": dict,
                                  "shards": list}}


def _read_index(index_path: Path, store_format: str) -> dict:
    """index.json of a store of `store_format`, refused in one line if it is not JSON, not that
    format, or lacks a field the readers use."""
    try:
        index = json.loads(index_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StoreError(f"{index_path}: unreadable ({error}): rebuild the store") from None
    if not isinstance(index, dict) or index.get("format") != store_format:
        kind = "sharded grover token store" if store_format == SHARDED_FORMAT else "grover token store"
        raise StoreError(f"{index_path}: not a {kind} index")
    for field, kind in _INDEX_FIELDS[store_format].items():
        if field not in index:
            raise StoreError(f"{index_path}: damaged (no field {field!r}): rebuild the store")
        if not isinstance(index[field], kind) or isinstance(index[field], bool):
            raise StoreError(f"{index_path}: damaged (field {field!r} is {str(index[field])[:40]!r}, "
                             f"not {'an object' if kind is dict else 'a list' if kind is list else 'an integer'})"
                             ": rebuild the store")
    if not isinstance(index["tokenizer"].get("sha256"), str):
        raise StoreError(f"{index_path}: damaged (no tokenizer sha256): rebuild the store")
    return index


CONTIG_FIELDS = ("chromosome", "start", "end", "split", "token_offset", "n_tokens")


def _rows(index: dict, table: str, index_path: Path, fields: tuple[str, ...]) -> list[dict]:
    """index[table], each row an object holding `fields` (integers where the name says so)."""
    for number, row in enumerate(index[table]):
        missing = [f for f in fields if not isinstance(row, dict) or f not in row]
        wrong = [f for f in fields if f not in missing and f in ("start", "end", "token_offset", "n_tokens")
                 and (not isinstance(row[f], int) or isinstance(row[f], bool))]
        if missing or wrong:
            raise StoreError(f"{index_path}: damaged ({table}[{number}] "
                             + (f"lacks {', '.join(missing)}" if missing else f"{wrong[0]} is not an integer")
                             + "): rebuild the store")
    return index[table]


def is_sharded_store(path: str | Path) -> bool:
    index_path = Path(path) / "index.json"
    try:
        index = json.loads(index_path.read_text())
        return isinstance(index, dict) and index.get("format") == SHARDED_FORMAT
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return False


def open_store(path: str | Path) -> TokenStore:
    """The token store at `path`, single or sharded."""
    return ShardedTokenStore(path) if is_sharded_store(path) else TokenStore(path)
