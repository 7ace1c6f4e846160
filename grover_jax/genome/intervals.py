"""The sequences of a BED's intervals on a FASTA genome, or of each FASTA record when there is no
BED: the rows that per-region programs (`grover embed`) write out, in input order."""

from pathlib import Path
from typing import NamedTuple

from grover_jax.genome.bed import read_bed
from grover_jax.genome.errors import GenomeFormatError
from grover_jax.genome.fasta import read_fasta
from grover_jax.genome.genome import Genome, read_genome
from grover_jax.genome.strand import reverse_complement


class Region(NamedTuple):
    """A stretch of the genome; `sequence` reads on `strand` (a `-` interval is reverse-complemented)."""

    name: str
    chromosome: str
    start: int  # 0-based, half-open, as in BED
    end: int
    strand: str
    sequence: str


def _holdings(genome: Genome) -> str:
    shown = [f"{r.chromosome}:{r.offset + 1:,}-{r.end:,}" for r in genome.records[:8]]
    more = f", ... ({len(genome.records)} records)" if len(genome.records) > 8 else ""
    return ", ".join(shown) + more


def region_sequences(fasta: list[str | Path], bed: str | Path | None = None) -> list[Region]:
    """One Region per BED row (named by its 4th column, else `chrom:start-end`, 1-based), or per
    FASTA record without a BED. An interval outside every record is one line naming the BED line
    and what the FASTA holds."""
    if bed is None:
        regions = []
        for path in fasta:
            for record in read_fasta(path, keep_soft_mask=False):
                regions.append(Region(record.header.split()[0], record.chromosome, record.offset, record.end, "+",
                                      record.sequence.tobytes().decode("ascii")))
        return regions
    genome = read_genome(fasta, keep_soft_mask=False)
    rows = read_bed(bed)
    if not rows:
        raise GenomeFormatError(bed, None, "no intervals (every line is blank, a comment, a track or browser line)")
    regions = []
    for row in rows:
        try:
            sequence = genome.bases(row.chromosome, row.start, row.end)
        except KeyError:
            where = ", ".join(str(p) for p in fasta)
            raise GenomeFormatError(bed, row.line, f"{row.chromosome}:{row.start + 1:,}-{row.end:,} is not in {where} "
                                    f"(it holds {_holdings(genome)})", "chrom") from None
        if row.strand == "-":
            sequence = reverse_complement(sequence)
        regions.append(Region(row.name or f"{row.chromosome}:{row.start + 1}-{row.end}", row.chromosome, row.start,
                              row.end, row.strand, sequence))
    return regions
