"""`grover score-variants`: the zero-shot `variant_score` of every variant of a VCF, each read from
the genome in a window of `--flank` bases each side (+ strand, VCF coordinates), as a TSV:

    chrom  pos  id  ref  alt  score        (score = log P(alt) − log P(ref), natural log)

Every row is read and every REF checked against the genome before the model runs, so a bad row
or another assembly's VCF stops at once with one line naming the VCF line.
"""

from pathlib import Path

from grover_jax.api import load
from grover_jax.atomic_files import atomic_output
from grover_jax.errors import GroverError
from grover_jax.genome import read_genome
from grover_jax.genome.vcf import read_vcf
from grover_jax.masked_lm import DEFAULT_FLANK, variant_windows
from grover_jax.progress import progress_bar

DEFAULT_MODEL = "grover-small-hg19-chr20"
COLUMNS = ("chrom", "pos", "id", "ref", "alt", "score")


class ScoreVariantsError(GroverError):
    """An output `grover score-variants` cannot write."""


def score_vcf(fasta: list[str | Path], vcf: str | Path, out: str | Path, checkpoint: str | Path = DEFAULT_MODEL,
              flank: int = DEFAULT_FLANK, batch_size: int = 32, progress: bool = True) -> Path:
    out = Path(out)
    if not out.parent.is_dir():
        raise ScoreVariantsError(f"--out {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise ScoreVariantsError(f"--out {out}: is a folder")
    variants = read_vcf(vcf)
    windows = variant_windows(read_genome(fasta, keep_soft_mask=False), variants, flank)
    model = load(checkpoint, batch_size=batch_size)
    step = 8 * batch_size  # variants per progress update (two rows each)
    scores = []
    with progress_bar(total=len(windows), desc="score-variants", unit="variant", disable=not progress,
              mininterval=2.0) as bar:
        for first in range(0, len(windows), step):
            scores.extend(model.variant_scores(windows[first : first + step]))
            bar.update(len(windows[first : first + step]))
    with atomic_output(out) as temporary, open(temporary, "w") as handle:
        handle.write("\t".join(COLUMNS) + "\n")
        handle.writelines(f"{variant.chromosome}\t{variant.position}\t{variant.id}\t{variant.ref}\t{variant.alt}\t"
                         f"{score:.6f}\n" for variant, score in zip(variants, scores))
    return out
