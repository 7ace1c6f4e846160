"""The compiled core of GROVER-cycle BPE: one cycle merges the most frequent adjacent token pair.

Why numba: a cycle touches only the occurrences of the chosen pair, but in Python each touch costs
~100x what it costs compiled, and chr20 has ~45 M merge sites over 600 cycles.

State, over one int32 array of the genome's bases (codes 0-3, contigs separated by SEPARATOR):
- `token_at[i]`: the token starting at base i, or DEAD if base i was absorbed into a token to its left.
  A token keeps the index of its first base, which is therefore its genome coordinate.
- `next_at` / `prev_at`: a doubly linked list over live positions.
- `pair_count[x, y]`: the exact number of adjacent (x, y) positions (overlapping runs count every
  position: AAAA holds 3 (A, A) pairs, as HF's BpeTrainer and Sennrich's BPE count them).
- occurrence lists: every (x, y) occurrence is recorded when it is created. A new adjacency only ever
  appears next to a token made in the current cycle, so each cycle appends one block of positions per
  pair it creates (blocks are chained per pair); entries go stale and are re-checked when used.
- a lazy max-heap of (count, x, y). Counts of pairs not involving the new token only fall, so a popped
  entry whose stored count is stale is re-pushed with its current count; the first fresh entry is the max.

Tie rule (documented choice, same as HF `tokenizers` BpeTrainer): equal counts -> the pair with the
smaller left id, then smaller right id; ids are creation order (A=0, C=1, G=2, T=3, then merges).
Within a run of the chosen pair (x, x) occurrences are merged left to right without overlap.
"""

import numba as nb
import numpy as np

SEPARATOR = -1
DEAD = -2


@nb.njit(cache=True, nogil=True)
def _heap_higher(heap_count, heap_left, heap_right, i, j):
    if heap_count[i] != heap_count[j]:
        return heap_count[i] > heap_count[j]
    if heap_left[i] != heap_left[j]:
        return heap_left[i] < heap_left[j]
    return heap_right[i] < heap_right[j]


@nb.njit(cache=True, nogil=True)
def _heap_swap(heap_count, heap_left, heap_right, i, j):
    heap_count[i], heap_count[j] = heap_count[j], heap_count[i]
    heap_left[i], heap_left[j] = heap_left[j], heap_left[i]
    heap_right[i], heap_right[j] = heap_right[j], heap_right[i]


@nb.njit(cache=True, nogil=True)
def _heap_push(heap_count, heap_left, heap_right, size, count, left, right):
    if size == heap_count.size:
        capacity = 2 * size + 16
        grown_count = np.empty(capacity, np.int64)
        grown_left = np.empty(capacity, np.int32)
        grown_right = np.empty(capacity, np.int32)
        grown_count[:size] = heap_count[:size]
        grown_left[:size] = heap_left[:size]
        grown_right[:size] = heap_right[:size]
        heap_count, heap_left, heap_right = grown_count, grown_left, grown_right
    heap_count[size] = count
    heap_left[size] = left
    heap_right[size] = right
    child = size
    while child > 0:
        parent = (child - 1) // 2
        if _heap_higher(heap_count, heap_left, heap_right, child, parent):
            _heap_swap(heap_count, heap_left, heap_right, child, parent)
            child = parent
        else:
            break
    return heap_count, heap_left, heap_right, size + 1


@nb.njit(cache=True, nogil=True)
def _heap_pop(heap_count, heap_left, heap_right, size):
    count, left, right = heap_count[0], heap_left[0], heap_right[0]
    size -= 1
    heap_count[0], heap_left[0], heap_right[0] = heap_count[size], heap_left[size], heap_right[size]
    parent = 0
    while True:
        best = parent
        for child in (2 * parent + 1, 2 * parent + 2):
            if child < size and _heap_higher(heap_count, heap_left, heap_right, child, best):
                best = child
        if best == parent:
            break
        _heap_swap(heap_count, heap_left, heap_right, parent, best)
        parent = best
    return count, left, right, size


@nb.njit(cache=True, nogil=True)
def _append_block(arena, arena_size, blocks, n_blocks, positions, count):
    """Append `positions[:count]` to the arena as one block; return the grown arrays and block id."""
    if arena_size + count > arena.size:
        grown = np.empty(max(2 * arena.size, arena_size + count), arena.dtype)
        grown[:arena_size] = arena[:arena_size]
        arena = grown
    arena[arena_size : arena_size + count] = positions[:count]
    if n_blocks == blocks.shape[0]:
        grown_blocks = np.empty((2 * n_blocks + 16, 3), np.int64)
        grown_blocks[:n_blocks] = blocks[:n_blocks]
        blocks = grown_blocks
    blocks[n_blocks, 0] = arena_size
    blocks[n_blocks, 1] = count
    return arena, arena_size + count, blocks, n_blocks + 1


@nb.njit(cache=True, nogil=True)
def init_state(token_at, vocab_capacity):
    """Link the positions, count the initial pairs and build one occurrence block per pair
    (positions ascending), in two passes over the sequence."""
    n = token_at.size
    next_at = np.empty(n, token_at.dtype)
    prev_at = np.empty(n, token_at.dtype)
    for i in range(n):
        next_at[i] = i + 1 if i + 1 < n else -1
        prev_at[i] = i - 1
    pair_count = np.zeros((vocab_capacity, vocab_capacity), np.int64)
    n_pairs = 0
    for i in range(n - 1):
        if token_at[i] >= 0 and token_at[i + 1] >= 0:
            pair_count[token_at[i], token_at[i + 1]] += 1
            n_pairs += 1
    block_head = np.full((vocab_capacity, vocab_capacity), -1, np.int64)
    blocks = np.empty((64, 3), np.int64)  # (arena start, length, next block of the same pair)
    # Merges append about two entries per merged site, and merged sites are at most n: reserve 3n
    # up front (untouched pages cost nothing) instead of copying the arena as it grows.
    arena = np.empty(max(3 * n_pairs, 16), token_at.dtype)
    fill = np.zeros((vocab_capacity, vocab_capacity), np.int64)
    n_blocks = 0
    offset = 0
    for left in range(vocab_capacity):
        for right in range(vocab_capacity):
            count = pair_count[left, right]
            if count > 0:
                if n_blocks == blocks.shape[0]:
                    grown = np.empty((2 * n_blocks, 3), np.int64)
                    grown[:n_blocks] = blocks[:n_blocks]
                    blocks = grown
                blocks[n_blocks, 0] = offset
                blocks[n_blocks, 1] = count
                blocks[n_blocks, 2] = -1
                block_head[left, right] = n_blocks
                fill[left, right] = offset
                offset += count
                n_blocks += 1
    for i in range(n - 1):
        if token_at[i] >= 0 and token_at[i + 1] >= 0:
            left, right = token_at[i], token_at[i + 1]
            arena[fill[left, right]] = i
            fill[left, right] += 1
    return next_at, prev_at, pair_count, block_head, blocks, n_blocks, arena, n_pairs


@nb.njit(cache=True, nogil=True)
def _gather_occurrences(arena, blocks, block_head, left, right):
    """All recorded positions of (left, right), ascending: runs of (x, x) must merge left to right."""
    total = 0
    block = block_head[left, right]
    n_chained = 0
    while block >= 0:
        total += blocks[block, 1]
        block = blocks[block, 2]
        n_chained += 1
    positions = np.empty(total, arena.dtype)
    k = 0
    block = block_head[left, right]
    while block >= 0:
        start, length = blocks[block, 0], blocks[block, 1]
        positions[k : k + length] = arena[start : start + length]
        k += length
        block = blocks[block, 2]
    if n_chained > 1:
        positions.sort()
    return positions


@nb.njit(cache=True, nogil=True)
def pop_best_pair(heap_count, heap_left, heap_right, heap_size, pair_count, token_length, max_token_length):
    """The most frequent pair under the tie rule, or count 0 when no pair is left."""
    while heap_size > 0:
        stored, left, right, heap_size = _heap_pop(heap_count, heap_left, heap_right, heap_size)
        count = pair_count[left, right]
        if count <= 0:
            continue
        if stored != count:
            heap_count, heap_left, heap_right, heap_size = _heap_push(
                heap_count, heap_left, heap_right, heap_size, count, left, right)
            continue
        if max_token_length > 0 and token_length[left] + token_length[right] > max_token_length:
            continue  # never eligible again: token lengths do not change
        return left, right, count, heap_count, heap_left, heap_right, heap_size
    return 0, 0, 0, heap_count, heap_left, heap_right, heap_size


@nb.njit(cache=True, nogil=True)
def push_pair(heap_count, heap_left, heap_right, heap_size, pair_count, left, right):
    return _heap_push(heap_count, heap_left, heap_right, heap_size, pair_count[left, right], left, right)


@nb.njit(cache=True, nogil=True)
def _bucket(slot, z, capacity):
    left, right = slot // capacity, slot % capacity
    return left if right == z else capacity + right


@nb.njit(cache=True, nogil=True)
def merge_pair(
    token_at, next_at, prev_at, pair_count, block_head, blocks, n_blocks, arena, arena_size,
    heap_count, heap_left, heap_right, heap_size, left, right, z, use_heap,
):
    """Merge every live (left, right) occurrence into token z, left to right, updating pair counts and
    recording each new adjacency in a new occurrence block. Returns the grown arrays and the number
    of occurrences merged. `z` may be an existing token (its string already exists: AA+A vs A+AA)."""
    capacity = pair_count.shape[0]
    positions = _gather_occurrences(arena, blocks, block_head, left, right)
    block_head[left, right] = -1
    scratch_pos = np.empty(2 * positions.size + 2, token_at.dtype)
    scratch_slot = np.empty(2 * positions.size + 2, np.int64)
    n_new = 0
    n_merged = 0
    for i in positions:
        if token_at[i] != left:
            continue
        j = next_at[i]
        if j < 0 or token_at[j] != right:
            continue
        p = prev_at[i]
        k = next_at[j]
        p_token = token_at[p] if p >= 0 else SEPARATOR
        k_token = token_at[k] if k >= 0 else SEPARATOR
        if p_token >= 0:
            pair_count[p_token, left] -= 1
        pair_count[left, right] -= 1
        if k_token >= 0:
            pair_count[right, k_token] -= 1
        token_at[i] = z
        token_at[j] = DEAD
        next_at[i] = k
        if k >= 0:
            prev_at[k] = i
        if p_token >= 0:
            pair_count[p_token, z] += 1
            scratch_pos[n_new] = p
            scratch_slot[n_new] = p_token * capacity + z
            n_new += 1
        if k_token >= 0:
            pair_count[z, k_token] += 1
            scratch_pos[n_new] = i
            scratch_slot[n_new] = z * capacity + k_token
            n_new += 1
        n_merged += 1
    if n_new > 0:
        # One block per created pair, by a counting sort over its other token (stable, so each
        # block's positions stay ascending). Bucket b < capacity: pair (b, z); b >= capacity: (z, b - capacity).
        bucket_size = np.zeros(2 * capacity + 1, np.int64)
        for m in range(n_new):
            bucket_size[_bucket(scratch_slot[m], z, capacity) + 1] += 1
        bucket_start = np.cumsum(bucket_size)
        sorted_pos = np.empty(n_new, token_at.dtype)
        fill = bucket_start[:-1].copy()
        for m in range(n_new):
            b = _bucket(scratch_slot[m], z, capacity)
            sorted_pos[fill[b]] = scratch_pos[m]
            fill[b] += 1
        for b in range(2 * capacity):
            count = bucket_start[b + 1] - bucket_start[b]
            if count == 0:
                continue
            x, y = (b, z) if b < capacity else (z, b - capacity)
            arena, arena_size, blocks, n_blocks = _append_block(
                arena, arena_size, blocks, n_blocks, sorted_pos[bucket_start[b] : bucket_start[b + 1]], count)
            blocks[n_blocks - 1, 2] = block_head[x, y]
            block_head[x, y] = n_blocks - 1
            if use_heap and pair_count[x, y] > 0:
                heap_count, heap_left, heap_right, heap_size = _heap_push(
                    heap_count, heap_left, heap_right, heap_size, pair_count[x, y], x, y)
    return (blocks, n_blocks, arena, arena_size, heap_count, heap_left, heap_right, heap_size, n_merged)


@nb.njit(cache=True, nogil=True)
def live_tokens(token_at, next_at):
    """(positions, token ids) of the live tokens in order, separators excluded."""
    n_live = 0
    i = 0
    while i >= 0:
        if token_at[i] >= 0:
            n_live += 1
        i = next_at[i]
    positions = np.empty(n_live, np.int64)
    tokens = np.empty(n_live, np.int32)
    k = 0
    i = 0
    while i >= 0:
        if token_at[i] >= 0:
            positions[k] = i
            tokens[k] = token_at[i]
            k += 1
        i = next_at[i]
    return positions, tokens
