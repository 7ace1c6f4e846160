"""BED intervals as sorted, merged per-chromosome arrays, and point-in-interval lookups."""

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from grover_jax.analysis.errors import AnalysisError
from grover_jax.genome import GenomeFormatError
from grover_jax.genome.bed import read_bed


class AnnotationError(AnalysisError):
    pass


def read_intervals(path: str | Path) -> dict[str, np.ndarray]:
    """{chromosome: merged [n, 2] int64 (start, end)} of the BED(.gz) file at `path` (genome/bed.py)."""
    try:
        rows = read_bed(path)
    except GenomeFormatError as error:
        raise AnnotationError(str(error)) from None
    pairs: dict[str, list[tuple[int, int]]] = {}
    for row in rows:
        pairs.setdefault(row.chromosome, []).append((row.start, row.end))
    return {chromosome: merge(np.array(intervals, np.int64)) for chromosome, intervals in pairs.items()}


def merge(intervals: np.ndarray) -> np.ndarray:
    """Sorted, non-overlapping union of [n, 2] intervals (touching ones joined)."""
    if len(intervals) == 0:
        return np.zeros((0, 2), np.int64)
    intervals = intervals[np.argsort(intervals[:, 0], kind="stable")]
    ends = np.maximum.accumulate(intervals[:, 1])
    new_run = np.concatenate([[True], intervals[1:, 0] > ends[:-1]])
    starts = intervals[new_run, 0]
    run_ends = np.maximum.reduceat(intervals[:, 1], np.flatnonzero(new_run))
    return np.stack([starts, run_ends], axis=1)


def contains(intervals: dict[str, np.ndarray], chromosome: str, points: np.ndarray) -> np.ndarray:
    """Whether each 0-based position lies inside one of the chromosome's merged intervals."""
    table = intervals.get(chromosome)
    if table is None or len(table) == 0:
        return np.zeros(len(points), bool)
    index = np.searchsorted(table[:, 0], points, side="right") - 1
    return (index >= 0) & (points < table[np.maximum(index, 0), 1])


def require_overlap(intervals: dict[str, np.ndarray], contigs: Iterable[dict], path: str | Path) -> None:
    """AnalysisError unless at least one interval of the BED read from `path` overlaps a contig of
    the store (`contigs`: dicts with chromosome, start, end). A BED of another genome or of another
    part of it (e.g. the bundled hg19 chr20 slice's annotation on any other store) would otherwise
    leave every token outside every interval, silently."""
    contigs = list(contigs)
    for contig in contigs:
        table = intervals.get(contig["chromosome"])
        if table is None or len(table) == 0:
            continue
        first = np.searchsorted(table[:, 1], contig["start"], side="right")  # first interval ending after start
        if first < len(table) and table[first, 0] < contig["end"]:
            return
    names = list(dict.fromkeys(c["chromosome"] for c in contigs))
    shown = ", ".join(names[:5]) + (f", ... ({len(names)} chromosomes)" if len(names) > 5 else "")
    bed_names = list(intervals)
    bed_shown = ", ".join(bed_names[:5]) + (f", ... ({len(bed_names)})" if len(bed_names) > 5 else "")
    raise AnnotationError(f"{path}: no interval overlaps the store's sequence on {shown or 'no chromosome'} "
                          f"(the BED covers {bed_shown or 'nothing'}); give an annotation of the store's genome")
