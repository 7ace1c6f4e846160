"""BED intervals as sorted, merged per-chromosome arrays, and point-in-interval lookups."""

import gzip
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from grover_jax.analysis.errors import AnalysisError
from grover_jax.genome import canonical_chromosome_name


class AnnotationError(AnalysisError):
    pass


def read_bed(path: str | Path) -> dict[str, np.ndarray]:
    """{chromosome: merged [n, 2] int64 (start, end)} of a BED(.gz) file, 0-based half-open;
    '#', 'track' and 'browser' lines are skipped."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such BED file")
    opener = gzip.open if path.suffix == ".gz" else open
    rows: dict[str, list[tuple[int, int]]] = {}
    with opener(path, "rt") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.split("\t")
            try:
                start, end = int(fields[1]), int(fields[2])
            except (IndexError, ValueError):
                raise AnnotationError(f"{path} line {line_number}: not a BED row (chrom, start, end)") from None
            rows.setdefault(canonical_chromosome_name(fields[0]), []).append((start, end))
    return {chromosome: merge(np.array(pairs, np.int64)) for chromosome, pairs in rows.items()}


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


def covered_bases(intervals: dict[str, np.ndarray], chromosome: str, start: int, end: int) -> int:
    """Bases of [start, end) inside the chromosome's intervals."""
    table = intervals.get(chromosome, np.zeros((0, 2), np.int64))
    return int(np.clip(np.minimum(table[:, 1], end) - np.maximum(table[:, 0], start), 0, None).sum())


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
