"""Train/valid/test assignment of genome sequence, by chromosome or by region.

A split spec is text, so it fits in a config and on a command line:
    "valid=chr20:55000001-57500000;test=chr20:57500001-60000000,chr22"
Each item names a split and a comma-separated list of whole chromosomes or samtools-style regions
(1-based, inclusive). Sequence not named goes to `train`. Regions cut contigs, so no stretch of
sequence (and no token) belongs to two splits.
"""

from dataclasses import dataclass

from grover_jax.errors import GroverError
from grover_jax.genome.naming import canonical_chromosome_name, parse_region

SPLITS = ("train", "valid", "test")


class SplitSpecError(GroverError):
    pass


@dataclass(frozen=True)
class SplitRegion:
    split: str
    chromosome: str
    start: int  # 0-based, half-open; whole chromosome: 0 .. 2**62
    end: int


def parse_split_spec(spec: str) -> list[SplitRegion]:
    regions: list[SplitRegion] = []
    for item in filter(None, (part.strip() for part in spec.replace("\n", ";").split(";"))):
        split, sep, targets = item.partition("=")
        split = split.strip()
        if not sep or split not in SPLITS:
            raise SplitSpecError(f"split spec item {item!r}: expected '<train|valid|test>=<region>[,<region>...]'")
        for target in filter(None, (t.strip() for t in targets.split(","))):
            region = parse_region(target)
            if region is not None:
                regions.append(SplitRegion(split, *region))
            elif ":" in target:
                raise SplitSpecError(f"split spec item {item!r}: cannot read region {target!r} (use chr:start-end)")
            else:
                regions.append(SplitRegion(split, canonical_chromosome_name(target), 0, 2**62))
    _check_disjoint(regions)
    return regions


def _check_disjoint(regions: list[SplitRegion]) -> None:
    ordered = sorted(regions, key=lambda r: (r.chromosome, r.start))
    for left, right in zip(ordered, ordered[1:]):
        if left.chromosome == right.chromosome and right.start < left.end:
            raise SplitSpecError(
                f"split regions overlap on {left.chromosome}: {left.split} and {right.split} both claim "
                f"{right.start + 1}-{min(left.end, right.end)}"
            )


def split_pieces(chromosome: str, start: int, end: int, regions: list[SplitRegion]) -> list[tuple[int, int, str]]:
    """Cut [start, end) on `chromosome` at split-region edges: [(start, end, split), ...] in order."""
    cuts = sorted(
        (max(r.start, start), min(r.end, end), r.split)
        for r in regions
        if r.chromosome == chromosome and r.start < end and r.end > start
    )
    pieces, position = [], start
    for cut_start, cut_end, split in cuts:
        if cut_start > position:
            pieces.append((position, cut_start, "train"))
        pieces.append((cut_start, cut_end, split))
        position = cut_end
    if position < end:
        pieces.append((position, end, "train"))
    return pieces
