"""`grover predict`: class probabilities of sequences from a fine-tuned folder.

The sequences are FASTA records or BED intervals of a genome (a TSV with one row each), or, with
`--scan`, windows slid along them (a bedGraph of the last class's probability). They are encoded as
fine-tuning encoded its splits (`train.classifier.encode`) and scored in fixed-shape batches. A
sequence with no A, C, G or T base is not scored: its probabilities are `nan`, and a warning counts
such rows (a scan skips windows that hold anything but A, C, G and T).
"""

import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from grover_jax.atomic_files import atomic_output
from grover_jax.data.tasks.errors import FinetuneError, TaskDataError
from grover_jax.data.tasks.regions import read_bed, reverse_complement
from grover_jax.genome import read_fasta, read_genome
from grover_jax.model import BertForSequenceClassification
from grover_jax.runs import Finetuned, read_finetuned
from grover_jax.tokenizer import GenomeTokenizer, load_tokenizer
from grover_jax.train.classifier import Batch, batches, bert_apply, class_probabilities, encode


class Region(NamedTuple):
    """A scored stretch: a BED interval or a whole FASTA record."""

    name: str
    chromosome: str
    start: int
    end: int
    strand: str
    sequence: str


def load_finetuned(ft_dir: str | Path) -> tuple[Finetuned, GenomeTokenizer, Callable[[Batch], jax.Array]]:
    """(the folder's finetune.json, tokenizer, jitted batch → class probabilities) of a `grover
    finetune` folder."""
    finetuned = read_finetuned(ft_dir)
    model = BertForSequenceClassification(finetuned.encoder, finetuned.num_classes, finetuned.pooling)
    params = jax.tree.map(jnp.asarray, finetuned.params())
    apply = bert_apply(model)

    def predict(batch: Batch) -> jax.Array:
        return class_probabilities(params, batch, apply_fn=apply)

    return finetuned, load_tokenizer(finetuned.tokenizer_path), predict


def score_sequences(sequences: list[str], finetuned: Finetuned, tokenizer: GenomeTokenizer, predict: Callable,
                    batch_size: int = 64) -> np.ndarray:
    """[N, K] class probabilities, sequences encoded as in fine-tuning (at most the encoder's
    positions; a warning counts longer sequences, which are scored on their first tokens). A
    sequence without a base gets a row of NaN: a classifier's answer for [CLS] [UNK]... [SEP] says
    nothing about the sequence."""
    probabilities = np.full((len(sequences), finetuned.num_classes), np.nan)
    scored = [i for i, sequence in enumerate(sequences) if _has_bases(sequence)]
    if not scored:
        return probabilities
    ids, mask, truncated = encode([sequences[i] for i in scored], tokenizer, finetuned.encoder.max_position_embeddings)
    if truncated:
        print(f"grover: warning: {truncated} of {len(sequences)} sequences are longer than {ids.shape[1]} "
              "tokens and were scored on their first tokens; use --scan for long sequences", file=sys.stderr)
    out = []
    for batch, n in batches({"input_ids": ids, "attention_mask": mask}, batch_size, np.arange(len(ids))):
        out.append(np.asarray(predict({k: jnp.asarray(v) for k, v in batch.items()}))[:n])
    probabilities[scored] = np.concatenate(out)
    return probabilities


def _has_bases(sequence: str) -> bool:
    return any(base in sequence for base in "ACGT")


def predict_regions(ft_dir: str | Path, fasta: list[str], bed: str | None, out: str | Path, scan: bool,
                    window: int, stride: int, batch_size: int = 64) -> Path:
    """Scores of FASTA records or BED intervals (TSV), or with `scan` a bedGraph of windows."""
    if not fasta:
        raise FinetuneError("grover predict needs --fasta (the sequences, or the genome of --bed)")
    if scan and (window <= 0 or stride <= 0):
        raise FinetuneError(f"--window {window} / --stride {stride} must be positive")
    finetuned, tokenizer, predict = load_finetuned(ft_dir)
    positive = finetuned.num_classes - 1
    out = Path(out)
    regions: list[Region] = []  # a BED's intervals, or whole records
    if bed:
        genome = read_genome(fasta)
        for row in read_bed(bed):
            try:
                sequence = genome.bases(row.chromosome, row.start, row.end)
            except KeyError as error:
                raise TaskDataError(bed, f"interval not in the FASTA ({error.args[0]})", row.line, "chrom") from None
            regions.append(Region(row.name or f"{row.chromosome}:{row.start + 1}-{row.end}", row.chromosome,
                                  row.start, row.end, row.strand, sequence))
    else:
        for path in fasta:
            for record in read_fasta(path, keep_soft_mask=False):
                regions.append(Region(record.header.split()[0], record.chromosome, record.offset, record.end,
                                      "+", record.sequence.tobytes().decode("ascii")))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as temporary, open(temporary, "w") as handle:
        if not scan:
            sequences = [reverse_complement(r.sequence) if r.strand == "-" else r.sequence for r in regions]
            probabilities = score_sequences(sequences, finetuned, tokenizer, predict, batch_size)
            unscored = [region.name for region, p in zip(regions, probabilities) if np.isnan(p).all()]
            if unscored:
                print(f"grover: warning: {len(unscored)} of {len(regions)} sequences have no A, C, G or T base "
                      f"and are not scored (probabilities nan): {', '.join(unscored[:3])}"
                      + (", ..." if len(unscored) > 3 else ""), file=sys.stderr)
            names = finetuned.class_names
            handle.write("\t".join(["name", "chrom", "start", "end", "strand", *[f"p_{n}" for n in names]]) + "\n")
            handle.writelines("\t".join(map(str, region[:5])) + "\t" + "\t".join(f"{x:.6f}" for x in p) + "\n" for region, p in zip(regions, probabilities))
        else:
            handle.write(f'track type=bedGraph name="{Path(ft_dir).name}" '
                         f'description="p({finetuned.class_names[positive]}) of {window} bp windows, stride {stride}"\n')
            for _, chromosome, start, end, _, sequence in regions:
                starts = [s for s in range(0, len(sequence) - window + 1, stride)
                          if set(sequence[s : s + window]) <= set("ACGT")]
                scores = score_sequences([sequence[s : s + window] for s in starts], finetuned, tokenizer, predict,
                                         batch_size)[:, positive] if starts else []
                # Each window's score covers the stride-wide bin around its centre: bins do not overlap.
                for s, score in zip(starts, scores):
                    centre = start + s + window // 2
                    low, high = max(start, centre - stride // 2), min(end, centre - stride // 2 + stride)
                    handle.write(f"{chromosome}\t{low}\t{high}\t{score:.6f}\n")
    finetuned.warn_if_unfinished()
    return out
