"""Chromosome names, normalised once, here: Ensembl/GRCh37 `20`, `X`, `MT` become UCSC `chr20`, `chrX`, `chrM`.

GROVER worked on hg19 (UCSC naming); annotation tables here use UCSC names, so every name entering the
system passes through `canonical_chromosome_name` and the original spelling is recorded beside it.
"""

import re

_ENSEMBL_PRIMARY = re.compile(r"^(?:[1-9]|1[0-9]|2[0-9]|X|Y)$")
_REGION = re.compile(r"^(?P<name>[^\s:]+):(?P<start>[0-9][0-9,]*)-(?P<end>[0-9][0-9,]*)$")


def canonical_chromosome_name(name: str) -> str:
    """`20` -> `chr20`, `MT`/`M` -> `chrM`; names already in UCSC form or unknown contigs are kept."""
    if name in ("MT", "M", "chrMT"):
        return "chrM"
    if _ENSEMBL_PRIMARY.match(name):
        return "chr" + name
    return name


def parse_region(text: str) -> tuple[str, int, int] | None:
    """`chr20:32000001-37000000` (samtools style, 1-based inclusive) -> ("chr20", 32000000, 37000000)
    as 0-based half-open coordinates; None when `text` is not a region."""
    match = _REGION.match(text.strip())
    if match is None:
        return None
    start = int(match["start"].replace(",", ""))
    end = int(match["end"].replace(",", ""))
    if start < 1 or end < start:
        return None
    return canonical_chromosome_name(match["name"]), start - 1, end
