"""Whole-genome BPE in GROVER cycles at ~2.1 bytes per base, on all cores: the same merges as `learn_bpe`.

Why a third learner: `learn_bpe` visits only the chosen pair's occurrences but keeps ~28 bytes per base;
`learn_bpe_compact` keeps 2 bytes per base but rewrites every chromosome every cycle. Here the uint16
token arrays are cut into fixed blocks of `block_slots` slots, each compacted in place with its own live
length, so a merge rewrites only the blocks that hold the pair, from their first occurrence on. Each
block also keeps a presence bitset of the tokens it holds (V bits, ~0.08 byte per slot at 600 cycles
and 1,024 slots), so a cycle visits only blocks holding both tokens of the pair: late cycles pick pairs
of rare tokens and touch a small fraction of the genome.

Counts stay exact the way `bpe_compact` keeps them: a merge inside a block tallies the token before it
(read from the output, so a run sees the previous merge's token) and the one after it, and the [V, V]
table is updated from those tallies. A pair straddling two blocks is merged in a serial pass over the
block boundaries before the blocks are rewritten: the merged token takes the right token's slot and the
left block loses its last slot; for a pair (x, x) the pass carries the parity of the run of x across
the boundary, so runs still merge left to right without overlap. Boundary pairs are subtracted before
and added back after the cycle for every block the cycle may change.

Blocks are shared out over `workers` threads (the compiled pass releases the GIL); each thread tallies
into its own arrays, summed after the pass, so the merges do not depend on the thread count.
"""

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np
from numba import typed

from grover_jax.progress import progress_bar
from grover_jax.tokenizer.bpe import BpeResult, Merge, MergedVocabulary

SEPARATOR = 0xFFFF  # between contigs of one chromosome array, as in `bpe_compact.chromosome_tokens`
MAX_VOCABULARY = 0xFFFF
DEFAULT_BLOCK_SLOTS = 1024
# A cycle whose pair occurs less often than once per this many live tokens jumps from occurrence to
# occurrence; a denser one steps through each rewritten block token by token.
_SPARSE_SPACING = 32
# Below this many candidate blocks a cycle's pass runs on the calling thread: handing a few
# blocks to the pool costs more than rewriting them.
_POOL_MIN_CANDIDATES = 64


@nb.njit(cache=True, nogil=True, inline="always")
def _has(present, block, token):
    return (present[block, token >> 6] >> np.uint64(token & 63)) & np.uint64(1) != 0


@nb.njit(cache=True, nogil=True, inline="always")
def _mark(present, block, token):
    present[block, token >> 6] |= np.uint64(1) << np.uint64(token & 63)


@nb.njit(cache=True, nogil=True)
def _refresh_present(tokens, start, n_live, present, block):
    present[block, :] = 0
    for i in range(start, start + n_live):
        if tokens[i] != SEPARATOR:
            _mark(present, block, tokens[i])


@nb.njit(cache=True, nogil=True)
def _unmark_if_absent(live, present, block, token):
    """Clear `token`'s presence bit if it no longer occurs in `live` (a counting loop, which
    vectorises, where rebuilding the bitset would set bits one token at a time)."""
    occurrences = 0
    for i in range(live.size):
        occurrences += live[i] == token
    if occurrences == 0:
        present[block, token >> 6] &= ~(np.uint64(1) << np.uint64(token & 63))


@nb.njit(cache=True, nogil=True)
def _count_blocks(arrays, block_array, block_start, block_len, present, first, last, pair_count):
    """Pairs inside blocks [first, last), and each block's presence bitset (boundaries: `_add_boundaries`)."""
    for b in range(first, last):
        tokens = arrays[block_array[b]]
        start, n = block_start[b], block_len[b]
        for i in range(start, start + n - 1):
            left, right = tokens[i], tokens[i + 1]
            if left != SEPARATOR and right != SEPARATOR:
                pair_count[left, right] += 1
        _refresh_present(tokens, start, n, present, b)


@nb.njit(cache=True, nogil=True)
def _add_boundaries(block_len, first_token, last_token, new_chromosome, affected, pair_count):
    """Add the pair across each boundary between consecutive non-empty blocks of one chromosome where
    either block, or an emptied block between them, is `affected`."""
    previous = -1
    emptied_between = False
    for b in range(block_len.size):
        if new_chromosome[b]:
            previous = -1
            emptied_between = False
        if block_len[b] == 0:
            emptied_between |= affected[b]
            continue
        if previous >= 0 and (affected[previous] or affected[b] or emptied_between):
            left, right = last_token[previous], first_token[b]
            if left != SEPARATOR and right != SEPARATOR:
                pair_count[left, right] += 1
        previous = b
        emptied_between = False


@nb.njit(cache=True, nogil=True)
def _plan_cycle(arrays, block_array, block_start, block_len, first_token, last_token, new_chromosome, present,
                pair_count, x, y, z, candidates, affected, merge_left):
    """The serial part of a cycle, before the blocks are rewritten: find the blocks that may hold (x, y)
    (`candidates`), merge the occurrences that straddle a boundary, and take out of `pair_count` the
    boundary pairs the cycle may change. Returns (number of candidates, boundary merges)."""
    n_blocks = block_len.size
    n_candidates = 0
    previous = -1
    previous_consumed = False  # the previous block's first token became z at its left boundary
    for b in range(n_blocks):
        if new_chromosome[b]:
            previous = -1
        affected[b] = False
        merge_left[b] = False
        if block_len[b] == 0:
            continue
        if _has(present, b, x) and _has(present, b, y):
            affected[b] = True
            candidates[n_candidates] = b
            n_candidates += 1
        if previous >= 0 and first_token[b] == y:
            consumed_whole = previous_consumed and block_len[previous] == 1
            if not consumed_whole and last_token[previous] == x:
                merge = True
                if x == y:
                    # Left to right: the previous block's last x is still free iff the run of x that
                    # ends it (from its own start, or the token after a consumed first) is odd.
                    tokens = arrays[block_array[previous]]
                    low = block_start[previous] + (1 if previous_consumed else 0)
                    i = block_start[previous] + block_len[previous] - 1
                    run = 0
                    while i >= low and tokens[i] == x:
                        run += 1
                        i -= 1
                    merge = run % 2 == 1
                if merge:
                    merge_left[b] = True
                    affected[b] = True
                    affected[previous] = True
        previous_consumed = merge_left[b]
        previous = b

    previous = -1
    for b in range(n_blocks):
        if new_chromosome[b]:
            previous = -1
        if block_len[b] == 0:
            continue
        if previous >= 0 and (affected[previous] or affected[b]):
            left, right = last_token[previous], first_token[b]
            if left != SEPARATOR and right != SEPARATOR:
                pair_count[left, right] -= 1
        previous = b

    merged = 0
    previous = -1
    for b in range(n_blocks):
        if new_chromosome[b]:
            previous = -1
        if block_len[b] == 0:
            continue
        if merge_left[b]:
            # z takes y's slot (the first of block b); the previous block loses its last slot, x.
            tokens = arrays[block_array[previous]]
            end = block_start[previous] + block_len[previous]
            if block_len[previous] >= 2 and tokens[end - 2] != SEPARATOR:
                pair_count[tokens[end - 2], x] -= 1
            block_len[previous] -= 1
            if block_len[previous] > 0:
                last_token[previous] = tokens[end - 2]
            tokens = arrays[block_array[b]]
            start = block_start[b]
            if block_len[b] >= 2 and tokens[start + 1] != SEPARATOR:
                pair_count[y, tokens[start + 1]] -= 1
                pair_count[z, tokens[start + 1]] += 1
            tokens[start] = z
            first_token[b] = z
            if block_len[b] == 1:
                last_token[b] = z
            _mark(present, b, z)
            merged += 1
        previous = b
    return n_candidates, merged


@nb.njit(cache=True, nogil=True)
def _first_occurrence(tokens, start, n_live, x, y):
    """The first i in [0, n_live - 1) with tokens[start + i: start + i + 2] == (x, y), or -1. Tested 64
    positions at a time without an early exit and with unsigned indices (no negative-index wraparound
    test), which the compiler vectorises: ~0.13 ns per token instead of ~1."""
    if n_live < 2:  # also keeps start + n_live - 1 from wrapping below 0 as an unsigned index
        return -1
    one = np.uint64(1)
    i = np.uint64(start)
    end = np.uint64(start + n_live - 1)
    while i + np.uint64(64) <= end:
        hits = np.uint16(0)
        for j in range(np.uint64(64)):
            k = i + np.uint64(j)
            hits |= np.uint16(tokens[k] == x) & np.uint16(tokens[k + one] == y)
        if hits:
            break
        i += np.uint64(64)
    while i < end:
        if tokens[i] == x and tokens[i + one] == y:
            return np.int64(i) - start
        i += one
    return -1


@nb.njit(cache=True, nogil=True)
def _shift_left(tokens, destination, source, n, buffer):
    """tokens[destination: destination + n] = tokens[source: source + n] for destination < source, 64 at a
    time through `buffer`: copies between two arrays vectorise, a shift within one by a slot or two does not."""
    k = np.uint64(0)
    size = np.uint64(n)
    destination, source = np.uint64(destination), np.uint64(source)
    while k + np.uint64(64) <= size:
        for j in range(np.uint64(64)):
            buffer[j] = tokens[source + k + np.uint64(j)]
        for j in range(np.uint64(64)):
            tokens[destination + k + np.uint64(j)] = buffer[j]
        k += np.uint64(64)
    while k < size:
        tokens[destination + k] = tokens[source + k]
        k += np.uint64(1)


@nb.njit(cache=True, nogil=True)
def _merge_blocks(arrays, block_array, block_start, block_len, first_token, last_token, present, candidates,
                  first, last, x, y, z, sparse, neighbours):
    """Merge every (x, y) inside blocks candidates[first:last], left to right, compacting each block in
    place from its first occurrence on. neighbours[0, p] counts merges preceded (inside the block) by
    token p, neighbours[1, k] merges followed by token k, as in `bpe_compact._merge_pass`. Returns the
    number of merges. `sparse`: occurrences are far apart, so jump between them (vectorised search and
    copy) instead of stepping token by token."""
    x, y, z = np.uint16(x), np.uint16(y), np.uint16(z)
    buffer = np.empty(64, np.uint16)
    merged = 0
    current = -1
    tokens = arrays[0]
    for c in range(first, last):
        b = candidates[c]
        if block_array[b] != current:  # candidates ascend, so the list is read once per array
            current = block_array[b]
            tokens = arrays[current]
        start, n = block_start[b], block_len[b]
        hit = _first_occurrence(tokens, start, n, x, y)
        if hit < 0:
            continue
        end = start + n
        write = start + hit
        read = write
        if sparse:
            while True:  # tokens[read: read + 2] is (x, y); the output so far is tokens[start: write]
                if write > start and tokens[write - 1] != SEPARATOR:
                    neighbours[0, tokens[write - 1]] += 1
                if read + 2 < end and tokens[read + 2] != SEPARATOR:
                    neighbours[1, tokens[read + 2]] += 1
                tokens[write] = z
                write += 1
                read += 2
                merged += 1
                following = _first_occurrence(tokens, read, end - read, x, y)
                stop = end if following < 0 else read + following
                _shift_left(tokens, write, read, stop - read, buffer)
                write += stop - read
                read = stop
                if following < 0:
                    break
        else:
            while read < end:
                token = tokens[read]
                if token == x and read + 1 < end and tokens[read + 1] == y:
                    if write > start and tokens[write - 1] != SEPARATOR:
                        neighbours[0, tokens[write - 1]] += 1
                    if read + 2 < end and tokens[read + 2] != SEPARATOR:
                        neighbours[1, tokens[read + 2]] += 1
                    tokens[write] = z
                    read += 2
                    merged += 1
                else:
                    tokens[write] = token
                    read += 1
                write += 1
        block_len[b] = write - start
        first_token[b] = tokens[start]
        last_token[b] = tokens[write - 1]
        live = tokens[start:write]
        _mark(present, b, z)
        _unmark_if_absent(live, present, b, x)
        _unmark_if_absent(live, present, b, y)
    return merged


@nb.njit(cache=True, nogil=True)
def _count_tokens(arrays, block_array, block_start, block_len, counts):
    for b in range(block_len.size):
        tokens = arrays[block_array[b]]
        for i in range(block_start[b], block_start[b] + block_len[b]):
            if tokens[i] != SEPARATOR:
                counts[tokens[i]] += 1


class BlockSequence:
    """The learner's state: the chromosomes' uint16 token arrays (taken over and overwritten), cut into
    blocks of `block_slots` slots, with per block its array, first slot, live length, first and last
    token and presence bitset; and the exact [V, V] pair counts."""

    def __init__(self, chromosomes: list[np.ndarray], vocab_capacity: int, workers: int | None = None,
                 block_slots: int = DEFAULT_BLOCK_SLOTS):
        if vocab_capacity >= MAX_VOCABULARY:
            raise ValueError(f"{vocab_capacity} tokens do not fit uint16 ids (at most {MAX_VOCABULARY - 1})")
        if block_slots < 1:
            raise ValueError(f"block_slots={block_slots}: must be >= 1")
        self.arrays = typed.List([np.ascontiguousarray(c, dtype=np.uint16) for c in chromosomes])
        array_index, starts, lengths, new_chromosome, first_token, last_token = [], [], [], [], [], []
        for index, tokens in enumerate(self.arrays):
            offsets = np.arange(0, len(tokens), block_slots, dtype=np.int64)
            live = np.minimum(block_slots, len(tokens) - offsets).astype(np.int32)
            array_index.append(np.full(len(offsets), index, np.int32))
            starts.append(offsets)
            lengths.append(live)
            opening = np.zeros(len(offsets), np.bool_)
            opening[:1] = True
            new_chromosome.append(opening)
            first_token.append(tokens[offsets])
            last_token.append(tokens[offsets + live - 1])

        def joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)

        self.block_array = joined(array_index, np.int32)
        self.block_start = joined(starts, np.int64)
        self.block_len = joined(lengths, np.int32)
        self.new_chromosome = joined(new_chromosome, np.bool_)
        self.first_token = joined(first_token, np.uint16)
        self.last_token = joined(last_token, np.uint16)
        n_blocks = len(self.block_len)
        self.present = np.zeros((n_blocks, (vocab_capacity + 63) // 64), np.uint64)
        self.capacity = vocab_capacity
        self.block_slots = block_slots
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        self.n_live = int(self.block_len.sum())
        self.candidates = np.empty(n_blocks, np.int32)
        self.affected = np.ones(n_blocks, np.bool_)
        self.merge_left = np.zeros(n_blocks, np.bool_)

        def count(part: tuple[int, int]) -> np.ndarray:
            pair_count = np.zeros((vocab_capacity, vocab_capacity), np.int64)
            _count_blocks(self.arrays, self.block_array, self.block_start, self.block_len, self.present,
                          part[0], part[1], pair_count)
            return pair_count

        first, *others = self._map(count, self._parts(n_blocks)) or [np.zeros((vocab_capacity,) * 2, np.int64)]
        for other in others:
            first += other
        self.pair_count = first
        _add_boundaries(self.block_len, self.first_token, self.last_token, self.new_chromosome, self.affected,
                        self.pair_count)

    def _parts(self, n: int) -> list[tuple[int, int]]:
        """[0, n) cut into one contiguous range per worker."""
        bounds = np.linspace(0, n, self.workers + 1).astype(np.int64)
        return [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]

    def _map(self, function, parts):
        return list(self._pool.map(function, parts) if self._pool and len(parts) > 1 else map(function, parts))

    def merge(self, x: int, y: int, z: int, count: int) -> int:
        sparse = count * _SPARSE_SPACING < self.n_live
        n_candidates, merged = _plan_cycle(
            self.arrays, self.block_array, self.block_start, self.block_len, self.first_token, self.last_token,
            self.new_chromosome, self.present, self.pair_count, x, y, z, self.candidates, self.affected,
            self.merge_left)

        def rewrite(part: tuple[int, int]) -> tuple[np.ndarray, int]:
            neighbours = np.zeros((2, self.capacity), np.int64)
            part_merged = _merge_blocks(self.arrays, self.block_array, self.block_start, self.block_len,
                                        self.first_token, self.last_token, self.present, self.candidates,
                                        part[0], part[1], x, y, z, sparse, neighbours)
            return neighbours, part_merged

        parts = self._parts(n_candidates) if n_candidates >= _POOL_MIN_CANDIDATES else [(0, n_candidates)]
        inside = 0
        before = np.zeros(self.capacity, np.int64)
        after = np.zeros(self.capacity, np.int64)
        for neighbours, part_merged in self._map(rewrite, parts):
            before += neighbours[0]
            after += neighbours[1]
            inside += part_merged
        counts = self.pair_count
        counts[x, y] -= inside
        counts[:, x] -= before
        counts[:, z] += before
        counts[y, :] -= after
        counts[z, :] += after
        _add_boundaries(self.block_len, self.first_token, self.last_token, self.new_chromosome, self.affected,
                        counts)
        self.n_live -= merged + inside
        return merged + inside

    def token_counts(self, n_tokens: int) -> np.ndarray:
        counts = np.zeros(self.capacity, np.int64)
        _count_tokens(self.arrays, self.block_array, self.block_start, self.block_len, counts)
        return counts[:n_tokens]

    def close(self) -> None:
        if self._pool:
            self._pool.shutdown()


def best_pair(pair_count: np.ndarray, n_tokens: int, token_length: np.ndarray,
              max_token_length: int) -> tuple[int, int, int]:
    """The most frequent pair of the first `n_tokens` ids; ties to the smaller left id, then right id."""
    counts = pair_count[:n_tokens, :n_tokens]
    if max_token_length > 0:
        lengths = token_length[:n_tokens]
        counts = np.where(lengths[:, None] + lengths[None, :] > max_token_length, 0, counts)
    left, right = divmod(int(np.argmax(counts)), n_tokens)
    return left, right, int(counts[left, right])


def learn_bpe_blocks(
    chromosomes: list[np.ndarray], cycles: int, max_token_length: int = 0, progress: bool = True,
    workers: int | None = None, block_slots: int = DEFAULT_BLOCK_SLOTS,
) -> BpeResult:
    """`learn_bpe`'s cycles on chromosomes given as uint16 token sequences (`bpe_compact.chromosome_tokens`:
    base codes 0-3, SEPARATOR between contigs), on `workers` threads (default: all cores).

    The arrays are taken over and overwritten (that is the memory saving); pass copies to keep them."""
    if cycles < 0:
        raise ValueError(f"cycles={cycles}: must be >= 0")
    n_bases = int(sum(int(np.count_nonzero(np.asarray(c) != SEPARATOR)) for c in chromosomes))
    if n_bases == 0:
        raise ValueError("no base to learn from (every chromosome is empty)")
    capacity = 4 + cycles
    sequence = BlockSequence(chromosomes, capacity, workers, block_slots)
    vocabulary = MergedVocabulary(capacity)
    tokens, token_length = vocabulary.tokens, vocabulary.token_length
    merges = []
    bar = progress_bar(total=cycles, desc="BPE cycles (blocks)", unit="cycle", disable=not progress, mininterval=0.5)
    try:
        for _ in range(cycles):
            left, right, count = best_pair(sequence.pair_count, len(tokens), token_length, max_token_length)
            if count <= 0:
                break
            z = vocabulary.token_for(left, right)
            merged = sequence.merge(left, right, z, count)
            merges.append(Merge(tokens[left], tokens[right], count, merged))
            bar.update(1)
            bar.set_postfix_str(f"{tokens[z]} x{count:,}", refresh=False)
    finally:
        bar.close()
        sequence.close()
    return BpeResult(merges, tokens, sequence.token_counts(len(tokens)), n_bases)
