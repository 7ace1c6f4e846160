"""Whole-genome BPE in GROVER cycles at 2 bytes per base: the same merges as `learn_bpe`, in ~15x less memory.

Why a second learner: `learn_bpe` keeps, per base, its token, two int32 links and ~2.5 int32
occurrence-list entries (28.4 bytes/base measured, BENCHMARKS.md: 82 GiB for the 3.1 Gb of hg19). Here the
only per-base state is the live token sequence itself, uint16, compacted in place as tokens merge
(one array per chromosome, contigs separated by SEPARATOR). A cycle finds the best pair in the small
[V, V] pair-count table, then rewrites each chromosome in one left-to-right pass that merges every
(x, y) occurrence and records the neighbours it touched. Counts are updated from those neighbour
tallies, so they stay exact; a cycle costs one pass over the live tokens instead of a visit to the
pair's occurrences, which is what the memory buys.

Exactly the semantics of `bpe_core`: every adjacent position counts (AAAA holds 3 (A, A) pairs), a
chosen pair is merged left to right without overlap, ties go to the smaller left id then the smaller
right id (ids in creation order), and pairs never span a contig. Chromosomes are independent, so a
cycle's passes run on all cores (the compiled pass releases the GIL).
"""

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np

from grover_jax.genome.genome import (
    BASES,
    check_no_overlap,
    check_split_chromosomes,
    read_genome,
    record_places,
    require_learnable_bases,
)
from grover_jax.genome.splits import parse_split_spec
from grover_jax.progress import progress_bar
from grover_jax.tokenizer.bpe import BpeResult, Merge, MergedVocabulary

SEPARATOR = np.uint16(0xFFFF)
MAX_VOCABULARY = 0xFFFF  # ids 0..65534; 65535 is the contig separator


def chromosome_tokens(contigs: Iterable[np.ndarray]) -> np.ndarray:
    """One chromosome's contigs (base codes 0-3) as the learner's uint16 sequence, SEPARATOR between."""
    parts: list[np.ndarray] = []
    for codes in contigs:
        if parts:
            parts.append(np.array([SEPARATOR], np.uint16))
        parts.append(np.asarray(codes, dtype=np.uint16))
    return np.concatenate(parts) if parts else np.zeros(0, np.uint16)


@nb.njit(cache=True, nogil=True)
def _count_pairs(tokens, n_live, pair_count):
    for i in range(n_live - 1):
        a, b = tokens[i], tokens[i + 1]
        if a != 0xFFFF and b != 0xFFFF:
            pair_count[a, b] += 1


@nb.njit(cache=True, nogil=True)
def _count_tokens(tokens, n_live, counts):
    for i in range(n_live):
        if tokens[i] != 0xFFFF:
            counts[tokens[i]] += 1


@nb.njit(cache=True, nogil=True)
def _merge_pass(tokens, n_live, left, right, z, neighbours):
    """Merge every (left, right) of tokens[:n_live] into z, left to right, compacting in place.

    neighbours[0, p] counts merges preceded by token p (pair (p, left) lost, (p, z) gained);
    neighbours[1, k] merges followed by token k ((right, k) lost, (z, k) gained). A preceding token
    is read from the output, so in a run the previous merge's z is seen, exactly as the linked-list
    core sees it. Returns (new live length, merges)."""
    write = 0
    read = 0
    merged = 0
    while read < n_live:
        token = tokens[read]
        if token == left and read + 1 < n_live and tokens[read + 1] == right:
            if write > 0 and tokens[write - 1] != 0xFFFF:
                neighbours[0, tokens[write - 1]] += 1
            if read + 2 < n_live and tokens[read + 2] != 0xFFFF:
                neighbours[1, tokens[read + 2]] += 1
            tokens[write] = z
            read += 2
            merged += 1
        else:
            tokens[write] = token
            read += 1
        write += 1
    return write, merged


class CompactSequence:
    """The learner's state: per chromosome, a uint16 token array and its live length."""

    def __init__(self, chromosomes: list[np.ndarray], vocab_capacity: int, workers: int | None = None):
        if vocab_capacity >= MAX_VOCABULARY:
            raise ValueError(f"{vocab_capacity} tokens do not fit uint16 ids (at most {MAX_VOCABULARY - 1})")
        self.tokens = [np.ascontiguousarray(c, dtype=np.uint16) for c in chromosomes]
        self.n_live = [len(c) for c in self.tokens]
        self.capacity = vocab_capacity
        self.pair_count = np.zeros((vocab_capacity, vocab_capacity), np.int64)
        for tokens, n in zip(self.tokens, self.n_live):
            _count_pairs(tokens, n, self.pair_count)
        self.workers = max(1, min(workers or os.cpu_count() or 1, len(self.tokens) or 1))
        self._pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        # Longest first, so the biggest chromosome never starts last.
        self._order = sorted(range(len(self.tokens)), key=lambda c: -self.n_live[c])

    def merge(self, left: int, right: int, z: int) -> int:
        tallies = self.merge_tokens(left, right, z)
        apply_merge_tallies(self.pair_count, left, right, z, tallies)
        return int(tallies[-1])

    def merge_tokens(self, left: int, right: int, z: int) -> np.ndarray:
        """Merge (left, right) into z in every chromosome; the pair counts are left as they were.
        Returns the tallies that update them (`apply_merge_tallies`): [before (capacity), after
        (capacity), merges], summed over chromosomes, so sums over any split of them add up too."""
        def one(c: int) -> np.ndarray:
            neighbours = np.zeros((2, self.capacity), np.int64)
            self.n_live[c], merged = _merge_pass(self.tokens[c], self.n_live[c], left, right, z, neighbours)
            return np.append(neighbours.ravel(), merged)

        results = self._pool.map(one, self._order) if self._pool else map(one, self._order)
        tallies = np.zeros(2 * self.capacity + 1, np.int64)
        for one_chromosome in results:
            tallies += one_chromosome
        return tallies

    def token_counts(self, n_tokens: int) -> np.ndarray:
        counts = np.zeros(self.capacity, np.int64)
        for tokens, n in zip(self.tokens, self.n_live):
            _count_tokens(tokens, n, counts)
        return counts[:n_tokens]

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown()


def apply_merge_tallies(pair_count: np.ndarray, left: int, right: int, z: int, tallies: np.ndarray) -> None:
    """Update pair counts, in place, for the merge of (left, right) into z that produced `tallies`."""
    capacity = pair_count.shape[0]
    before, after, total = tallies[:capacity], tallies[capacity : 2 * capacity], tallies[-1]
    pair_count[left, right] -= total
    pair_count[:, left] -= before
    pair_count[:, z] += before
    pair_count[right, :] -= after
    pair_count[z, :] += after


def best_pair(pair_count: np.ndarray, token_length: np.ndarray, max_token_length: int) -> tuple[int, int, int]:
    """The most frequent pair; ties to the smaller left id, then right id (row-major argmax)."""
    counts = pair_count
    if max_token_length > 0:
        too_long = token_length[:, None] + token_length[None, :] > max_token_length
        counts = np.where(too_long, 0, pair_count)
    flat = int(np.argmax(counts))
    left, right = divmod(flat, counts.shape[1])
    return left, right, int(counts[left, right])


def learn_bpe_compact(
    chromosomes: list[np.ndarray], cycles: int, max_token_length: int = 0, progress: bool = True,
    workers: int | None = None,
) -> BpeResult:
    """`learn_bpe`'s cycles on chromosomes given as uint16 token sequences (`chromosome_tokens`).

    The arrays are taken over and overwritten (that is the memory saving); pass copies to keep them."""
    if cycles < 0:
        raise ValueError(f"cycles={cycles}: must be >= 0")
    if not any(len(c) for c in chromosomes):
        raise ValueError("no base to learn from (every chromosome is empty)")
    capacity = len(BASES) + cycles
    sequence = CompactSequence(chromosomes, capacity, workers)
    vocabulary = MergedVocabulary(capacity)
    tokens, token_length = vocabulary.tokens, vocabulary.token_length
    n_bases = int(sum(int(np.count_nonzero(c != SEPARATOR)) for c in sequence.tokens))
    merges = []
    bar = progress_bar(total=cycles, desc="BPE cycles (compact)", unit="cycle", disable=not progress, mininterval=0.5)
    try:
        for _ in range(cycles):
            left, right, count = best_pair(sequence.pair_count, token_length, max_token_length)
            if count <= 0:
                break
            z = vocabulary.token_for(left, right)
            string = tokens[z]
            merged = sequence.merge(left, right, z)
            merges.append(Merge(tokens[left], tokens[right], count, merged))
            bar.update(1)
            bar.set_postfix_str(f"{string} x{count:,}", refresh=False)
    finally:
        bar.close()
        sequence.close()
    return BpeResult(merges, tokens, sequence.token_counts(len(tokens)), n_bases)


def read_learning_chromosomes(
    paths: list[str], split_spec: str, learn_on: str = "train",
    keep_contigs: Callable[[list[int]], list[bool]] | None = None,
) -> tuple[list[np.ndarray], list[dict]]:
    """The `learn_on` contigs of each chromosome as uint16 sequences, reading one FASTA file at a time,
    so the peak is the token arrays (2 bytes/base) plus one file's worth of reading (the largest
    chromosome, with UCSC's one-file-per-chromosome layout). Returns (sequences, source records).
    Refuses what `read_genome` refuses for all files together: records overlapping across files, a
    split naming a chromosome no file holds, no base in the `learn_on` split.

    `keep_contigs`, given the lengths of one file's `learn_on` contigs in order, says which to keep
    (a worker's share of a genome split over processes); the checks above still see every contig."""
    by_chromosome: dict[str, list[np.ndarray]] = {}
    sources: list[dict] = []
    places = []
    split_bases = all_bases = 0
    for path in paths:
        genome = read_genome(path, split_spec, keep_soft_mask=False)
        sources.extend(genome.sources)
        places.extend(record_places(genome.records))
        check_no_overlap(places)
        all_bases += sum(c.length for c in genome.contigs)
        learned = genome.split_contigs(learn_on)
        split_bases += sum(c.length for c in learned)
        if keep_contigs is not None:
            learned = [c for c, keep in zip(learned, keep_contigs([c.length for c in learned])) if keep]
        for chromosome in dict.fromkeys(c.chromosome for c in genome.contigs):
            contigs = [c for c in learned if c.chromosome == chromosome]
            if not contigs:
                continue
            # Filled contig by contig: no whole-chromosome uint8 copy on the way to uint16.
            tokens = np.full(sum(c.length for c in contigs) + len(contigs) - 1, SEPARATOR, np.uint16)
            position = 0
            for contig in contigs:
                tokens[position : position + contig.length] = genome.contig_codes(contig)
                position += contig.length + 1
            by_chromosome.setdefault(chromosome, []).append(tokens)
        del genome
    check_split_chromosomes(parse_split_spec(split_spec), (p.chromosome for p in places), paths)
    require_learnable_bases(paths, split_spec, learn_on, split_bases, all_bases)
    sequences = [
        parts[0] if len(parts) == 1 else chromosome_tokens(parts)  # records of one chromosome in several files
        for parts in by_chromosome.values()
    ]
    return sequences, sources


@nb.njit(cache=True, nogil=True)
def _replay_pass(tokens, n_live, left, right, z):
    write = 0
    read = 0
    while read < n_live:
        token = tokens[read]
        if token == left and read + 1 < n_live and tokens[read + 1] == right:
            tokens[write] = z
            read += 2
        else:
            tokens[write] = token
            read += 1
        write += 1
    return write


@nb.njit(cache=True, nogil=True)
def _replay(tokens, merges, n_ids):
    """Apply merges (rows left, right, z) in order to tokens (uint16, SEPARATOR between contigs), in
    place; a merge whose left or right token is absent is skipped without a pass."""
    present = np.zeros(n_ids, np.int64)
    for i in range(tokens.size):
        if tokens[i] != 0xFFFF:
            present[tokens[i]] += 1
    n_live = tokens.size
    for m in range(merges.shape[0]):
        left, right, z = merges[m, 0], merges[m, 1], merges[m, 2]
        if present[left] == 0 or present[right] == 0:
            continue
        before = n_live
        n_live = _replay_pass(tokens, n_live, left, right, z)
        merged = before - n_live
        present[left] -= merged
        present[right] -= merged
        present[z] += merged
    return n_live


def replay_merges_compact(
    contigs: list[np.ndarray], vocab: dict[str, int], merges: list[tuple[str, str]], token_lengths: np.ndarray,
    workers: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`replay_merges` (same output: per contig, token ids and each token's offset in the contig) at
    2 bytes per base instead of ~27: one pass per merge over each contig, contigs shared over threads."""
    base_ids = np.array([vocab[b] for b in BASES], dtype=np.uint16)
    merge_ids = np.array([(vocab[a], vocab[b], vocab[a + b]) for a, b in merges], dtype=np.int64).reshape(-1, 3)
    n_ids = max(vocab.values()) + 1

    def encode(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tokens = base_ids[codes]
        n_live = _replay(tokens, merge_ids, n_ids)
        ids = tokens[:n_live].astype(np.int32)
        offsets = np.zeros(n_live, np.int64)
        np.cumsum(token_lengths[ids[:-1]], out=offsets[1:])
        return ids, offsets

    workers = max(1, min(workers or os.cpu_count() or 1, len(contigs)))
    order = sorted(range(len(contigs)), key=lambda i: -len(contigs[i]))
    results: list = [None] * len(contigs)
    with ThreadPoolExecutor(workers) as pool:
        for index, encoded in zip(order, pool.map(lambda i: encode(contigs[i]), order)):
            results[index] = encoded
    return results
