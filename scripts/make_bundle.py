"""Rebuild the bundled default genome (grover_jax/resources/) from ../shared/data.

The bundle is a real slice of hg19 chr20 with its annotation, so that a fresh clone runs the whole
pipeline on real human sequence with no download. Run from the repo root:
    python scripts/make_bundle.py --shared ../shared/data
"""

import argparse
import gzip
import hashlib
import shutil
from pathlib import Path

from grover_jax.genome.fasta import read_fasta

CHROMOSOME, START, END = "chr20", 32_000_000, 37_000_000  # 0-based half-open: chr20:32,000,001-37,000,000
TABLES = ("tss", "genes", "exons", "CpG_islands", "CTCF", "hg19_repeats")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", default="../shared/data")
    parser.add_argument("--out", default="grover_jax/resources")
    args = parser.parse_args()
    shared, out = Path(args.shared), Path(args.out)
    (out / "annotation").mkdir(parents=True, exist_ok=True)

    (record,) = read_fasta(shared / "genome/hg19_chr20.fa.gz", keep_soft_mask=False)
    sequence = record.sequence[START:END].tobytes().decode()
    lines = [f">{CHROMOSOME}:{START + 1}-{END}"] + [sequence[i : i + 60] for i in range(0, len(sequence), 60)]
    fasta = out / "hg19_chr20_32-37Mb.fa.gz"
    with gzip.GzipFile(fasta, "wb", compresslevel=9, mtime=0) as handle:
        handle.write(("\n".join(lines) + "\n").encode())

    for table in TABLES:
        source = shared / f"annotation/hg19/chr20/{table}.bed.gz"
        with gzip.open(source, "rt") as handle:
            rows = handle.read().splitlines()
        kept = [rows[0]] + [r for r in rows[1:] if _overlaps(r)]
        with gzip.GzipFile(out / "annotation" / f"{table}.bed.gz", "wb", compresslevel=9, mtime=0) as handle:
            handle.write(("\n".join(kept) + "\n").encode())
        print(f"{table}: {len(kept) - 1} rows")
    shutil.copyfile(shared / "motifs/JASPAR2022_MA0139.1_CTCF.pfm", out / "JASPAR2022_MA0139.1_CTCF.pfm")
    print(fasta, hashlib.sha256(fasta.read_bytes()).hexdigest())


def _overlaps(row: str) -> bool:
    chrom, start, end = row.split("\t")[:3]
    return chrom == CHROMOSOME and int(start) < END and int(end) > START


if __name__ == "__main__":
    main()
