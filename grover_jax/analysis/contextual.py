"""Per-token sums of contextual embeddings over sampled windows, at chosen layers: what the token
analyses average (GROVER's "average trained embeddings") and what self-similarity is made of.

Each window of W = max_position_embeddings − 2 store tokens is encoded alone as [CLS] window
[SEP]; an occurrence's vector at layer l is its hidden state there (layer 0: the embeddings'
output, layer i: encoder layer i's output). A token seen more than `max_occurrences` times in the
windows has only `max_occurrences` of its occurrences counted, evenly spaced over all of them in
window order (the first ones would all come from the start of the split).
"""

import numpy as np

from grover_jax.analysis.errors import AnalysisError
from grover_jax.api import GroverModel
from grover_jax.store import TokenStore

MAX_OCCURRENCES = 5000  # GROVER's cap on embeddings per token for self-similarity


def counted_occurrences(windows: list[np.ndarray], vocab_size: int, max_occurrences: int) -> list[np.ndarray]:
    """One boolean mask per window: which of its tokens are counted (all of a token seen at most
    `max_occurrences` times in the windows; otherwise `max_occurrences` evenly spaced ones)."""
    if max_occurrences < 1:
        raise AnalysisError(f"max_occurrences={max_occurrences}: count at least 1 occurrence per token")
    ids = np.concatenate(windows) if windows else np.zeros(0, np.int64)
    keep = np.ones(len(ids), bool)
    order = np.argsort(ids, kind="stable")  # each token's occurrences together, in window order
    counts = np.bincount(ids, minlength=vocab_size)
    first = np.cumsum(counts) - counts
    for token in np.flatnonzero(counts > max_occurrences):
        n = counts[token]
        # Spacing (n−1)/(max−1) > 1, so the rounded positions are distinct.
        chosen = np.zeros(n, bool)
        chosen[np.linspace(0, n - 1, max_occurrences).round().astype(np.int64)] = True
        keep[order[first[token] : first[token] + n]] = chosen
    return np.split(keep, np.cumsum([len(w) for w in windows])[:-1]) if windows else []


def contextual_sums(model: GroverModel, store: TokenStore, window_starts: np.ndarray, layers: tuple[int, ...],
                    max_occurrences: int = MAX_OCCURRENCES, unit: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(counted occurrences [V], float64 sum of their vectors [len(layers), V, D]) over the windows
    of `model.window_tokens` tokens at `window_starts`; `unit` sums each vector scaled to length 1."""
    vocab_size = len(model.tokenizer.id_to_token)
    windows = [store.window(int(s), model.window_tokens) for s in window_starts]
    counted = counted_occurrences(windows, vocab_size, max_occurrences)
    count = np.zeros(vocab_size, np.int64)
    sums = np.zeros((len(layers), vocab_size, model.hidden_size), np.float64)
    for first in range(0, len(windows), model.batch_size):
        batch = windows[first : first + model.batch_size]
        masks = counted[first : first + model.batch_size]
        states = model.layer_states_chunks(batch, layers)
        ids = np.concatenate([w[m] for w, m in zip(batch, masks)])
        if len(ids) == 0:
            continue
        h = np.concatenate([s[:, m] for s, m in zip(states, masks)], axis=1).astype(np.float64)
        if unit:
            h /= np.linalg.norm(h, axis=-1, keepdims=True)
        order = np.argsort(ids, kind="stable")
        tokens, begins = np.unique(ids[order], return_index=True)
        sums[:, tokens] += np.add.reduceat(h[:, order], begins, axis=1)
        count += np.bincount(ids, minlength=vocab_size)
    return count, sums


def self_similarity(count: np.ndarray, unit_sums: np.ndarray) -> np.ndarray:
    """Mean cosine similarity over all ordered pairs of distinct counted occurrences, per layer and
    token ([..., V]; NaN below 2 occurrences). With unit vectors u_i, Σ_{i≠j} u_i·u_j = |Σu_i|² − n,
    so the n(n−1) pairs cost one sum, not a Gram matrix."""
    n = count.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        similarity = ((unit_sums**2).sum(axis=-1) - n) / (n * (n - 1))
    return np.where(count >= 2, similarity, np.nan)
