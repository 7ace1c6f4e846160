"""Whole-genome BPE in GROVER cycles at 2 bytes per base: the same merges as `learn_bpe`, in ~15x less memory.

Why a second learner: `learn_bpe` keeps, per base, its token, two int32 links and ~2.5 int32
occurrence-list entries (28.4 bytes/base measured, BENCHMARKS.md: 82 GiB for the 3.1 Gb of hg19). Here the
only per-base state is the live token sequence itself, uint16, compacted in place as tokens merge
(one array per chromosome, contigs separated by SEPARATOR). A cycle finds the best pair in the small
[V, V] pair-count table, then rewrites each chromosome in one left-to-right pass that merges every
(x, y) occurrence and records the neighbours it touched. Counts are updated from those neighbour
tallies, so they stay exact; a cycle costs one pass over the live tokens instead of a visit to the
pair's occurrences, which is what the memory buys.

Two things make the pass cheap. The sparse pass finds the pair's occurrences 64 tokens at a time as
the bits of a vector compare (skipping 256 at a time where there is none) instead of stepping token
by token; where the CPU compacts vectors (AVX-512 VBMI2, `vector_ops`) it compacts each 64-token block
with matches in two instructions, and takes every cycle; elsewhere it moves the stretches between
matches with memmove, and takes the cycles whose pair is rarer than one in SPARSE_SPACING tokens (from
about the 10th of 600 on chr20). The store's replay (`bpe_replay`) runs the same pass. And chromosomes
are cut into pieces, one or more per thread, each compacted on its own; the few merges that span two
pieces are settled before the pass (see CompactSequence), so one chromosome uses every core.

Exactly the semantics of `bpe_core`: every adjacent position counts (AAAA holds 3 (A, A) pairs), a
chosen pair is merged left to right without overlap, ties go to the smaller left id then the smaller
right id (ids in creation order), and pairs never span a contig.
"""

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numba as nb
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

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
from grover_jax.tokenizer.bpe import BpeResult, Merge, MergedVocabulary, share_longest_first
from grover_jax.tokenizer.vector_ops import VECTOR_COMPRESS, compress_block, move_tokens, popcount

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
def _write_merge(tokens, write, at, end, z, neighbours):
    """Write z at tokens[write] for the pair at tokens[at:at + 2], tallying its neighbours: the token
    before it in the output (neighbours[0]) and the one after it in the input (neighbours[1]), each
    only inside the range [.., end) and never a contig separator."""
    if write > 0 and tokens[write - 1] != 0xFFFF:
        neighbours[0, tokens[write - 1]] += 1
    if at + 2 < end and tokens[at + 2] != 0xFFFF:
        neighbours[1, tokens[at + 2]] += 1
    tokens[write] = z


@nb.njit(cache=True, nogil=True)
def _merge_pass(tokens, read, end, left, right, z, neighbours):
    """Merge every (left, right) of tokens[read:end] into z, left to right, writing the result from
    tokens[0] on (read is 0 or 1, so the output never overtakes the input).

    The range is taken alone: neighbours outside it are not tallied. neighbours[0, p] counts merges
    preceded by token p (pair (p, left) lost, (p, z) gained); neighbours[1, k] merges followed by
    token k ((right, k) lost, (z, k) gained). A preceding token is read from the output, so in a run
    the previous merge's z is seen, exactly as the linked-list core sees it. Returns (output length,
    merges). One step per token: the pass for a pair that is everywhere."""
    write = 0
    merged = 0
    while read < end:
        token = tokens[read]
        if token == left and read + 1 < end and tokens[read + 1] == right:
            _write_merge(tokens, write, read, end, z, neighbours)
            read += 2
            merged += 1
        else:
            tokens[write] = token
            read += 1
        write += 1
    return write, merged


_BLOCK = 64  # tokens whose pair matches the sparse pass finds at once, as the bits of a uint64


@nb.njit(cache=True, nogil=True, inline="always")
def _matches(tokens, at, left, right):
    """Bit i set where (tokens[at + i], tokens[at + i + 1]) == (left, right), i < 64."""
    # Slices, so the loop counts from 0 and LLVM vectorizes it (with an offset it stays scalar).
    here, after = tokens[at : at + _BLOCK], tokens[at + 1 : at + _BLOCK + 1]
    bits = np.uint64(0)
    for i in range(_BLOCK):
        bits |= np.uint64(((here[i] ^ left) | (after[i] ^ right)) == 0) << np.uint64(i)
    return bits


@nb.njit(cache=True, nogil=True, inline="always")
def _any_match(tokens, at, left, right):
    """Whether the pair occurs at any of tokens[at:at + 256] (a vectorized count, no early exit)."""
    here, after = tokens[at : at + 256], tokens[at + 1 : at + 257]
    hits = 0
    for i in range(256):
        hits += ((here[i] ^ left) | (after[i] ^ right)) == 0
    return hits


# move_tokens is C's memmove: numba's own copy loops do not vectorize when source and target are in one
# array, and were 1.3-1.5x slower over a whole pass.
@nb.njit(cache=True, nogil=True, inline="always")
def _merge_at(tokens, write, read, p, end, z, neighbours):
    """Move tokens[read:p] down to `write`, then z for the pair at p (tallied where neighbours has rows)."""
    if write != read:
        move_tokens(tokens, read, write, p - read)
    write += p - read
    if neighbours.shape[0]:
        _write_merge(tokens, write, p, end, z, neighbours)
    else:
        tokens[write] = z
    return write + 1, p + 2


_EVEN_BITS = np.uint64(0x5555555555555555)
_LOW_HALF = np.uint64(0xFFFFFFFF)


@nb.njit(cache=True, nogil=True, inline="always")
def _first_of_each_two(bits):
    """Of each run of set bits (a run of (x, x) matches), the first, third, ...: merges left to right."""
    starts = bits & ~(bits << np.uint64(1))
    runs_at_even = bits & ~(bits + (starts & _EVEN_BITS))  # adding a run's lowest bit clears the run
    return (runs_at_even & _EVEN_BITS) | (bits & ~runs_at_even & ~_EVEN_BITS)


@nb.njit(cache=True, nogil=True, inline="always")
def _bits_before(bits, at, index):
    """How many of a block's bits (bit i: token at + i) lie before token `index`."""
    if index - at >= _BLOCK:
        return popcount(bits)
    if index <= at:
        return 0
    return popcount(bits & ((np.uint64(1) << np.uint64(index - at)) - np.uint64(1)))


@nb.njit(cache=True, nogil=True, inline="always")
def _tally_block(tokens, at, write, end, z, bits, first_taken, neighbours):
    """`_write_merge`'s tallies for a block's merges (bit i: the pair at at + i), read before the block
    is compacted: write is where its output starts, first_taken whether a merge just before the block
    took its first token. The token before a merge in the output is z where a merge ended just before
    it, else the input's (the output's for the block's first token)."""
    z_before = (bits << np.uint64(2)) | (np.uint64(first_taken) << np.uint64(1))
    while bits:
        i = trailing_zeros(bits)
        p = at + i
        if (z_before >> np.uint64(i)) & np.uint64(1):
            neighbours[0, z] += 1
        elif i == 0:
            if write > 0 and tokens[write - 1] != 0xFFFF:
                neighbours[0, tokens[write - 1]] += 1
        elif tokens[p - 1] != 0xFFFF:
            neighbours[0, tokens[p - 1]] += 1
        if p + 2 < end and tokens[p + 2] != 0xFFFF:
            neighbours[1, tokens[p + 2]] += 1
        bits &= bits - np.uint64(1)


@nb.njit(cache=True, nogil=True)
def _merge_pass_sparse(tokens, read, end, left, right, z, neighbours, lo=0, hi=0, compress=False):
    """`_merge_pass`'s result and tallies (none where neighbours has no rows) for a rarer pair: matches
    found 64 at a time as the bits of a uint64 (a stretch of 256 without one skipped after one vector
    count), the tokens between two merges moved with memmove; or, with `compress` (where the CPU
    compacts vectors, `vector_ops`), a block with matches compacted in two vector instructions.
    Also returns how many merges lay before the token indices lo and hi (the replay's
    frontiers; no merge spans them)."""
    left16, right16, z16 = np.uint16(left), np.uint16(right), np.uint16(z)
    write, merged, before_lo, before_hi = 0, 0, 0, 0
    at = read
    taken_first = False  # a merge at the previous block's last bit took this block's first token
    while at + _BLOCK < end:
        if at + 256 < end and not taken_first and _any_match(tokens, at, left16, right16) == 0:
            at += 256
            continue
        bits = _matches(tokens, at, left16, right16)
        if taken_first:
            bits &= ~np.uint64(1)
            taken_first = False
        if compress and bits:
            if left == right:
                bits = _first_of_each_two(bits)
            if at > read:  # read is at most at + 1, after a merge at the previous block's last bit
                if write != read:
                    move_tokens(tokens, read, write, at - read)
                write += at - read
            if neighbours.shape[0]:
                _tally_block(tokens, at, write, end, z16, bits, read > at, neighbours)
            kept = ~((bits << np.uint64(1)) | np.uint64(read > at))  # a merge drops its right token
            compress_block(tokens, at, write, z16, bits & _LOW_HALF, kept & _LOW_HALF)
            write += popcount(kept & _LOW_HALF)
            compress_block(tokens, at + 32, write, z16, bits >> np.uint64(32), kept >> np.uint64(32))
            write += popcount(kept >> np.uint64(32))
            merged += popcount(bits)
            before_lo += _bits_before(bits, at, lo)
            before_hi += _bits_before(bits, at, hi)
            taken_first = (bits >> np.uint64(63)) != 0
            read = at + _BLOCK + taken_first
            at += _BLOCK
            continue
        while bits:
            i = trailing_zeros(bits)
            write, read = _merge_at(tokens, write, read, at + i, end, z16, neighbours)
            merged += 1
            before_lo += at + i < lo
            before_hi += at + i < hi
            bits &= bits - np.uint64(1)
            if left == right:  # in a run, the token after a merged pair cannot start the next one
                if i == _BLOCK - 1:
                    taken_first = True
                else:
                    bits &= ~(np.uint64(1) << np.uint64(i + 1))
        at += _BLOCK
    p = max(at, read)
    while p + 1 < end:
        if tokens[p] == left16 and tokens[p + 1] == right16:
            write, read = _merge_at(tokens, write, read, p, end, z16, neighbours)
            merged += 1
            before_lo += p < lo
            before_hi += p < hi
            p += 2
        else:
            p += 1
    if write != read:
        move_tokens(tokens, read, write, end - read)
    return write + end - read, merged, before_lo, before_hi


@nb.njit(cache=True, nogil=True)
def _trailing_run(tokens, n_live, token):
    """How many tokens[:n_live] at the end equal token."""
    run = 0
    while run < n_live and tokens[n_live - 1 - run] == token:
        run += 1
    return run


# A pair at most once in this many live tokens takes the sparse pass. With vector compaction the sparse
# pass is the faster at every density (chr20, 1 thread: 5.6 -> 4.0 s for 600 cycles), so it takes all.
SPARSE_SPACING = 0 if VECTOR_COMPRESS else 64
# Chromosomes are cut into pieces for threads only down to this many tokens; a piece under 4 live
# tokens joins its chromosome back into one (so the joins below always have tokens to spare).
MIN_PIECE = 1 << 20
_MIN_JOINED = 4


class CompactSequence:
    """The learner's state: per chromosome, a uint16 token array, cut into pieces that are compacted
    each on its own, so one chromosome's pass shares the cores.

    A piece is a view of its chromosome's array whose first `live` tokens are the sequence; `joined[i]`
    says piece i continues into piece i + 1 (same chromosome). A cycle first settles each join
    sequentially (does a merge span it? that needs, for a run of one token, the run's parity), then
    merges every piece on its own range (a spanning merge's z is written by the left piece, its right
    token dropped by the right one) on the threads, then corrects the counts of the pairs across joins.
    The result is the single-pass one exactly (tests cut pieces of a few tokens)."""

    def __init__(self, chromosomes: list[np.ndarray], vocab_capacity: int, workers: int | None = None,
                 min_piece: int | None = MIN_PIECE):
        if vocab_capacity >= MAX_VOCABULARY:
            raise ValueError(f"{vocab_capacity} tokens do not fit uint16 ids (at most {MAX_VOCABULARY - 1})")
        self.tokens = [np.ascontiguousarray(c, dtype=np.uint16) for c in chromosomes]
        self.capacity = vocab_capacity
        self.pair_count = np.zeros((vocab_capacity, vocab_capacity), np.int64)
        for tokens in self.tokens:
            _count_pairs(tokens, len(tokens), self.pair_count)
        total = sum(len(t) for t in self.tokens)
        self.workers = max(1, workers or os.cpu_count() or 1)
        # Pieces: a chromosome longer than its share of the threads is cut evenly (min_piece None: never).
        piece_length = max(min_piece, -(-total // self.workers)) if min_piece else 0
        self.pieces, self.live, self.chromosome_of = [], [], []
        for c, tokens in enumerate(self.tokens):
            n = max(1, -(-len(tokens) // piece_length)) if piece_length else 1
            bounds = [len(tokens) * k // n for k in range(n + 1)]
            for a, b in pairwise(bounds):
                self.pieces.append(tokens[a:b])
                self.live.append(b - a)
                self.chromosome_of.append(c)
        self.workers = min(self.workers, len(self.pieces) or 1)
        self._pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None

    @property
    def joined(self) -> list[bool]:
        return [a == b for a, b in pairwise(self.chromosome_of)]

    def live_tokens(self) -> int:
        return sum(self.live)

    def bases(self) -> int:
        return sum(int(np.count_nonzero(p[:n] != SEPARATOR)) for p, n in zip(self.pieces, self.live))

    def _join_short_pieces(self) -> None:
        """Put a chromosome whose joined pieces include one under _MIN_JOINED live tokens back into one piece."""
        short = {c for i, (c, joined) in enumerate(zip(self.chromosome_of, self.joined))
                 if joined and min(self.live[i], self.live[i + 1]) < _MIN_JOINED}
        for c in short:
            indices = [i for i, owner in enumerate(self.chromosome_of) if owner == c]
            array, position = self.tokens[c], 0
            for i in indices:
                piece, n = self.pieces[i], self.live[i]
                array[position : position + n] = piece[:n]  # numpy moves overlapping slices correctly
                position += n
            first = indices[0]
            self.pieces[first], self.live[first] = array, position
            for i in reversed(indices[1:]):
                del self.pieces[i], self.live[i], self.chromosome_of[i]

    def merge(self, left: int, right: int, z: int) -> int:
        """Merge (left, right) into z everywhere and update the pair counts; returns the merges."""
        self._join_short_pieces()
        skip_first, ends_in_merge, across_before = self._settle_joins(left, right)
        tallies = self.merge_tokens(left, right, z, skip_first, ends_in_merge)
        apply_merge_tallies(self.pair_count, left, right, z, tallies)
        # Merges inside pieces do not see the pairs across joins: count them out as they were, in as they are.
        for pairs, sign in ((across_before, -1), (self._pairs_across_joins(z, ends_in_merge), 1)):
            for a, b in pairs:
                if a != SEPARATOR and b != SEPARATOR:
                    self.pair_count[a, b] += sign
        return int(tallies[-1]) + sum(ends_in_merge)

    def _settle_joins(self, left: int, right: int) -> tuple[list[int], list[int], list[tuple[int, int]]]:
        """Which joins a merge spans, left to right: (skip_first: the piece's first token went to the
        merge before it, ends_in_merge: the piece ends with that merge's z, the pairs across the joins
        before the cycle)."""
        n = len(self.pieces)
        skip_first, ends_in_merge = [0] * n, [0] * n
        across_before = []
        for i, joined in enumerate(self.joined):
            if not joined:
                continue
            piece, live, after = self.pieces[i], self.live[i], self.pieces[i + 1]
            x, y = int(piece[live - 1]), int(after[0])
            spans = x == left and y == right
            if spans and left == right:
                # In a run of one token, merges start at the run's 1st, 3rd, ... free token.
                run = _trailing_run(piece, live, left)
                free = run if run < live else live - skip_first[i]  # the first token may be taken
                spans = free % 2 == 1
            if spans:
                ends_in_merge[i] = skip_first[i + 1] = 1
                across_before += [(int(piece[live - 2]), x), (x, y), (y, int(after[1]))]
            else:
                across_before.append((x, y))
        return skip_first, ends_in_merge, across_before

    def _pairs_across_joins(self, z: int, ends_in_merge: list[int]) -> list[tuple[int, int]]:
        """The pairs across the joins after the cycle (a spanning merge's z is its left piece's last token)."""
        pairs = []
        for i, joined in enumerate(self.joined):
            if joined:
                piece, live, first_after = self.pieces[i], self.live[i], int(self.pieces[i + 1][0])
                pairs += [(int(piece[live - 2]), z), (z, first_after)] if ends_in_merge[i] else [
                    (int(piece[live - 1]), first_after)]
        return pairs

    def merge_tokens(self, left: int, right: int, z: int, skip_first: list[int] | None = None,
                     ends_in_merge: list[int] | None = None) -> np.ndarray:
        """Merge (left, right) into z inside every piece (skipping a piece's first token, or ending it
        with z, where a merge spans its join); the pair counts are left as they were. Returns the
        tallies that update them (`apply_merge_tallies`): [before (capacity), after (capacity),
        merges], summed over pieces, so sums over any split of the chromosomes add up too. Without
        the join arguments, pieces must be whole chromosomes."""
        if skip_first is None:
            if any(self.joined):
                raise ValueError("pieces of one chromosome need merge(), which settles their joins")
            skip_first = ends_in_merge = [0] * len(self.pieces)
        count = int(self.pair_count[left, right])
        sparse = count * SPARSE_SPACING < self.live_tokens()
        merge_pass = _merge_pass_sparse if sparse else _merge_pass
        vector_compress = (0, 0, VECTOR_COMPRESS) if sparse else ()

        def one_thread(group: list[int]) -> np.ndarray:
            neighbours, merges = np.zeros((2, self.capacity), np.int64), 0
            for i in group:
                piece = self.pieces[i]
                written, merged = merge_pass(piece, skip_first[i], self.live[i] - ends_in_merge[i], left, right, z,
                                             neighbours, *vector_compress)[:2]
                if ends_in_merge[i]:
                    piece[written] = z
                    written += 1
                self.live[i] = written
                merges += merged
            return np.append(neighbours.ravel(), merges)

        # One task per thread: many small chromosomes would otherwise cost a task each per cycle.
        groups = share_longest_first(self.live, self.workers)
        results = self._pool.map(one_thread, groups) if self._pool else map(one_thread, groups)
        tallies = np.zeros(2 * self.capacity + 1, np.int64)
        for one_group in results:
            tallies += one_group
        return tallies

    def token_counts(self, n_tokens: int) -> np.ndarray:
        counts = np.zeros(self.capacity, np.int64)
        for piece, n in zip(self.pieces, self.live):
            _count_tokens(piece, n, counts)
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


def learn_cycles(
    pair_count: np.ndarray, cycles: int, merge: Callable[[int, int, int], int], max_token_length: int,
    progress: bool, description: str,
) -> tuple[list[Merge], MergedVocabulary]:
    """GROVER's cycles over counts kept by the caller: pick the best pair, name its token, and let
    `merge(left, right, z)` merge it everywhere, update `pair_count` and return how many it merged."""
    vocabulary = MergedVocabulary(pair_count.shape[0])
    tokens, token_length = vocabulary.tokens, vocabulary.token_length
    merges = []
    bar = progress_bar(total=cycles, desc=description, unit="cycle", disable=not progress, mininterval=0.5)
    try:
        for _ in range(cycles):
            left, right, count = best_pair(pair_count, token_length, max_token_length)
            if count <= 0:
                break
            z = vocabulary.token_for(left, right)
            merged = merge(left, right, z)
            merges.append(Merge(tokens[left], tokens[right], count, merged))
            bar.update(1)
            bar.set_postfix_str(f"{tokens[z]} x{count:,}", refresh=False)
    finally:
        bar.close()
    return merges, vocabulary


def learn_bpe_compact(
    chromosomes: list[np.ndarray], cycles: int, max_token_length: int = 0, progress: bool = True,
    workers: int | None = None, min_piece: int | None = MIN_PIECE,
) -> BpeResult:
    """`learn_bpe`'s cycles on chromosomes given as uint16 token sequences (`chromosome_tokens`), on
    `workers` threads (chromosomes cut into pieces of at least `min_piece` tokens to share them).

    The arrays are taken over and overwritten (that is the memory saving); pass copies to keep them."""
    if cycles < 0:
        raise ValueError(f"cycles={cycles}: must be >= 0")
    if not any(len(c) for c in chromosomes):
        raise ValueError("no base to learn from (every chromosome is empty)")
    capacity = len(BASES) + cycles
    sequence = CompactSequence(chromosomes, capacity, workers, min_piece)
    n_bases = sequence.bases()
    try:
        merges, vocabulary = learn_cycles(sequence.pair_count, cycles, sequence.merge, max_token_length, progress,
                                          "BPE cycles (compact)")
    finally:
        sequence.close()
    return BpeResult(merges, vocabulary.tokens, sequence.token_counts(len(vocabulary.tokens)), n_bases)


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
