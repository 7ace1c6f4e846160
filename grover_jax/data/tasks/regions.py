"""Genomic intervals of task examples and the block rule that splits them by region.

Every chromosome is cut into blocks of `block_size` bases at fixed coordinates (block i covers
[i * block_size, (i + 1) * block_size)); block i goes to the split of fold i mod 10. An example is
kept only if it lies inside one block, so two examples of different splits never share a base,
and the assignment does not depend on which examples exist: adding data never moves a region.
Interleaved blocks spread every split along the chromosome (a single held-out block of a 5 Mb
slice would hold a dozen TSSs).
"""

import gzip
from dataclasses import dataclass
from pathlib import Path

from grover_jax.data.tasks.errors import TaskDataError
from grover_jax.genome import canonical_chromosome_name

SPLITS = ("train", "valid", "test")
# Folds 0-5 train, 6-7 valid, 8-9 test: 60/20/20 by sequence.
DEFAULT_FOLDS = {"train": (0, 1, 2, 3, 4, 5), "valid": (6, 7), "test": (8, 9)}
_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


@dataclass(frozen=True)
class BedRow:
    chromosome: str
    start: int
    end: int
    name: str
    strand: str
    line: int


def reverse_complement(sequence: str) -> str:
    return sequence.translate(_COMPLEMENT)[::-1]


def read_bed(path: str | Path, name_required: bool = False) -> list[BedRow]:
    """BED (optionally gzipped), 0-based half-open; `#`, `track` and `browser` lines skipped."""
    path = Path(path)
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    rows = []
    with opener(path, "rt") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip() or text.startswith(("#", "track", "browser")):
                continue
            fields = text.rstrip("\r\n").split("\t")
            if len(fields) < 3:
                fields = text.split()
            if len(fields) < 3:
                raise TaskDataError(path, "expected at least 3 tab-separated columns (chrom, start, end)", number)
            try:
                start, end = int(fields[1]), int(fields[2])
            except ValueError:
                raise TaskDataError(path, f"start/end {fields[1]!r}/{fields[2]!r} are not integers", number,
                                    "start") from None
            if not 0 <= start < end:
                raise TaskDataError(path, f"interval {start}-{end} is empty or negative", number, "end")
            if name_required and len(fields) < 4:
                raise TaskDataError(path, "missing the label column (4th, BED name)", number, "label")
            name = fields[3] if len(fields) > 3 else ""
            strand = fields[5] if len(fields) > 5 and fields[5] in ("+", "-") else "+"
            rows.append(BedRow(canonical_chromosome_name(fields[0]), start, end, name, strand, number))
    return rows


def block_split(start: int, end: int, block_size: int, folds: dict[str, tuple[int, ...]] | None = None) -> str | None:
    """The split of [start, end), or None when it crosses a block edge (the example is dropped)."""
    first, last = start // block_size, (end - 1) // block_size
    if first != last:
        return None
    fold = first % 10
    for split, members in (folds or DEFAULT_FOLDS).items():
        if fold in members:
            return split
    return None
