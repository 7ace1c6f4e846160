"""The real genome slice shipped with the package (see resources/README.md), used when no --fasta is given."""

from pathlib import Path

RESOURCES = Path(__file__).parent / "resources"
FASTA = RESOURCES / "hg19_chr20_32-37Mb.fa.gz"
ANNOTATION = RESOURCES / "annotation"
CTCF_MATRIX = RESOURCES / "JASPAR2022_MA0139.1_CTCF.pfm"
# Two 500 kb held-out blocks of the 5 Mb slice, away from its assembly gap at 34.90 Mb.
SPLIT_SPEC = "valid=chr20:35500001-36000000;test=chr20:36500001-37000000"


def annotation(table: str) -> Path:
    """Path of a bundled BED table: tss, genes, exons, CpG_islands, CTCF, hg19_repeats."""
    return ANNOTATION / f"{table}.bed.gz"
