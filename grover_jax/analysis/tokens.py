"""Token embeddings against token frequency, GC, AG and AC content and length: Spearman's rho of
each principal axis with each property (GROVER §4.1, Fig. 3).

The embedding of a token is, by default, its contextual embedding averaged over its occurrences
(GROVER's "average trained embeddings"): its hidden state at `layer` (default: the last encoder
layer; the paper does not say which layer it averaged) in evenly spaced windows of a split, at
most `max_occurrences` occurrences counted (analysis/contextual.py). Tokens that never occur in
those windows are left out. embedding="input" takes the rows of the input embedding matrix
instead, for every token that occurs in the store.

UMAP axes are added when umap-learn is installed; PCA is always computed.
"""

import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from grover_jax.analysis.contextual import MAX_OCCURRENCES, contextual_sums
from grover_jax.analysis.errors import AnalysisError
from grover_jax.analysis.sampling import split_windows
from grover_jax.analysis.statistics import principal_components
from grover_jax.api import GroverModel
from grover_jax.atomic_files import csv_writer, save_figure, write_text
from grover_jax.store import TokenStore
from grover_jax.tokenizer import SPECIAL_TOKENS

PROPERTIES = ("log10_count", "gc", "ag", "ac", "length")
# The CSV keeps the short column names; a figure names each property for a reader.
PROPERTY_LABELS = {"log10_count": "occurrences in the store (log10)", "gc": "GC fraction",
                   "ag": "A+G fraction", "ac": "A+C fraction", "length": "token length (nt)"}
EMBEDDINGS = ("contextual", "input")

# GROVER (Sanabria et al. 2024), §4.1 and Fig. 3: Spearman's rho of principal components of the
# average trained token embeddings with token properties (frequency: Spearman is rank-based, so
# raw or log10 counts give the same rho), and the largest share of variance any one PC explains.
PAPER_TOKEN_CORRELATIONS = (("pc1", "log10_count", 0.88), ("pc2", "gc", -0.96), ("pc3", "ag", 0.94),
                            ("pc4", "length", 0.39), ("pc5", "ac", -0.81), ("pc6", "length", 0.43))
PAPER_MAX_EXPLAINED_VARIANCE = 0.035
PAPER_AXES = 6  # PCs searched for each property's best match, as many as the paper reports

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
        "ac": np.array([(t.count("A") + t.count("C")) / len(t) for t in strings]),
        "length": np.array([len(t) for t in strings]),
    }


def _umap(x: np.ndarray, seed: int) -> np.ndarray | None:
    try:
        import umap
    except ImportError:
        return None
    return umap.UMAP(n_components=2, random_state=seed).fit_transform(x)


def contextual_token_embeddings(model: GroverModel, store: TokenStore, split: str = "valid", n_windows: int = 64,
                                layer: int | None = None,
                                max_occurrences: int = MAX_OCCURRENCES) -> tuple[np.ndarray, np.ndarray]:
    """(mean hidden state at `layer` [V, D] (NaN rows for tokens never counted), counted
    occurrences [V]) over `n_windows` evenly spaced windows of `split`; layer None: the last."""
    layer = model.num_layers if layer is None else layer
    if not 0 <= layer <= model.num_layers:
        raise AnalysisError(f"layer {layer}: the model has layers 0 (embeddings' output)..{model.num_layers}")
    starts = split_windows(store, split, model.window_tokens, n_windows)
    count, sums = contextual_sums(model, store, starts, (layer,), max_occurrences)
    with np.errstate(invalid="ignore"):
        return sums[0] / count[:, None], count


def spearman_table(table: dict[str, np.ndarray], scores: np.ndarray) -> np.ndarray:
    """Spearman's rho [axis, property] of each column of `scores` with each of PROPERTIES."""
    return np.array([[spearmanr(scores[:, a], table[p]).statistic for p in PROPERTIES]
                     for a in range(scores.shape[1])])


def paper_correlation_table(table: dict[str, np.ndarray], scores: np.ndarray,
                            explained: np.ndarray) -> list[dict[str, object]]:
    """Our numbers beside GROVER's: one row per paper correlation (axis, property, paper's rho, our
    rho on that axis, and the axis among the first PAPER_AXES with the largest |rho| for that
    property, with its rho), then one row for the largest explained-variance share of one PC.
    PCA signs are arbitrary (statistics.principal_components), so compare magnitudes."""
    rhos = spearman_table(table, scores[:, :PAPER_AXES])
    rows: list[dict[str, object]] = []
    for axis, prop, paper in PAPER_TOKEN_CORRELATIONS:
        a = int(axis[2:]) - 1
        column = rhos[:, PROPERTIES.index(prop)]
        # A property constant over the tokens (one length only) has no rho on any axis.
        best = int(np.argmax(np.nan_to_num(np.abs(column), nan=-1.0)))
        rows.append({"axis": axis, "property": prop, "paper": paper,
                     "ours": float(column[a]) if a < len(column) else float("nan"),
                     "best_axis": f"pc{best + 1}" if np.isfinite(column[best]) else "",
                     "best_rho": float(column[best])})
    rows.append({"axis": "one pc (max)", "property": "explained_variance", "paper": PAPER_MAX_EXPLAINED_VARIANCE,
                 "ours": float(np.max(explained)), "best_axis": f"pc{int(np.argmax(explained)) + 1}",
                 "best_rho": float("nan")})
    return rows


def analyze_tokens(model: GroverModel, store: TokenStore, out: Path, n_components: int = PAPER_AXES,
                   seed: int = 0, embedding: str = "contextual", layer: int | None = None, split: str = "valid",
                   n_windows: int = 64, max_occurrences: int = MAX_OCCURRENCES) -> Path:
    """tokens.csv (per token: properties, occurrences averaged and PCA scores),
    token_correlations.csv (axis × property: Spearman's rho), token_paper_correlations.csv (our
    rho beside GROVER's), tokens.json (which embedding, layer, windows), tokens_pca.png,
    token_correlations.png."""
    import matplotlib.pyplot as plt

    if embedding not in EMBEDDINGS:
        raise AnalysisError(f"embedding {embedding!r}: use {' or '.join(EMBEDDINGS)}")
    table = token_table(model, store)
    if embedding == "input":
        embedding_VxD = np.asarray(model.encoder_params["embeddings"]["word_embeddings"]["embedding"])
        averaged = np.zeros(len(embedding_VxD), np.int64)
        layer = None
    else:
        layer = model.num_layers if layer is None else layer
        embedding_VxD, averaged = contextual_token_embeddings(model, store, split, n_windows, layer, max_occurrences)
        n_windows = len(split_windows(store, split, model.window_tokens, n_windows))  # fewer in a short split
        seen = averaged[table["token_id"]] > 0
        table = {name: values[seen] for name, values in table.items()}
        if len(table["token_id"]) < 2:
            raise AnalysisError(f"{store.path}: fewer than 2 tokens occur in {n_windows} windows of {split!r}")
    table["averaged"] = averaged[table["token_id"]]
    vectors = embedding_VxD[table["token_id"]]
    scores, explained = principal_components(vectors, n_components)
    axes = {f"pc{k + 1}": scores[:, k] for k in range(scores.shape[1])}
    umap_scores = _umap(vectors, seed)
    if umap_scores is not None:
        axes.update({"umap1": umap_scores[:, 0], "umap2": umap_scores[:, 1]})
    layer_cell = "" if layer is None else layer

    with csv_writer(out / "tokens.csv") as writer:
        writer.writerow(["token_id", "token", "count", *PROPERTIES, "averaged", *axes])
        for row in range(len(table["token_id"])):
            writer.writerow([table["token_id"][row], table["token"][row], table["count"][row],
                             *(f"{table[p][row]:.6g}" for p in PROPERTIES), table["averaged"][row],
                             *(f"{values[row]:.6g}" for values in axes.values())])
    rhos = spearman_table(table, np.stack(list(axes.values()), axis=1))
    with csv_writer(out / "token_correlations.csv") as writer:
        writer.writerow(["axis", "explained_variance", "property", "spearman_rho", "n_tokens", "embedding", "layer"])
        for a, axis in enumerate(axes):
            variance = f"{explained[a]:.6g}" if axis.startswith("pc") else ""
            for p, prop in enumerate(PROPERTIES):
                writer.writerow([axis, variance, prop, f"{rhos[a, p]:.6g}", len(vectors), embedding, layer_cell])
    with csv_writer(out / "token_paper_correlations.csv") as writer:
        columns = ["axis", "property", "paper", "ours", "best_axis", "best_rho"]
        writer.writerow(columns)
        for row in paper_correlation_table(table, scores, explained):
            writer.writerow([f"{row[c]:.6g}" if isinstance(row[c], float) else row[c] for c in columns])
    settings = {"embedding": embedding, "layer": layer, "num_layers": model.num_layers, "n_tokens": len(vectors)}
    if embedding == "contextual":
        settings.update(split=split, n_windows=n_windows, window_tokens=model.window_tokens,
                        max_occurrences=max_occurrences)
    write_text(out / "tokens.json", json.dumps(settings, indent=1) + "\n")

    figure, panels = plt.subplots(2, 3, figsize=(15, 8), constrained_layout=True)
    for panel, prop in zip(panels.flat, PROPERTIES):
        points = panel.scatter(scores[:, 0], scores[:, 1], c=table[prop], s=12, cmap="viridis")
        figure.colorbar(points, ax=panel, label=PROPERTY_LABELS[prop])
        panel.set(xlabel=f"PC1 ({explained[0]:.1%} of variance)", ylabel=f"PC2 ({explained[1]:.1%} of variance)",
                  title=f"{PROPERTY_LABELS[prop]}: Spearman's rho with PC1 {rhos[0, PROPERTIES.index(prop)]:+.2f}")
    for panel in panels.flat[len(PROPERTIES) :]:
        panel.axis("off")
    if embedding == "input":
        what = f"Input embeddings of the {len(vectors)} tokens that occur in the store"
    else:
        what = (f"Layer-{layer} states of the {len(vectors)} tokens seen in {n_windows} {split} windows, "
                "each averaged over its occurrences")
    figure.suptitle(f"{what}, first two principal components")
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
