"""A user's own labelled sequences: a CSV (`sequence,label[,split]`) or a FASTA + a BED of labelled
intervals. Anything unusable stops with one TaskDataError naming the file, line and field."""

import csv
import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from grover_jax.data.tasks.construction import Example
from grover_jax.data.tasks.errors import TaskDataError
from grover_jax.data.tasks.regions import DEFAULT_FOLDS, block_split, read_bed, reverse_complement
from grover_jax.genome import read_genome

# A, C, G, T and N (read as unknown); lowercase is the same base.
_NOT_DNA = re.compile(r"[^ACGTN]")
_SPLIT_NAMES = {"train": "train", "valid": "valid", "validation": "valid", "dev": "valid", "test": "test"}


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise TaskDataError(path, f"damaged or truncated gzip ({error})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise TaskDataError(path, f"not UTF-8 text (byte {error.start})") from None


def _check_sequence(path: Path, line: int, sequence: str) -> str:
    sequence = sequence.strip().upper()
    if not sequence:
        raise TaskDataError(path, "empty sequence", line, "sequence")
    bad = _NOT_DNA.search(sequence)
    if bad:
        raise TaskDataError(path, f"unexpected character {bad.group()!r} at column {bad.start() + 1} "
                                  "(DNA is A, C, G, T, N)", line, "sequence")
    return sequence


def label_ids(path: Path, labels: list[str]) -> tuple[list[int], list[str]]:
    """Labels → 0..K-1 in sorted order (numeric labels numerically); refuses a single class."""
    names = sorted(set(labels), key=lambda x: (0, int(x), x) if x.lstrip("-").isdigit() else (1, 0, x))
    if len(names) < 2:
        raise TaskDataError(path, f"labels of one class only ({names[0]!r}): a classifier needs two",
                            field="label")
    index = {name: i for i, name in enumerate(names)}
    return [index[label] for label in labels], names


def _hash_split(sequence: str) -> str:
    """Rows without coordinates: the split from the sequence's hash, so copies share a split."""
    fold = int.from_bytes(hashlib.sha256(sequence.encode()).digest()[:4], "little") % 10
    return next(split for split, folds in DEFAULT_FOLDS.items() if fold in folds)


def read_csv_task(path: str | Path) -> tuple[list[Example], list[str]]:
    """(examples, class names) of a CSV with a header naming `sequence` and `label` (and
    optionally `split`: train/valid/test; otherwise the split comes from the sequence's hash)."""
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise TaskDataError(path, "empty file (expected a header line 'sequence,label')")
    # A sequence is one field, and may be longer than the csv module's default cap of 131,072
    # characters: no field can be longer than the file.
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    reader = csv.reader(io.StringIO(text))
    try:
        return _read_csv_rows(path, reader)
    except csv.Error as error:
        raise TaskDataError(path, f"not readable as CSV ({error})", reader.line_num) from None


def _read_csv_rows(path: Path, reader: Iterator[list[str]]) -> tuple[list[Example], list[str]]:
    header = [name.strip().lower() for name in next(reader)]
    for required in ("sequence", "label"):
        if required not in header:
            raise TaskDataError(path, f"no {required!r} column in the header {','.join(header)!r}", 1, required)
    column = {name: header.index(name) for name in ("sequence", "label", "split") if name in header}
    rows = []
    for line, fields in enumerate(reader, start=2):
        if not any(f.strip() for f in fields):
            continue
        if len(fields) < len(header):
            raise TaskDataError(path, f"{len(fields)} fields, the header has {len(header)}", line)
        sequence = _check_sequence(path, line, fields[column["sequence"]])
        label = fields[column["label"]].strip()
        if not label:
            raise TaskDataError(path, "empty label", line, "label")
        if "split" in column:
            split = _SPLIT_NAMES.get(fields[column["split"]].strip().lower())
            if split is None:
                raise TaskDataError(path, f"split {fields[column['split']]!r} is not train/valid/test",
                                    line, "split")
        else:
            split = _hash_split(sequence)
        rows.append((sequence, label, split, line))
    if not rows:
        raise TaskDataError(path, "no data rows after the header")
    ids, names = label_ids(path, [row[1] for row in rows])
    examples = [Example(seq, label, "", 0, len(seq), "+", split)
                for (seq, _, split, _), label in zip(rows, ids)]
    return examples, names


def read_bed_task(fasta: str | Path | list, bed: str | Path, block_size: int) -> tuple[list[Example], list[str]]:
    """(examples, class names) of BED intervals (label in column 4, strand in column 6 if given)
    on the genome of `fasta`; split by genomic blocks like the built-in tasks."""
    bed = Path(bed)
    if not bed.read_bytes().strip():
        raise TaskDataError(bed, "empty file (expected BED rows chrom, start, end, label)")
    rows = read_bed(bed, name_required=True)
    if not rows:
        raise TaskDataError(bed, "no intervals")
    genome = read_genome(fasta)
    examples, labels = [], []
    for row in rows:
        if not row.name.strip():
            raise TaskDataError(bed, "empty label", row.line, "label")
        try:
            sequence = genome.bases(row.chromosome, row.start, row.end)
        except KeyError as error:
            raise TaskDataError(bed, f"interval not in the FASTA ({error.args[0]})", row.line, "chrom") from None
        sequence = _check_sequence(bed, row.line, sequence)
        if row.strand == "-":
            sequence = reverse_complement(sequence)
        split = block_split(row.start, row.end, block_size)
        if split is None:
            continue  # crosses a block edge: it would share bases with another split
        labels.append(row.name.strip())
        examples.append(Example(sequence, 0, row.chromosome, row.start, row.end, row.strand, split))
    if not examples:
        raise TaskDataError(bed, "every interval crosses a split-block edge; use a larger block_size")
    ids, names = label_ids(bed, labels)
    return [Example(e.sequence, i, e.chromosome, e.start, e.end, e.strand, e.split)
            for e, i in zip(examples, ids)], names
