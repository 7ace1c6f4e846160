"""GROVER's fine-tuning tasks built from a genome and its annotation (docs/GROVER_METHOD.md §5).

Each function returns labelled examples with their genomic interval and split; `finalize` then
removes sequences that would appear in two splits and counts the labels. What differs from the
paper, and why, is written next to each construction and in TASKS (what the builders publish).
"""

import hashlib
from collections import Counter
from dataclasses import dataclass

import numpy as np

from grover_jax.data.tasks import motif
from grover_jax.data.tasks.regions import SPLITS, block_split, reverse_complement
from grover_jax.genome import Genome
from grover_jax.genome.bed import BedRow
from grover_jax.genome.genome import BASE_CODE
from grover_jax.tokenizer import GenomeTokenizer

# Prom300: the DNABERT/EPD promoter window, -249..+50 around the TSS on the gene's strand.
PROM300_UPSTREAM, PROM300_DOWNSTREAM = 249, 51
_ACGT = frozenset("ACGT")


@dataclass(frozen=True)
class Example:
    sequence: str
    label: int
    chromosome: str
    start: int
    end: int
    strand: str
    split: str


def _window(genome: Genome, chromosome: str, start: int, end: int) -> str | None:
    """The bases of [start, end), or None off the genome or when any base is not A/C/G/T."""
    if start < 0:
        return None
    try:
        sequence = genome.bases(chromosome, start, end)
    except KeyError:
        return None
    return sequence if len(sequence) == end - start and _ACGT.issuperset(sequence) else None


def _seed_for(*parts: object) -> int:
    """A per-example seed from its identity: examples do not depend on each other's order."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def token_shuffle(sequence: str, tokenizer: GenomeTokenizer, id_to_token: list[str], seed: int) -> str:
    """The sequence's BPE tokens in a random order (GROVER's Prom300 negatives): the same token
    counts, so a model cannot separate the classes by token frequency alone."""
    ids = tokenizer.encode(sequence, add_special_tokens=False)
    tokens = [id_to_token[i] for i in ids]
    rng = np.random.default_rng(seed)
    for _ in range(10):
        shuffled = "".join(tokens[i] for i in rng.permutation(len(tokens)))
        if shuffled != sequence:
            return shuffled
    return shuffled


def prom300(genome: Genome, tss: list[BedRow], tokenizer: GenomeTokenizer, block_size: int,
            seed: int) -> list[Example]:
    """300 bp promoters (-249..+50, strand-aware) vs the same promoters with their tokens shuffled.

    Balanced by construction: every positive has exactly one negative, in the same split.
    """
    examples = []
    id_to_token = tokenizer.id_to_token
    for row in sorted({(r.chromosome, r.start, r.strand) for r in tss}):
        chromosome, position, strand = row
        if strand == "+":
            start, end = position - PROM300_UPSTREAM, position + PROM300_DOWNSTREAM
        else:
            start, end = position - PROM300_DOWNSTREAM + 1, position + PROM300_UPSTREAM + 1
        split = block_split(start, end, block_size)
        sequence = _window(genome, chromosome, start, end) if split else None
        if sequence is None:
            continue
        if strand == "-":
            sequence = reverse_complement(sequence)
        negative = token_shuffle(sequence, tokenizer, id_to_token, _seed_for(seed, *row))
        examples.append(Example(sequence, 1, chromosome, start, end, strand, split))
        examples.append(Example(negative, 0, chromosome, start, end, strand, split))
    return examples


def promscan(genome: Genome, tss: list[BedRow], window: int, span: int, block_size: int,
             seed: int) -> list[Example]:
    """`window`-bp windows tiled over `span` bp around each TSS; label 1 if a window holds any TSS.

    The tiling grid starts at a random offset per TSS (seeded), so the TSS sits anywhere in its
    positive window, not always at the same base. Forward strand, as a scan along the genome reads.
    Unbalanced by construction (about one positive per span/window windows).
    """
    positions: dict[str, np.ndarray] = {}
    for chromosome in {r.chromosome for r in tss}:
        positions[chromosome] = np.array(sorted({r.start for r in tss if r.chromosome == chromosome}))
    n_windows = span // window
    seen = set()
    examples = []
    for chromosome, start_points in sorted(positions.items()):
        for position in start_points:
            offset = int(np.random.default_rng(_seed_for(seed, chromosome, int(position))).integers(window))
            first = int(position) - offset - (n_windows // 2) * window
            for k in range(n_windows):
                start, end = first + k * window, first + (k + 1) * window
                if (chromosome, start) in seen:
                    continue
                seen.add((chromosome, start))
                split = block_split(start, end, block_size) if start >= 0 else None
                sequence = _window(genome, chromosome, start, end) if split else None
                if sequence is None:
                    continue
                inside = np.searchsorted(start_points, end) - np.searchsorted(start_points, start)
                examples.append(Example(sequence, int(inside > 0), chromosome, start, end, "+", split))
    return examples


def ctcf(genome: Genome, sites: list[BedRow], counts_Mx4: np.ndarray, pvalue: float, window: int,
         block_size: int) -> list[Example]:
    """JASPAR CTCF motif occurrences (both strands, p < `pvalue`), `window` bp centred on each,
    label 1 (bound) if the motif overlaps a CTCF ChIP site, else 0 (unbound)."""
    pwm = motif.log_odds(counts_Mx4)
    threshold = motif.score_threshold(pwm, pvalue)
    width = len(pwm)
    by_chromosome: dict[str, np.ndarray] = {}
    for chromosome in {s.chromosome for s in sites}:
        rows = sorted((s.start, s.end) for s in sites if s.chromosome == chromosome)
        by_chromosome[chromosome] = np.array(rows, dtype=np.int64).reshape(-1, 2)
    examples = []
    for record in genome.records:
        codes = BASE_CODE[record.sequence]
        intervals = by_chromosome.get(record.chromosome, np.zeros((0, 2), np.int64))
        # Sites sorted by start; a site overlapping [a, b) has start < b and end > a.
        max_end = np.maximum.accumulate(intervals[:, 1]) if len(intervals) else intervals[:, 1]
        for hit_start, strand, _ in motif.scan(codes, pwm, threshold):
            a = record.offset + hit_start
            b = a + width
            centre = a + width // 2
            start, end = centre - window // 2, centre - window // 2 + window
            split = block_split(start, end, block_size) if start >= 0 else None
            sequence = _window(genome, record.chromosome, start, end) if split else None
            if sequence is None:
                continue
            before = np.searchsorted(intervals[:, 0], b)  # sites starting before the motif's end
            bound = before > 0 and max_end[before - 1] > a
            examples.append(Example(sequence, int(bound), record.chromosome, start, end, strand, split))
    return examples


def finalize(examples: list[Example]) -> tuple[list[Example], dict]:
    """Each sequence in one split only, once, with one label; plus label counts per split.

    A sequence found in more than one split (repeats, segmental duplications) stays in train only;
    a sequence with both labels within a split is dropped; repeated rows are kept once.
    """
    splits_of: dict[str, set[str]] = {}
    labels_of: dict[tuple[str, str], set[int]] = {}
    for example in examples:
        splits_of.setdefault(example.sequence, set()).add(example.split)
        labels_of.setdefault((example.split, example.sequence), set()).add(example.label)
    kept, seen = [], set()
    dropped = Counter()
    for example in examples:
        if len(splits_of[example.sequence]) > 1 and example.split != "train":
            if "train" in splits_of[example.sequence]:
                dropped["in_train_too"] += 1
                continue
            # In valid and test but not train: keep the valid copy.
            if example.split == "test":
                dropped["in_valid_too"] += 1
                continue
        if len(labels_of[(example.split, example.sequence)]) > 1:
            dropped["both_labels"] += 1
            continue
        if (example.split, example.sequence) in seen:
            dropped["repeated"] += 1
            continue
        seen.add((example.split, example.sequence))
        kept.append(example)
    report = {"dropped": dict(dropped), "labels": {}}
    for split in SPLITS:
        counts = Counter(e.label for e in kept if e.split == split)
        report["labels"][split] = {str(label): counts[label] for label in sorted(counts)}
    return kept, report

