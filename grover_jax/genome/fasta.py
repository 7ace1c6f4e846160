"""FASTA / FASTA.gz reading into uppercase base arrays, keeping the soft-mask as intervals.

A record's header may be a plain name (`>20`, `>chr20 some description`) or a samtools-style region
(`>chr20:32000001-37000000`): a region header places the record at its true chromosome coordinates,
so a slice of a chromosome keeps the coordinates its annotation uses.
"""

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grover_jax.genome.errors import GenomeFormatError
from grover_jax.genome.naming import canonical_chromosome_name, parse_region

# IUPAC nucleotide codes (DNA). Anything else in a sequence line is an error, never silently dropped.
IUPAC_DNA = b"ACGTNRYSWKMBDHV"
_VALID = np.zeros(256, dtype=bool)
for _c in IUPAC_DNA + IUPAC_DNA.lower():
    _VALID[_c] = True
_LOWER = np.zeros(256, dtype=bool)
for _c in IUPAC_DNA.lower():
    _LOWER[_c] = True
_UPPER_TABLE = bytes.maketrans(IUPAC_DNA.lower(), IUPAC_DNA)
_NEWLINE, _CR = ord("\n"), ord("\r")
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class FastaRecord:
    """One FASTA record. `sequence` is uppercase ASCII (uint8); coordinates are 0-based, half-open,
    on the chromosome (`offset` is where the record starts on it)."""

    chromosome: str
    header: str
    offset: int
    sequence: np.ndarray
    soft_mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    source: str = ""
    header_line: int = 1

    @property
    def end(self) -> int:
        return self.offset + len(self.sequence)


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic != _GZIP_MAGIC:
        return path.read_bytes()
    return _gunzip(path)


def _gunzip(path: Path) -> bytes:
    """Decompress every gzip member (bgzip files have many); a truncated stream names the line reached."""
    raw = path.read_bytes()
    pieces: list[bytes] = []
    position = 0
    while position < len(raw):
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        try:
            pieces.append(inflater.decompress(raw[position:]))
        except zlib.error as error:
            line = sum(p.count(b"\n") for p in pieces) + 1
            raise GenomeFormatError(path, line, f"corrupt gzip data ({error})") from None
        if not inflater.eof:
            line = sum(p.count(b"\n") for p in pieces) + 1
            raise GenomeFormatError(path, line, "gzip stream is truncated (file ends mid-stream)")
        consumed = len(raw) - position - len(inflater.unused_data)
        position += consumed
        # bgzip pads with an empty EOF member; trailing zero bytes after the last member are tolerated.
        if inflater.unused_data and not inflater.unused_data.strip(b"\x00"):
            break
    return b"".join(pieces)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _soft_mask_intervals(raw_sequence: np.ndarray, offset: int) -> np.ndarray:
    lower = _LOWER[raw_sequence]
    if not lower.any():
        return np.zeros((0, 2), np.int64)
    edges = np.flatnonzero(np.diff(np.concatenate(([False], lower, [False])).astype(np.int8)))
    return edges.reshape(-1, 2).astype(np.int64) + offset


def read_fasta(path: str | Path, keep_soft_mask: bool = True) -> list[FastaRecord]:
    """All records of a FASTA or FASTA.gz file. Raises GenomeFormatError naming file and line for a
    header-less file, an empty record, a character outside ACGTN/IUPAC, or a truncated gzip."""
    path = Path(path)
    if not path.exists():
        raise GenomeFormatError(path, None, "no such file")
    data = _read_bytes(path)
    if not data.strip():
        raise GenomeFormatError(path, 1, "file is empty (expected a FASTA header line starting with '>')")
    first = len(data) - len(data.lstrip())
    if data[first : first + 1] != b">":
        raise GenomeFormatError(
            path, _line_of(data, first), "no FASTA header: the first non-blank line must start with '>'"
        )
    buffer = np.frombuffer(data, dtype=np.uint8)
    header_starts = [first] + [i + 1 for i in _find_all(data, b"\n>", first)]
    records = []
    for index, header_start in enumerate(header_starts):
        header_end = data.find(b"\n", header_start)
        header_end = len(data) if header_end < 0 else header_end
        body_end = header_starts[index + 1] - 1 if index + 1 < len(header_starts) else len(data)
        header_line = _line_of(data, header_start)
        header = data[header_start + 1 : header_end].decode("ascii", "replace").strip()
        if not header:
            raise GenomeFormatError(path, header_line, "FASTA header has no name")
        body = buffer[header_end + 1 : body_end] if header_end < body_end else buffer[0:0]
        is_line_break = (body == _NEWLINE) | (body == _CR)
        bad = ~_VALID[body] & ~is_line_break
        if bad.any():
            at = header_end + 1 + int(np.argmax(bad))
            line_start = data.rfind(b"\n", 0, at) + 1
            char = chr(data[at]) if 32 < data[at] < 127 else repr(bytes([data[at]]))
            raise GenomeFormatError(
                path, _line_of(data, at),
                f"unexpected character {char!r} at column {at - line_start + 1} of record '{header.split()[0]}'"
                " (allowed: A C G T N and IUPAC codes, either case)",
            )
        raw_sequence = body[~is_line_break]
        if raw_sequence.size == 0:
            raise GenomeFormatError(path, header_line, f"record '{header.split()[0]}' has no sequence")
        records.append(_make_record(path, header, header_line, raw_sequence, keep_soft_mask))
    return records


def fasta_chromosomes(path: str | Path) -> list[str]:
    """The chromosome of each record of a FASTA or FASTA.gz file, from its header lines only
    (streamed: no sequence is kept, so a whole genome is listed in the time of one decompression)."""
    path = Path(path)
    if not path.exists():
        raise GenomeFormatError(path, None, "no such file")
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == _GZIP_MAGIC
    chromosomes = []
    try:
        with (gzip.open(path, "rb") if gzipped else open(path, "rb")) as handle:
            for line in handle:
                if line.startswith(b">") and line[1:].split():
                    name = line[1:].split()[0].decode("ascii", "replace")
                    region = parse_region(name)
                    chromosomes.append(region[0] if region else canonical_chromosome_name(name))
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise GenomeFormatError(path, None, f"corrupt or truncated gzip data ({error})") from None
    return list(dict.fromkeys(chromosomes))


def _make_record(
    path: Path, header: str, header_line: int, raw_sequence: np.ndarray, keep_soft_mask: bool
) -> FastaRecord:
    name = header.split()[0]
    region = parse_region(name)
    if region is not None:
        chromosome, offset, end = region
        if end - offset != raw_sequence.size:
            raise GenomeFormatError(
                path, header_line,
                f"record '{name}' names a region of {end - offset:,} bp but holds {raw_sequence.size:,} bp",
            )
    else:
        chromosome, offset = canonical_chromosome_name(name), 0
    mask = _soft_mask_intervals(raw_sequence, offset) if keep_soft_mask else np.zeros((0, 2), np.int64)
    sequence = np.frombuffer(raw_sequence.tobytes().translate(_UPPER_TABLE), dtype=np.uint8)
    return FastaRecord(chromosome, header, offset, sequence, mask, str(path), header_line)


def _find_all(data: bytes, needle: bytes, start: int):
    position = data.find(needle, start)
    while position >= 0:
        yield position
        position = data.find(needle, position + 1)
