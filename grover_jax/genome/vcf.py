"""VCF files, optionally gzipped or bgzipped: the one reader of variants (`grover score-variants`).

Only the first five columns are read (CHROM, POS, ID, REF, ALT); a row with several ALT alleles
gives one Variant each. Alleles must be spelled in bases: a symbolic (`<DEL>`), missing (`.`),
spanning-deletion (`*`) or breakend ALT has no sequence to score and stops the read with one line
naming file, line and field, as does any row that cannot be read.
"""

import gzip
import re
import zlib
from pathlib import Path
from typing import NamedTuple

from grover_jax.genome.errors import GenomeFormatError

_ALLELE = re.compile(r"^[ACGTNacgtn]+$")


class Variant(NamedTuple):
    """One ALT allele of a VCF row; also what a Python caller may pass as a plain tuple
    `(chromosome, position, ref, alt)`."""

    chromosome: str  # as the VCF spells it
    position: int  # 1-based, VCF's POS: the first base of REF
    ref: str
    alt: str
    id: str = "."
    line: int | None = None  # the VCF line, for errors about this row
    source: str = ""  # the VCF path


def read_vcf(path: str | Path) -> list[Variant]:
    """Every variant of the VCF at `path`, in file order."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such VCF file")
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"  # by content: bgzip output is a multi-member gzip
    variants: list[Variant] = []
    number = 0
    try:
        with (gzip.open if gzipped else open)(path, "rt", encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if text.startswith("#") or not text.strip():
                    continue
                variants.extend(_row_variants(path, number, text))
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise GenomeFormatError(path, number + 1, f"corrupt or truncated gzip data ({str(error) or type(error).__name__})"
                                ) from None
    except UnicodeDecodeError:
        raise GenomeFormatError(path, number + 1, "not UTF-8 text (is it a BCF or another binary file?)") from None
    if not variants:
        raise GenomeFormatError(path, None, "no variant rows (only header lines, or an empty file)")
    return variants


def _row_variants(path: Path, number: int, text: str) -> list[Variant]:
    fields = text.rstrip("\r\n").split("\t")
    if len(fields) < 5:
        fields = text.split()
    if len(fields) < 5:
        raise GenomeFormatError(path, number, "expected at least 5 tab-separated columns (CHROM POS ID REF ALT)")
    chromosome, position, identifier, ref, alts = fields[:5]
    try:
        position_1 = int(position)
    except ValueError:
        raise GenomeFormatError(path, number, f"{position!r} is not an integer", "POS") from None
    if position_1 < 1:
        raise GenomeFormatError(path, number, f"{position_1} is not a 1-based position", "POS")
    if not _ALLELE.match(ref):
        raise GenomeFormatError(path, number, f"{ref!r} is not spelled in A, C, G, T, N", "REF")
    variants = []
    for alt in alts.split(","):
        if not _ALLELE.match(alt):
            raise GenomeFormatError(path, number, f"allele {alt!r} has no bases to score (symbolic, missing, '*' or "
                                    "a breakend: leave such rows out, e.g. bcftools view -v snps,indels)", "ALT")
        variants.append(Variant(chromosome, position_1, ref.upper(), alt.upper(), identifier, number, str(path)))
    return variants
