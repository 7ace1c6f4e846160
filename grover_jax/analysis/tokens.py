"""Token embeddings (the input embedding matrix) against token frequency, GC and AG content and
length: Spearman's rho of each principal axis with each property (GROVER Fig. 3).

UMAP axes are added when umap-learn is installed; PCA is always computed.
"""

from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from grover_jax.analysis.statistics import principal_components
from grover_jax.api import GroverModel
from grover_jax.atomic_files import csv_writer, save_figure
from grover_jax.store import TokenStore
from grover_jax.tokenizer import SPECIAL_TOKENS

PROPERTIES = ("log10_count", "gc", "ag", "length")
# The CSV keeps the short column names; a figure names each property for a reader.
PROPERTY_LABELS = {"log10_count": "occurrences in the store (log10)", "gc": "GC fraction",
                   "ag": "A+G fraction", "length": "token length (nt)"}


def token_counts(store: TokenStore, vocab_size: int) -> np.ndarray:
    """Occurrences of each token id over the whole store (all splits)."""
    counts = np.zeros(vocab_size, np.int64)
    for first in range(0, len(store), 50_000_000):  # bounded memory on a whole genome
        counts += np.bincount(store.tokens[first : first + 50_000_000], minlength=vocab_size)[:vocab_size]
    return counts


def token_table(model: GroverModel, store: TokenStore) -> dict[str, np.ndarray]:
    """Per token that occurs in the store (special tokens excluded): id, string and properties."""
    id_to_token = model.tokenizer.id_to_token
    counts = token_counts(store, len(id_to_token))
    ids = np.array([i for i, t in enumerate(id_to_token) if t not in SPECIAL_TOKENS and counts[i] > 0])
    strings = [id_to_token[i] for i in ids]
    return {
        "token_id": ids,
        "token": np.array(strings, dtype=object),
        "count": counts[ids],
        "log10_count": np.log10(counts[ids]),
        "gc": np.array([(t.count("G") + t.count("C")) / len(t) for t in strings]),
        "ag": np.array([(t.count("A") + t.count("G")) / len(t) for t in strings]),
        "length": np.array([len(t) for t in strings]),
    }


def _umap(x: np.ndarray, seed: int) -> np.ndarray | None:
    try:
        import umap
    except ImportError:
        return None
    return umap.UMAP(n_components=2, random_state=seed).fit_transform(x)


def analyze_tokens(model: GroverModel, store: TokenStore, out: Path, n_components: int = 5,
                   seed: int = 0) -> Path:
    """tokens.csv (per token: properties and PCA scores), token_correlations.csv (axis ×
    property: Spearman's rho), tokens_pca.png, token_correlations.png."""
    import matplotlib.pyplot as plt

    table = token_table(model, store)
    embedding_VxD = np.asarray(model.encoder_params["embeddings"]["word_embeddings"]["embedding"])
    vectors = embedding_VxD[table["token_id"]]
    scores, explained = principal_components(vectors, n_components)
    axes = {f"pc{k + 1}": scores[:, k] for k in range(scores.shape[1])}
    umap_scores = _umap(vectors, seed)
    if umap_scores is not None:
        axes.update({"umap1": umap_scores[:, 0], "umap2": umap_scores[:, 1]})

    with csv_writer(out / "tokens.csv") as writer:
        writer.writerow(["token_id", "token", "count", *PROPERTIES, *axes])
        for row in range(len(table["token_id"])):
            writer.writerow([table["token_id"][row], table["token"][row], table["count"][row],
                             *(f"{table[p][row]:.6g}" for p in PROPERTIES),
                             *(f"{values[row]:.6g}" for values in axes.values())])
    rhos = np.array([[spearmanr(values, table[p]).statistic for p in PROPERTIES]
                     for values in axes.values()])
    with csv_writer(out / "token_correlations.csv") as writer:
        writer.writerow(["axis", "explained_variance", "property", "spearman_rho", "n_tokens"])
        for a, axis in enumerate(axes):
            variance = f"{explained[a]:.6g}" if axis.startswith("pc") else ""
            for p, prop in enumerate(PROPERTIES):
                writer.writerow([axis, variance, prop, f"{rhos[a, p]:.6g}", len(vectors)])

    figure, panels = plt.subplots(2, 2, figsize=(10, 8), constrained_layout=True)
    for panel, prop in zip(panels.flat, PROPERTIES):
        points = panel.scatter(scores[:, 0], scores[:, 1], c=table[prop], s=12, cmap="viridis")
        figure.colorbar(points, ax=panel, label=PROPERTY_LABELS[prop])
        panel.set(xlabel=f"PC1 ({explained[0]:.1%} of variance)", ylabel=f"PC2 ({explained[1]:.1%} of variance)",
                  title=f"{PROPERTY_LABELS[prop]}: Spearman's rho with PC1 {rhos[0, PROPERTIES.index(prop)]:+.2f}")
    figure.suptitle(f"Input embeddings of the {len(vectors)} tokens that occur in the store, first two "
                    "principal components")
    save_figure(figure, out / "tokens_pca.png")

    figure, panel = plt.subplots(figsize=(6, 0.5 * len(axes) + 1.5), constrained_layout=True)
    image = panel.imshow(rhos, cmap="coolwarm", vmin=-1, vmax=1)
    panel.set(xticks=range(len(PROPERTIES)), yticks=range(len(axes)), yticklabels=[a.upper() for a in axes],
              ylabel="embedding axis", title="What each embedding axis follows (Spearman's rho over tokens)")
    panel.set_xticklabels([PROPERTY_LABELS[p].replace(" (", "\n(") for p in PROPERTIES], fontsize=8)
    for (a, p), rho in np.ndenumerate(rhos):
        panel.text(p, a, f"{rho:+.2f}", ha="center", va="center", fontsize=8)
    figure.colorbar(image, ax=panel, label="Spearman rho")
    save_figure(figure, out / "token_correlations.png")
    return out / "token_correlations.csv"
