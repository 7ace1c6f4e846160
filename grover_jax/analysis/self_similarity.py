"""Self-similarity per layer (GROVER, after Ethayarajh 2019): how alike a token's vectors
are across the contexts it occurs in, at the embeddings' output (layer 0) and after each encoder
layer.

For a token with n ≥ 2 counted occurrences (at most `max_occurrences`, default 5,000 as the
paper, evenly spaced over its occurrences in evenly spaced windows of a split:
analysis/contextual.py) and h_i its hidden state at occurrence i at layer l,

    self_similarity = mean over ordered pairs i ≠ j of cos(h_i, h_j)
                    = (|Σ u_i|² − n) / (n (n − 1)),   u_i = h_i / |h_i|

1 when context does not move the vector's direction; it falls across layers as the model mixes
context into each token.
"""

from pathlib import Path

import numpy as np

from grover_jax.analysis.contextual import MAX_OCCURRENCES, contextual_sums, self_similarity
from grover_jax.analysis.errors import AnalysisError
from grover_jax.analysis.sampling import split_windows
from grover_jax.api import GroverModel
from grover_jax.atomic_files import csv_writer, save_figure
from grover_jax.store import TokenStore
from grover_jax.tokenizer import SPECIAL_TOKENS


def analyze_self_similarity(model: GroverModel, store: TokenStore, out: Path, split: str = "valid",
                            n_windows: int = 64, max_occurrences: int = MAX_OCCURRENCES) -> Path:
    """self_similarity.csv (token_id, token, count, layer, self_similarity: one row per token with
    ≥ 2 counted occurrences and layer 0..num_layers) and self_similarity.png (median and quartiles
    over those tokens, per layer)."""
    import matplotlib.pyplot as plt

    starts = split_windows(store, split, model.window_tokens, n_windows)
    layers = tuple(range(model.num_layers + 1))
    count, unit_sums = contextual_sums(model, store, starts, layers, max_occurrences, unit=True)
    similarity = self_similarity(count, unit_sums)
    id_to_token = model.tokenizer.id_to_token
    ids = [i for i in np.flatnonzero(count >= 2) if id_to_token[i] not in SPECIAL_TOKENS]
    if not ids:
        raise AnalysisError(f"{store.path}: no token occurs twice in {len(starts)} windows of {split!r}")
    with csv_writer(out / "self_similarity.csv") as writer:
        writer.writerow(["token_id", "token", "count", "layer", "self_similarity"])
        for i in ids:
            for layer in layers:
                writer.writerow([i, id_to_token[i], count[i], layer, f"{similarity[layer, i]:.6g}"])

    quartiles = np.quantile(similarity[:, ids], [0.25, 0.5, 0.75], axis=1)
    figure, panel = plt.subplots(figsize=(6, 4.5), constrained_layout=True)
    panel.fill_between(layers, quartiles[0], quartiles[2], alpha=0.3, label="quartiles over tokens")
    panel.plot(layers, quartiles[1], marker="o", label="median over tokens")
    panel.set(xticks=layers, xticklabels=["emb.", *map(str, layers[1:])], ylim=(min(0.0, quartiles.min()), 1.0),
              xlabel="layer (emb.: the embeddings' output)",
              ylabel="mean cosine similarity between occurrences",
              title=f"Self-similarity of {len(ids)} tokens ({len(starts)} {split} windows, ≤ {max_occurrences} "
                    "occurrences each)")
    panel.legend()
    save_figure(figure, out / "self_similarity.png")
    return out / "self_similarity.csv"
