"""Masked-token pretraining batches from a token store, as GROVER built them.

Examples are windows of a split's contigs: half of them full length (`seq_len - 2` tokens, so [CLS] and
[SEP] fit), the rest of a random length in [min_window_tokens, seq_len - 2] [S8]. A fraction `mask_rate`
of the real tokens is chosen (independently per token, as DNABERT / HF's collator do); of those, 80 % become
[MASK], 10 % a random non-special token, 10 % stay (`mask_token_fraction`, `random_token_fraction`).

Everything about example g (the g-th example of the run) is a function of (seed, g) only: which window,
its length, which tokens are masked. So the pipeline needs no state beyond the step number to resume
exactly, and any number of processes can each build just their rows of a global batch and together
produce the very batch a single process would.
"""

from dataclasses import dataclass

import numpy as np

from grover_jax.store import TokenStore
from grover_jax.configuration import ConfigError
from grover_jax.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS

N_SPECIAL = len(SPECIAL_TOKENS)


@dataclass(frozen=True)
class MaskingConfig:
    seq_len: int
    mask_rate: float = 0.022
    mask_token_fraction: float = 0.8
    random_token_fraction: float = 0.1
    min_window_tokens: int = 20
    full_window_fraction: float = 0.5

    @classmethod
    def from_config(cls, data_config) -> "MaskingConfig":
        return cls(
            seq_len=int(data_config.seq_len), mask_rate=float(data_config.mask_rate),
            mask_token_fraction=float(data_config.mask_token_fraction),
            random_token_fraction=float(data_config.random_token_fraction),
            min_window_tokens=int(data_config.min_window_tokens),
            full_window_fraction=float(data_config.full_window_fraction),
        )


def mask_tokens(
    tokens_BxL: np.ndarray, attention_mask_BxL: np.ndarray, rng: np.random.Generator, config: MaskingConfig,
    vocab_size: int,
) -> dict[str, np.ndarray]:
    """BERT/GROVER masking of a batch that already has [CLS]/[SEP]/[PAD]: only real tokens are targets."""
    is_real = (attention_mask_BxL == 1) & (tokens_BxL >= N_SPECIAL)
    chosen = is_real & (rng.random(tokens_BxL.shape) < config.mask_rate)
    action = rng.random(tokens_BxL.shape)
    to_mask = chosen & (action < config.mask_token_fraction)
    to_random = chosen & (action >= config.mask_token_fraction) & (
        action < config.mask_token_fraction + config.random_token_fraction)
    inputs = tokens_BxL.copy()
    inputs[to_mask] = MASK_ID
    inputs[to_random] = rng.integers(N_SPECIAL, vocab_size, size=int(to_random.sum()))
    return {
        "input_ids": inputs.astype(np.int32),
        "attention_mask": attention_mask_BxL.astype(np.int32),
        "mlm_labels": tokens_BxL.astype(np.int32),
        "mlm_weights": chosen.astype(np.float32),
    }


def frame(windows: list[np.ndarray], seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """[CLS] window [SEP] [PAD]...: token ids and attention mask, [B, seq_len]."""
    tokens = np.full((len(windows), seq_len), PAD_ID, np.int32)
    mask = np.zeros((len(windows), seq_len), np.int32)
    for row, window in enumerate(windows):
        n = len(window)
        tokens[row, 0] = CLS_ID
        tokens[row, 1 : n + 1] = window
        tokens[row, n + 1] = SEP_ID
        mask[row, : n + 2] = 1
    return tokens, mask


class MlmBatches:
    """Deterministic masked-token batches over one split of a token store.

    The split is tiled into non-overlapping full-length windows; each epoch visits them in a fresh
    permutation. `batch(step, rows)` builds the given rows of the global batch of `step`.
    """

    def __init__(self, store: TokenStore, split: str, config: MaskingConfig, global_batch_size: int, seed: int):
        self.store, self.split, self.config = store, split, config
        self.global_batch_size, self.seed = global_batch_size, seed
        self.window_tokens = config.seq_len - 2
        self.window_starts = store.window_starts(split, self.window_tokens)
        if len(self.window_starts) == 0:
            raise ConfigError(
                f"{store.path}: split '{split}' has no contig of {self.window_tokens} tokens: "
                "use a shorter data.seq_len or a larger split"
            )
        self._epoch, self._order = -1, None
        self._stream = {"train": 0, "valid": 1, "test": 2}.get(split, 3)

    @property
    def n_windows(self) -> int:
        return len(self.window_starts)

    def _window_order(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._order = np.random.default_rng((self.seed, self._stream, epoch)).permutation(self.n_windows)
            self._epoch = epoch
        return self._order

    def example_window(self, example: int, rng: np.random.Generator) -> np.ndarray:
        epoch, k = divmod(example, self.n_windows)
        start = int(self.window_starts[self._window_order(epoch)[k]])
        length = self.window_tokens
        if rng.random() >= self.config.full_window_fraction:
            length = int(rng.integers(min(self.config.min_window_tokens, length), length + 1))
            start += int(rng.integers(0, self.window_tokens - length + 1))
        return self.store.window(start, length)

    def batch(self, step: int, rows: slice | None = None) -> dict[str, np.ndarray]:
        rows = rows or slice(0, self.global_batch_size)
        windows, masked = [], []
        for row in range(*rows.indices(self.global_batch_size)):
            example = step * self.global_batch_size + row
            rng = np.random.default_rng((self.seed, self._stream, 1 << 20, example))
            windows.append(self.example_window(example, rng))
            masked.append(rng)
        tokens, attention = frame(windows, self.config.seq_len)
        parts = [
            mask_tokens(tokens[i : i + 1], attention[i : i + 1], rng, self.config, self.store.vocab_size)
            for i, rng in enumerate(masked)
        ]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def eval_batches(store: TokenStore, split: str, config: MaskingConfig, batch_size: int, n_batches: int, seed: int):
    """A fixed evaluation set: the split's first full-length windows in order, masked with a fixed
    seed, so every evaluation of every run scores the same targets."""
    full = MaskingConfig(**{**config.__dict__, "full_window_fraction": 1.0})
    starts = store.window_starts(split, config.seq_len - 2)
    n_batches = min(n_batches, len(starts) // batch_size)
    for b in range(n_batches):
        windows = [store.window(int(s), config.seq_len - 2) for s in starts[b * batch_size : (b + 1) * batch_size]]
        tokens, attention = frame(windows, config.seq_len)
        yield mask_tokens(tokens, attention, np.random.default_rng((seed, 7, b)), full, store.vocab_size)
