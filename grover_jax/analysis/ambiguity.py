"""Context (lexical) ambiguity: how much a token's contextual embedding varies across its
occurrences (GROVER Fig. 5).

For each token, over its occurrences in evenly spaced non-overlapping windows of a split (each
window encoded as [CLS] window [SEP], W = max_position_embeddings − 2 tokens), with h the last
hidden state at an occurrence and D the hidden size:

    variance           = mean over the D dimensions of the population variance of h
                         = (E|h|² − |E h|²) / D
    relative_variance  = (E|h|² − |E h|²) / E|h|²   (share of the squared norm that context moves)

Tokens with fewer than `min_occurrences` occurrences are left out.
"""

from pathlib import Path

import numpy as np

from grover_jax.analysis.sampling import split_windows
from grover_jax.api import GroverModel
from grover_jax.atomic_files import csv_writer, save_figure
from grover_jax.store import TokenStore


def contextual_moments(model: GroverModel, store: TokenStore, window_starts: np.ndarray,
                       window_tokens: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count [V], sum of h [V, D], sum of |h|² [V]) over every token of the windows, float64."""
    vocab_size = len(store.token_lengths)
    count = np.zeros(vocab_size, np.int64)
    total = np.zeros((vocab_size, model.hidden_size), np.float64)
    squared = np.zeros(vocab_size, np.float64)
    for first in range(0, len(window_starts), model.batch_size):
        chunks = [store.window(int(s), window_tokens) for s in window_starts[first : first + model.batch_size]]
        for ids, hidden in zip(chunks, model.embed_chunks(chunks)):
            hidden = hidden.astype(np.float64)
            np.add.at(count, ids, 1)
            np.add.at(total, ids, hidden)
            np.add.at(squared, ids, (hidden**2).sum(axis=1))
    return count, total, squared


def analyze_ambiguity(model: GroverModel, store: TokenStore, out: Path, split: str = "valid",
                      n_windows: int = 64, min_occurrences: int = 10) -> Path:
    """ambiguity.csv (per token: occurrences, variance, relative_variance, mean_norm) and ambiguity.png."""
    import matplotlib.pyplot as plt

    window_tokens = model.window_tokens
    starts = split_windows(store, split, window_tokens, n_windows)
    count, total, squared = contextual_moments(model, store, starts, window_tokens)
    id_to_token = model.tokenizer.id_to_token
    ids = np.flatnonzero(count >= min_occurrences)
    mean = total[ids] / count[ids, None]
    mean_squared_norm = squared[ids] / count[ids]
    spread = np.maximum(mean_squared_norm - (mean**2).sum(axis=1), 0.0)  # rounding can dip below 0
    variance = spread / model.hidden_size
    relative = spread / mean_squared_norm
    with csv_writer(out / "ambiguity.csv") as writer:
        writer.writerow(["token_id", "token", "length", "occurrences", "variance", "relative_variance", "mean_norm"])
        for row, i in enumerate(ids):
            writer.writerow([i, id_to_token[i], len(id_to_token[i]), count[i], f"{variance[row]:.6g}",
                             f"{relative[row]:.6g}", f"{np.sqrt(mean_squared_norm[row]):.6g}"])

    lengths = np.array([len(id_to_token[i]) for i in ids])
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    points = left.scatter(count[ids], relative, c=lengths, s=12, cmap="viridis")
    figure.colorbar(points, ax=left, label="token length (nt)")
    left.set(xscale="log", xlabel=f"occurrences in {len(starts)} windows of the {split} split (log scale)",
             ylabel="relative variance of the last hidden state", title="How much each token's vector varies with context")
    right.boxplot([relative[lengths == n] for n in np.unique(lengths)], positions=np.unique(lengths))
    right.set(xlabel="token length (nt)", ylabel="relative variance of the last hidden state",
              title="By token length (box: quartiles; whiskers: 1.5 IQR)")
    figure.suptitle(f"Contextual variability of tokens with at least {min_occurrences} occurrences ({len(ids)} tokens)")
    save_figure(figure, out / "ambiguity.png")
    return out / "ambiguity.csv"
