"""Genome reading: FASTA/FASTA.gz, N-run contigs, soft-mask intervals, train/valid/test splits."""

from grover_jax.genome.errors import GenomeFormatError
from grover_jax.genome.fasta import FastaRecord, read_fasta
from grover_jax.genome.genome import (
    BASES,
    Contig,
    Genome,
    check_split_chromosomes,
    file_sha256,
    read_genome,
    require_learnable_bases,
)
from grover_jax.genome.naming import canonical_chromosome_name, parse_region
from grover_jax.genome.splits import SplitSpecError, parse_split_spec

__all__ = [
    "BASES", "Contig", "FastaRecord", "Genome", "GenomeFormatError", "SplitSpecError",
    "canonical_chromosome_name", "check_split_chromosomes", "file_sha256", "parse_region", "parse_split_spec",
    "read_fasta", "read_genome", "require_learnable_bases",
]
