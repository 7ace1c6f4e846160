"""Tokens' localisation in repeats: the fraction of each token's occurrences inside RepeatMasker
intervals (GROVER Fig. 4).

An occurrence is inside a repeat when its middle base (first base + length // 2) lies in an
interval of the repeat BED (default: the bundled hg19 RepeatMasker rows; the bundled FASTA is
uppercase, so it carries no soft mask to use instead). Enrichment is that fraction over the
fraction of all token occurrences inside repeats.
"""

from pathlib import Path

import numpy as np

from grover_jax import bundled
from grover_jax.analysis.annotation import contains, read_intervals, require_overlap
from grover_jax.api import GroverModel
from grover_jax.atomic_files import csv_writer, save_figure
from grover_jax.store import TokenStore
from grover_jax.tokenizer import SPECIAL_TOKENS


def occurrences_in_repeats(store: TokenStore, repeats: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(occurrences, occurrences inside repeats) per token id, over every contig of the store."""
    vocab_size = len(store.token_lengths)
    total = np.zeros(vocab_size, np.int64)
    inside = np.zeros(vocab_size, np.int64)
    for contig in store.contigs:
        first, n = contig["token_offset"], contig["n_tokens"]
        ids = np.asarray(store.tokens[first : first + n], np.int64)
        middles = np.asarray(store.starts[first : first + n], np.int64) + store.token_lengths[ids] // 2
        total += np.bincount(ids, minlength=vocab_size)
        inside += np.bincount(ids[contains(repeats, contig["chromosome"], middles)], minlength=vocab_size)
    return total, inside


def analyze_repeats(model: GroverModel, store: TokenStore, out: Path,
                    repeats_bed: str | Path | None = None) -> Path:
    """repeats.csv (per token: occurrences, inside repeats, fraction, enrichment) and repeats.png;
    `repeats_bed` defaults to the bundled hg19 RepeatMasker rows."""
    import matplotlib.pyplot as plt

    repeats_bed = repeats_bed or bundled.annotation("hg19_repeats")
    repeats = read_intervals(repeats_bed)
    require_overlap(repeats, store.contigs, repeats_bed)
    total, inside = occurrences_in_repeats(store, repeats)
    background = inside.sum() / max(total.sum(), 1)
    id_to_token = model.tokenizer.id_to_token
    ids = np.array([i for i, t in enumerate(id_to_token) if t not in SPECIAL_TOKENS and total[i] > 0])
    fraction = inside[ids] / total[ids]
    with csv_writer(out / "repeats.csv") as writer:
        writer.writerow(["token_id", "token", "length", "occurrences", "in_repeat", "fraction_in_repeat",
                         "enrichment"])
        for i, f in zip(ids, fraction):
            writer.writerow([i, id_to_token[i], len(id_to_token[i]), total[i], inside[i], f"{f:.6g}",
                             f"{f / background:.6g}" if background > 0 else "nan"])

    lengths = np.array([len(id_to_token[i]) for i in ids])
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    points = left.scatter(total[ids], fraction, c=lengths, s=12, cmap="viridis")
    figure.colorbar(points, ax=left, label="token length (nt)")
    left.axhline(background, color="grey", linestyle="--", label=f"all occurrences together: {background:.1%}")
    left.set(xscale="log", xlabel="occurrences in the store (log scale)",
             ylabel="fraction of occurrences inside repeats", title="Each token: how often it lies in a repeat")
    left.legend()
    right.hist(fraction, bins=40, color="tab:blue", label="tokens")
    right.axvline(background, color="grey", linestyle="--", label=f"all occurrences together: {background:.1%}")
    right.set(xlabel="fraction of occurrences inside repeats", ylabel="tokens",
              title=f"Distribution over the {len(ids)} tokens")
    right.legend()
    figure.suptitle("Tokens in RepeatMasker repeats (an occurrence is inside when its middle base is)")
    save_figure(figure, out / "repeats.png")
    return out / "repeats.csv"
