"""`grover embed`: mean-pooled embeddings of FASTA records, or of a BED's intervals on a FASTA
genome, one row each, in input order.

`--out X.npy` writes the float32 [n_regions, hidden_size] matrix and, beside it, `X.tsv` naming
each row (name, chrom, start, end, strand; 0-based half-open as in BED); `--out X.npz` writes one
file holding `embeddings` and those columns as arrays. A `-` interval is embedded as its reverse
complement; `--strand both` averages each region's embedding with its reverse complement's. A
region with no A, C, G or T base is not scored: its row is NaN and a warning counts such rows.
"""

import sys
from pathlib import Path

import numpy as np

from grover_jax.api import load
from grover_jax.atomic_files import atomic_output
from grover_jax.errors import GroverError
from grover_jax.genome.intervals import Region, region_sequences
from grover_jax.progress import progress_bar

DEFAULT_MODEL = "grover-small-hg19-chr20"
SUFFIXES = (".npy", ".npz")
COLUMNS = ("name", "chrom", "start", "end", "strand")


class EmbedError(GroverError):
    """An output `grover embed` cannot write."""


def check_output(out: Path) -> None:
    """Refuse an --out that could not be written, before any work."""
    if out.suffix not in SUFFIXES:
        raise EmbedError(f"--out {out}: name it .npy (with a .tsv of the rows beside) or .npz")
    if not out.parent.is_dir():
        raise EmbedError(f"--out {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise EmbedError(f"--out {out}: is a folder")


def _has_bases(sequence: str) -> bool:
    return any(base in sequence for base in "ACGT")


def embed_regions(regions: list[Region], checkpoint: str | Path = DEFAULT_MODEL, strand: str = "forward",
                  batch_size: int = 32, progress: bool = True) -> np.ndarray:
    """[n_regions, hidden_size] mean-pooled embeddings (NaN rows for regions without a base)."""
    model = load(checkpoint, batch_size=batch_size)
    vectors = np.full((len(regions), model.hidden_size), np.nan, np.float32)
    bar = progress_bar(total=len(regions), desc="embed", unit="region", disable=not progress, mininterval=2.0)
    for first in range(0, len(regions), batch_size):
        group = [i for i in range(first, min(first + batch_size, len(regions))) if _has_bases(regions[i].sequence)]
        if group:
            vectors[group] = model.embed([regions[i].sequence for i in group], pooling="mean", strand=strand)
        bar.update(min(batch_size, len(regions) - first))
    bar.close()
    return vectors


def write_embeddings(out: Path, vectors: np.ndarray, regions: list[Region]) -> list[Path]:
    """The .npy and its .tsv, or the .npz (see the module docstring); each written whole or not at all."""
    columns = {name: [region[i] for region in regions] for i, name in enumerate(COLUMNS)}
    if out.suffix == ".npz":
        with atomic_output(out) as temporary:
            np.savez(temporary, embeddings=vectors, **{k: np.asarray(v) for k, v in columns.items()})
        return [out]
    table = out.with_suffix(".tsv")
    with atomic_output(table) as temporary, open(temporary, "w") as handle:
        handle.write("\t".join(COLUMNS) + "\n")
        handle.writelines("\t".join(map(str, region[: len(COLUMNS)])) + "\n" for region in regions)
    with atomic_output(out) as temporary:
        np.save(temporary, vectors)
    return [out, table]


def embed_fasta(fasta: list[str | Path], out: str | Path, bed: str | Path | None = None,
                checkpoint: str | Path = DEFAULT_MODEL, strand: str = "forward", batch_size: int = 32,
                progress: bool = True) -> list[Path]:
    """`grover embed`: check --out, read the regions, embed them, write the files; returns their paths."""
    out = Path(out)
    check_output(out)
    if not fasta:
        raise EmbedError("grover embed needs --fasta (the sequences, or the genome of --bed)")
    regions = region_sequences(fasta, bed)
    vectors = embed_regions(regions, checkpoint, strand, batch_size, progress)
    unscored = int(np.isnan(vectors[:, 0]).sum()) if len(regions) else 0
    if unscored:
        print(f"grover: warning: {unscored} of {len(regions)} regions have no A, C, G or T base; their rows are NaN",
              file=sys.stderr)
    return write_embeddings(out, vectors, regions)
