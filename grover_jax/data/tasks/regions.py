"""Genomic intervals of task examples and the block rule that splits them by region.

Every chromosome is cut into blocks of `block_size` bases at fixed coordinates (block i covers
[i * block_size, (i + 1) * block_size)); block i goes to the split of fold i mod 10. An example is
kept only if it lies inside one block, so two examples of different splits never share a base,
and the assignment does not depend on which examples exist: adding data never moves a region.
Interleaved blocks spread every split along the chromosome (a single held-out block of a 5 Mb
slice would hold a dozen TSSs).
"""

from pathlib import Path

from grover_jax.data.tasks.errors import TaskDataError
from grover_jax.genome import GenomeFormatError
from grover_jax.genome.bed import BedRow
from grover_jax.genome.bed import read_bed as read_bed_rows

SPLITS = ("train", "valid", "test")
# Folds 0-5 train, 6-7 valid, 8-9 test: 60/20/20 by sequence.
DEFAULT_FOLDS = {"train": (0, 1, 2, 3, 4, 5), "valid": (6, 7), "test": (8, 9)}
_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def reverse_complement(sequence: str) -> str:
    return sequence.translate(_COMPLEMENT)[::-1]


def read_bed(path: str | Path, name_required: bool = False) -> list[BedRow]:
    """The BED's rows (genome/bed.py), a bad row reported as a TaskDataError like every task input."""
    try:
        return read_bed_rows(path, name_required)
    except GenomeFormatError as error:
        raise TaskDataError(error.path, error.reason, error.line, error.field) from None


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
