"""BED files, optionally gzipped: the one reader for every BED here (task labels and annotation
tables, the analyses' repeat and region annotations). 0-based half-open intervals; `#`, `track` and
`browser` lines are skipped; a row that cannot be read stops with one line naming file, line and field."""

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

from grover_jax.genome.errors import GenomeFormatError
from grover_jax.genome.naming import canonical_chromosome_name


@dataclass(frozen=True)
class BedRow:
    chromosome: str
    start: int
    end: int
    name: str
    strand: str
    line: int
    # Columns after the sixth, as text: an annotation table's own fields (tss.bed.gz: gene_type,
    # level, source), read by the task that needs them.
    extra: tuple[str, ...] = ()


def read_bed(path: str | Path, name_required: bool = False) -> list[BedRow]:
    """Every interval of the BED at `path`, in file order; a missing strand reads as `+`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such BED file")
    with open(path, "rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"  # by content: a `.bed.gz` name is not always gzip, nor the reverse
    rows = []
    try:
        # Lines are decoded one by one, so a byte that is not UTF-8 is reported at its own line.
        with (gzip.open if gzipped else open)(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise GenomeFormatError(path, number, f"not UTF-8 text (byte 0x{raw[error.start]:02x} at "
                                                          f"column {error.start + 1})") from None
                row = _read_row(path, number, text, name_required)
                if row is not None:
                    rows.append(row)
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise GenomeFormatError(path, None, f"damaged or truncated gzip ({error})") from None
    return rows


def _read_row(path: Path, number: int, text: str, name_required: bool) -> BedRow | None:
    """Line `number` as an interval (None for blank, comment, `track` and `browser` lines)."""
    if not text.strip() or text.startswith(("#", "track", "browser")):
        return None
    fields = text.rstrip("\r\n").split("\t")
    if len(fields) < 3:
        fields = text.split()
    if len(fields) < 3:
        raise GenomeFormatError(path, number, "expected at least 3 tab-separated columns (chrom, start, end)")
    try:
        start, end = int(fields[1]), int(fields[2])
    except ValueError:
        raise GenomeFormatError(path, number, f"start/end {fields[1]!r}/{fields[2]!r} are not integers",
                                "start") from None
    if not 0 <= start < end:
        raise GenomeFormatError(path, number, f"interval {start}-{end} is empty or negative", "end")
    if name_required and len(fields) < 4:
        raise GenomeFormatError(path, number, "missing the label column (4th, BED name)", "label")
    name = fields[3] if len(fields) > 3 else ""
    strand = fields[5] if len(fields) > 5 and fields[5] in ("+", "-") else "+"
    return BedRow(canonical_chromosome_name(fields[0]), start, end, name, strand, number, tuple(fields[6:]))
