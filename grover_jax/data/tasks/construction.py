"""GROVER's fine-tuning tasks built from a genome and its annotation (docs/GROVER_METHOD.md §5).

Each function returns labelled examples with their genomic interval and split; `finalize` then
removes sequences that would appear in two splits and counts the labels. What differs from the
paper, and why, is written next to each construction and in TASKS (what the builders publish).
"""

import bisect
import hashlib
from collections import Counter
from dataclasses import dataclass

import numpy as np

from grover_jax.data.tasks import motif
from grover_jax.data.tasks.regions import SPLITS, block_split, reverse_complement
from grover_jax.genome import Genome
from grover_jax.genome.bed import BedRow
from grover_jax.genome.fasta import FastaRecord
from grover_jax.genome.genome import BASE_CODE, acgt_runs
from grover_jax.tokenizer import GenomeTokenizer

# Prom300: the DNABERT/EPD promoter window, -249..+50 around the TSS on the gene's strand.
PROM300_UPSTREAM, PROM300_DOWNSTREAM = 249, 51
PROM300_WIDTH = PROM300_UPSTREAM + PROM300_DOWNSTREAM
_ACGT = frozenset("ACGT")

# promoter_gc: promoters vs random genomic windows of the same GC content.
PROMOTER_GC_GENE_TYPE = "protein_coding"  # tss.bed.gz column 7: other types' starts are less certain promoters
PROMOTER_GC_TOLERANCE = 0.02  # |GC fraction of background - of its promoter| at most this (6 of 300 bases)
# No background window within this many bases of any annotated TSS (every gene type, either strand):
# four times a promoter window's reach, so no background holds part of a promoter or its flanks.
PROMOTER_GC_MARGIN = 1000
# Random windows drawn per promoter before it is dropped unmatched. CpG-island promoters reach GC 0.8;
# on hg19 chr20 about 1.5 windows in 1000 are within 0.02 of GC 0.75, fewer far from every TSS, so 2,000
# draws dropped 9 % of its promoters (all of GC >= 0.74) and 20,000 drop about 1 %. Drawn in chunks, so
# a usual promoter costs one chunk.
PROMOTER_GC_TRIES, _PROMOTER_GC_CHUNK = 20_000, 1_000


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


def _promoter_interval(position: int, strand: str) -> tuple[int, int]:
    """[start, end) of the -249..+50 window of a TSS at `position` on `strand`."""
    if strand == "+":
        return position - PROM300_UPSTREAM, position + PROM300_DOWNSTREAM
    return position - PROM300_DOWNSTREAM + 1, position + PROM300_UPSTREAM + 1


def _promoter(genome: Genome, chromosome: str, start: int, end: int, strand: str, block_size: int) -> str | None:
    """The promoter window read on the gene's strand; None across a block edge, off the genome, or with
    a base that is not A/C/G/T."""
    sequence = _window(genome, chromosome, start, end) if block_split(start, end, block_size) else None
    if sequence is not None and strand == "-":
        sequence = reverse_complement(sequence)
    return sequence


def prom300(genome: Genome, tss: list[BedRow], tokenizer: GenomeTokenizer, block_size: int,
            seed: int) -> list[Example]:
    """300 bp promoters (-249..+50, strand-aware) vs the same promoters with their tokens shuffled.

    Balanced by construction: every positive has exactly one negative, in the same split.
    """
    examples = []
    id_to_token = tokenizer.id_to_token
    for row in sorted({(r.chromosome, r.start, r.strand) for r in tss}):
        chromosome, position, strand = row
        start, end = _promoter_interval(position, strand)
        sequence = _promoter(genome, chromosome, start, end, strand, block_size)
        if sequence is None:
            continue
        split = block_split(start, end, block_size)
        negative = token_shuffle(sequence, tokenizer, id_to_token, _seed_for(seed, *row))
        examples.append(Example(sequence, 1, chromosome, start, end, strand, split))
        examples.append(Example(negative, 0, chromosome, start, end, strand, split))
    return examples


def cumulative_gc(sequence: np.ndarray) -> np.ndarray:
    """The number of G and C bases before each position of an uppercase uint8 sequence (length n + 1),
    so the GC count of any window [a, b) is `cumulative[b] - cumulative[a]` with no pass over its bases."""
    cumulative = np.zeros(len(sequence) + 1, dtype=np.int32)
    np.cumsum((sequence == ord("G")) | (sequence == ord("C")), dtype=np.int32, out=cumulative[1:])
    return cumulative


def window_gc_fraction(cumulative: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """GC fraction of the windows [start, start + width) from `cumulative_gc` of their sequence."""
    starts = np.asarray(starts)
    return (cumulative[starts + width] - cumulative[starts]) / width


class _Background:
    """Candidate background windows on one chromosome: uniform draws of a start among the windows that lie
    inside one block of a split, tested in bulk for A/C/G/T only, GC count and distance to every TSS."""

    def __init__(self, records: list[FastaRecord], block_size: int, tss_positions: np.ndarray, width: int):
        self.width = width
        self.tss = np.sort(tss_positions)
        # The records' bases end to end ("joined" coordinates); no candidate crosses a record's end.
        joined = np.concatenate([r.sequence for r in records]) if len(records) > 1 else records[0].sequence
        self.gc = cumulative_gc(joined)
        runs = acgt_runs(joined)
        self.run_starts, self.run_ends = runs[:, 0], runs[:, 1]
        # Per split: ranges of allowed starts as (first start on the chromosome, in joined, count).
        ranges: dict[str, list[tuple[int, int, int]]] = {split: [] for split in SPLITS}
        base = 0
        for record in records:
            for block in range(record.offset // block_size, (record.end - 1) // block_size + 1):
                first = max(block * block_size, record.offset)
                last = min((block + 1) * block_size, record.end) - width  # last start inside block and record
                split = block_split(first, first + width, block_size) if last >= first else None
                if split:
                    ranges[split].append((first, base + first - record.offset, last - first + 1))
            base += len(record.sequence)
        self.ranges = {split: np.array(rows, dtype=np.int64).reshape(-1, 3) for split, rows in ranges.items()}

    def draw(self, rng: np.random.Generator, split: str, gc_count: int, max_difference: int,
             taken: list[int]) -> int | None:
        """The first of PROMOTER_GC_TRIES uniform draws in `split` that is all A/C/G/T, within
        `max_difference` G+C bases of `gc_count`, at least PROMOTER_GC_MARGIN from every TSS and
        overlapping no start in `taken` (sorted); None when no draw is."""
        ranges = self.ranges[split]
        if not len(ranges):
            return None
        ends = np.cumsum(ranges[:, 2])
        for _ in range(PROMOTER_GC_TRIES // _PROMOTER_GC_CHUNK):
            draws = rng.integers(ends[-1], size=_PROMOTER_GC_CHUNK)
            which = np.searchsorted(ends, draws, side="right")
            within = draws - (ends[which] - ranges[which, 2])
            starts, joined = ranges[which, 0] + within, ranges[which, 1] + within
            run = np.searchsorted(self.run_starts, joined, side="right") - 1
            acgt = (run >= 0) & (self.run_ends[np.maximum(run, 0)] >= joined + self.width)
            gc = self.gc[joined + self.width] - self.gc[joined]
            near_tss = (np.searchsorted(self.tss, starts + self.width + PROMOTER_GC_MARGIN)
                        - np.searchsorted(self.tss, starts - PROMOTER_GC_MARGIN)) > 0
            for start in starts[acgt & (np.abs(gc - gc_count) <= max_difference) & ~near_tss]:
                i = bisect.bisect_left(taken, start)
                if (i == len(taken) or taken[i] >= start + self.width) and (i == 0 or taken[i - 1] + self.width <= start):
                    return int(start)
        return None


def promoter_gc(genome: Genome, tss: list[BedRow], block_size: int, seed: int) -> tuple[list[Example], int]:
    """300 bp protein-coding promoters (-249..+50, strand-aware) vs random genomic windows of the same GC
    content: (examples, promoters dropped for want of a background).

    Unlike prom300's token shuffles, a background is real sequence, so a model cannot win by spotting
    shuffled text, and matching GC removes the simplest compositional cue; what is left is promoter
    biology (motifs, CpG structure beyond GC, positional grammar).

    Positives: one per distinct (chromosome, position, strand) of the TSS rows whose gene_type (column 7)
    is protein_coding, the prom300 window, reverse-complemented on '-'; dropped across a block edge or
    with a base that is not A/C/G/T. Negatives: for each positive, in sorted TSS order, the first of
    PROMOTER_GC_TRIES uniform draws (seeded by the positive and `seed`) of a 300 bp window on the
    positive's chromosome that lies inside one block of the positive's split (regions.block_split), is
    all A/C/G/T, has a GC fraction within PROMOTER_GC_TOLERANCE of the positive's, lies at least
    PROMOTER_GC_MARGIN bp from every annotated TSS (any gene type, either strand) and overlaps no earlier
    negative; reverse-complemented with probability 1/2 so strand tells nothing. A positive with no such
    draw is dropped and counted. Each positive is followed by its negative, in the same split.
    """
    width = PROM300_WIDTH
    max_difference = round(PROMOTER_GC_TOLERANCE * width)
    promoters = sorted({(r.chromosome, r.start, r.strand) for r in tss if r.extra[:1] == (PROMOTER_GC_GENE_TYPE,)})
    examples, unmatched = [], 0
    for chromosome in sorted({row[0] for row in promoters}):
        records = sorted((r for r in genome.records if r.chromosome == chromosome), key=lambda r: r.offset)
        if not records:
            continue
        tss_positions = np.array([r.start for r in tss if r.chromosome == chromosome], dtype=np.int64)
        background = _Background(records, block_size, tss_positions, width)
        taken: list[int] = []
        for row in (p for p in promoters if p[0] == chromosome):
            _, position, strand = row
            start, end = _promoter_interval(position, strand)
            sequence = _promoter(genome, chromosome, start, end, strand, block_size)
            if sequence is None:
                continue
            split = block_split(start, end, block_size)
            rng = np.random.default_rng(_seed_for(seed, *row))
            gc_count = sequence.count("G") + sequence.count("C")
            negative_start = background.draw(rng, split, gc_count, max_difference, taken)
            if negative_start is None:
                unmatched += 1
                continue
            bisect.insort(taken, negative_start)
            negative = genome.bases(chromosome, negative_start, negative_start + width)
            negative_strand = "-" if rng.random() < 0.5 else "+"
            if negative_strand == "-":
                negative = reverse_complement(negative)
            examples.append(Example(sequence, 1, chromosome, start, end, strand, split))
            examples.append(Example(negative, 0, chromosome, negative_start, negative_start + width,
                                    negative_strand, split))
    return examples, unmatched


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


def finalize(examples: list[Example], dropped_before: dict[str, int] | None = None) -> tuple[list[Example], dict]:
    """Each sequence in one split only, once, with one label; plus label counts per split.

    A sequence found in more than one split (repeats, segmental duplications) stays in train only;
    a sequence with both labels within a split is dropped; repeated rows are kept once. The report's
    "dropped" also holds `dropped_before`: what the construction itself could not make.
    """
    splits_of: dict[str, set[str]] = {}
    labels_of: dict[tuple[str, str], set[int]] = {}
    for example in examples:
        splits_of.setdefault(example.sequence, set()).add(example.split)
        labels_of.setdefault((example.split, example.sequence), set()).add(example.label)
    kept, seen = [], set()
    dropped = Counter(dropped_before or {})  # a count of 0 is kept: it says the construction dropped none
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

