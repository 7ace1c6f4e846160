"""A genome as the rest of the system sees it: chromosomes of uppercase bases, cut into contigs.

GROVER's alphabet is A, C, G, T only: runs of N (and of the rarer IUPAC ambiguity codes) split a
chromosome into contigs, and no token or BPE pair ever spans two contigs. Contigs are further cut at
split-region edges, so each contig belongs to exactly one of train/valid/test.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grover_jax.genome.errors import GenomeFormatError
from grover_jax.genome.fasta import FastaRecord, read_fasta
from grover_jax.genome.splits import SplitRegion, SplitSpecError, parse_split_spec, split_pieces

# A C G T -> 0 1 2 3; everything else (N, IUPAC ambiguity) -> 255, a contig break.
BASES = "ACGT"
BASE_CODE = np.full(256, 255, dtype=np.uint8)
for _code, _base in enumerate(BASES):
    BASE_CODE[ord(_base)] = _code


@dataclass(frozen=True)
class Contig:
    """A maximal run of A/C/G/T within one split; 0-based half-open chromosome coordinates."""

    chromosome: str
    start: int
    end: int
    split: str

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass
class Genome:
    records: list[FastaRecord]
    contigs: list[Contig]
    sources: list[dict]

    def record(self, chromosome: str, position: int) -> FastaRecord:
        for record in self.records:
            if record.chromosome == chromosome and record.offset <= position < record.end:
                return record
        raise KeyError(f"{chromosome}:{position + 1} is not in this genome")

    def bases(self, chromosome: str, start: int, end: int) -> str:
        """Uppercase sequence of [start, end) (0-based) on `chromosome`."""
        record = self.record(chromosome, start)
        if end > record.end:
            raise KeyError(f"{chromosome}:{start + 1}-{end} runs past the end of record {record.header}")
        return record.sequence[start - record.offset : end - record.offset].tobytes().decode("ascii")

    def contig_codes(self, contig: Contig) -> np.ndarray:
        """The contig's bases as codes 0..3 (A, C, G, T)."""
        record = self.record(contig.chromosome, contig.start)
        return BASE_CODE[record.sequence[contig.start - record.offset : contig.end - record.offset]]

    def split_contigs(self, split: str | None) -> list[Contig]:
        return [c for c in self.contigs if split in (None, "all") or c.split == split]

    def soft_mask(self, chromosome: str) -> np.ndarray:
        """Soft-masked (lowercase in the FASTA) intervals on `chromosome`: repeats, for the analyses."""
        masks = [r.soft_mask for r in self.records if r.chromosome == chromosome]
        return np.concatenate(masks) if masks else np.zeros((0, 2), np.int64)


def acgt_runs(sequence: np.ndarray) -> np.ndarray:
    """[k, 2] array of (start, end) of the maximal A/C/G/T runs of an uppercase uint8 sequence."""
    is_base = BASE_CODE[sequence] != 255
    edges = np.flatnonzero(np.diff(np.concatenate(([False], is_base, [False])).astype(np.int8)))
    return edges.reshape(-1, 2).astype(np.int64)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def read_genome(
    paths: list[str | Path] | str | Path,
    split_spec: str | list[SplitRegion] = "",
    min_contig_length: int = 1,
    keep_soft_mask: bool = True,
) -> Genome:
    """Read FASTA files, cut them into contigs at non-ACGT runs and split edges."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    regions = parse_split_spec(split_spec) if isinstance(split_spec, str) else list(split_spec)
    records: list[FastaRecord] = []
    sources = []
    for path in paths:
        records.extend(read_fasta(path, keep_soft_mask=keep_soft_mask))
        check_no_overlap(record_places(records))
        sources.append({"path": str(path), "sha256": file_sha256(path), "bytes": Path(path).stat().st_size})
    contigs = []
    for record in records:
        for run_start, run_end in acgt_runs(record.sequence) + record.offset:
            for start, end, split in split_pieces(record.chromosome, int(run_start), int(run_end), regions):
                if end - start >= min_contig_length:
                    contigs.append(Contig(record.chromosome, start, end, split))
    return Genome(records, contigs, sources)


@dataclass(frozen=True)
class RecordPlace:
    """Where a FASTA record lies on its chromosome, without its sequence."""

    chromosome: str
    start: int
    end: int
    header: str
    source: str
    header_line: int


def record_places(records: list[FastaRecord]) -> list[RecordPlace]:
    return [RecordPlace(r.chromosome, r.offset, r.end, r.header, r.source, r.header_line) for r in records]


def check_no_overlap(places: list[RecordPlace]) -> None:
    """Refuse two records (of one file or of two) that put sequence on the same stretch of a
    chromosome, e.g. `>chr20` twice: one of them would silently shadow the other. `places` in
    reading order; the later record is the one named."""
    order = {id(place): index for index, place in enumerate(places)}
    reach: RecordPlace | None = None  # the record reaching furthest along the chromosome so far
    for place in sorted(places, key=lambda p: (p.chromosome, p.start)):
        if reach is not None and reach.chromosome == place.chromosome and place.start < reach.end:
            earlier, later = sorted((reach, place), key=lambda p: order[id(p)])
            where = f"line {earlier.header_line}" if earlier.source == later.source else earlier.source
            name, earlier_name = later.header.split()[0], earlier.header.split()[0]
            raise GenomeFormatError(
                later.source, later.header_line,
                f"duplicate record name '{name}' (also at {where})" if name == earlier_name else
                f"record '{later.header}' overlaps '{earlier.header}' from {where} on {later.chromosome}",
            )
        if reach is None or reach.chromosome != place.chromosome or place.end > reach.end:
            reach = place


NO_BASES = "no A, C, G or T base (only N or other IUPAC codes)"


def _files(paths: list[str | Path]) -> str:
    return ", ".join(str(p) for p in paths)


def check_split_chromosomes(regions: list[SplitRegion], chromosomes: Iterable[str], paths: list[str | Path]) -> None:
    """Refuse a split spec naming a chromosome that none of `paths` holds: its split would be
    silently empty and everything would land in train."""
    present = list(dict.fromkeys(chromosomes))
    missing = list(dict.fromkeys(r.chromosome for r in regions if r.chromosome not in present))
    if missing:
        shown = ", ".join(present[:12]) + (f", ... ({len(present)} in all)" if len(present) > 12 else "")
        raise SplitSpecError(
            f"split spec names {', '.join(missing)}, not in {_files(paths)} (its chromosomes: {shown or 'none'})"
        )


def require_learnable_bases(paths: list[str | Path], split_spec: str, split: str, split_bases: int,
                            all_bases: int) -> None:
    """Refuse to learn a vocabulary from no A/C/G/T base: an all-N genome, or a split spec that
    puts every base outside the `split` learned on."""
    if split_bases:
        return
    if not all_bases:
        raise GenomeFormatError(_files(paths), None, NO_BASES + ": nothing to learn a vocabulary from")
    raise SplitSpecError(f"split spec {split_spec!r} leaves no base of {_files(paths)} in the {split} split: "
                         "nothing to learn a vocabulary from (name less for valid/test, or --learn-on all)")
