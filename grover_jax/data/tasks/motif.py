"""JASPAR count matrices as log-odds scores, an exact p-value threshold, and a two-strand scan.

Scores follow the convention of JASPAR's own PWM tables (as for MA0139.1, CTCF): probabilities
(count + 0.25) / (N + 1), uniform background, log2 odds; p-values are exact under an i.i.d.
uniform background, from the score distribution computed by convolution on a 0.01-bit grid.
"""

from pathlib import Path

import numpy as np

from grover_jax.data.tasks.errors import TaskDataError

_GRID = 100  # score bins per bit for the exact p-value


def read_jaspar_pfm(path: str | Path) -> np.ndarray:
    """A JASPAR .pfm / .jaspar count matrix as [motif length, 4] counts (A, C, G, T)."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip() or line.startswith(">"):
            continue
        text = line.split("[", 1)[-1].split("]", 1)[0] if "[" in line else line
        try:
            rows.append([float(value) for value in text.split() if value not in ("A", "C", "G", "T")])
        except ValueError:
            raise TaskDataError(path, "not a number in a count row", number) from None
    if len(rows) != 4 or len({len(r) for r in rows}) != 1 or not rows[0]:
        raise TaskDataError(path, "expected 4 count rows (A, C, G, T) of equal length")
    return np.array(rows, dtype=np.float64).T


def log_odds(counts_Mx4: np.ndarray, pseudocount: float = 0.25) -> np.ndarray:
    totals = counts_Mx4.sum(axis=1, keepdims=True)
    probabilities = (counts_Mx4 + pseudocount) / (totals + 4 * pseudocount)
    return np.log2(probabilities / 0.25)


def score_threshold(pwm_Mx4: np.ndarray, pvalue: float) -> float:
    """The smallest score s with P(score >= s) <= pvalue for a uniform random sequence."""
    grid = np.round(pwm_Mx4 * _GRID).astype(np.int64)
    low = grid.min(axis=1).sum()
    distribution = np.ones(1, dtype=np.float64)
    offset = 0
    for column in grid:
        shifted = column - column.min()
        step = np.zeros(shifted.max() + 1)
        np.add.at(step, shifted, 0.25)
        distribution = np.convolve(distribution, step)
        offset += column.min()
    assert offset == low
    tail = np.cumsum(distribution[::-1])[::-1]  # tail[i] = P(score >= low + i)
    passing = np.flatnonzero(tail <= pvalue)
    if not len(passing):
        raise ValueError(f"no score reaches p <= {pvalue}")
    return float(low + passing[0]) / _GRID


def scan(codes: np.ndarray, pwm_Mx4: np.ndarray, threshold: float) -> list[tuple[int, str, float]]:
    """Non-overlapping motif hits (start, strand, score) with score >= threshold on either strand.

    `codes` are bases 0-3 with any other value for N. Overlapping hits (the two strands of one site,
    or shifted partial matches) keep the best-scoring one.
    """
    width = len(pwm_Mx4)
    if len(codes) < width:
        return []
    # Column 4 scores a non-ACGT base as impossible: no hit spans an N.
    padded = np.concatenate([pwm_Mx4, np.full((width, 1), -np.inf)], axis=1)
    reverse = np.concatenate([pwm_Mx4[::-1, ::-1], np.full((width, 1), -np.inf)], axis=1)
    index = np.where(codes < 4, codes, 4).astype(np.intp)
    n = len(codes) - width + 1
    forward_scores = np.zeros(n)
    reverse_scores = np.zeros(n)
    for j in range(width):
        forward_scores += padded[j][index[j : j + n]]
        reverse_scores += reverse[j][index[j : j + n]]
    candidates = []
    for scores, strand in ((forward_scores, "+"), (reverse_scores, "-")):
        for start in np.flatnonzero(scores >= threshold - 1e-9):
            candidates.append((float(scores[start]), int(start), strand))
    candidates.sort(key=lambda hit: (-hit[0], hit[1], hit[2]))
    taken = np.zeros(len(codes), dtype=bool)
    hits = []
    for score, start, strand in candidates:
        if not taken[start : start + width].any():
            taken[start : start + width] = True
            hits.append((start, strand, score))
    return sorted(hits)
