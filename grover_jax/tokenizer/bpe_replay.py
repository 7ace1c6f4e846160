"""Replay a learned merge list over new sequence, window by window: the token store's and fine-tuning's
encoder, the same tokens as HF `tokenizers` on the saved tokenizer.json.

Replaying 600 merges over a whole chromosome is 600 passes over memory that is not in cache. Here each
contig is cut into windows of WINDOW bases, each widened by MARGIN bases of its neighbours, and every
merge runs over one window while it stays in cache (2 bytes per base, compacted in place as in
`bpe_compact`). Short contigs are packed into one window, SEPARATOR between them.

A window does not see the sequence past an edge that cuts a contig, so near such an edge its tokens
may differ from the whole contig's. Before each merge (x, y) the replay moves a frontier in from each
open edge past every token whose fate could depend on the unseen side: at the left, a first token
equal to y (the unseen token before it may be an x), at the right a last token equal to x, and for
a merge (x, x) the whole run of x at the edge (its pairing depends on the run's parity). Nothing
merges across a frontier, so the tokens between the two frontiers are exactly the whole contig's.
Neighbouring windows are joined at the left frontier of the right one, which must lie inside the
certain part of the left one; on chr20 the frontiers move under 100 bases, and where two do not
overlap the contig is replayed again with margins eight times wider, finally as one window.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numba as nb
import numpy as np

from grover_jax.genome.genome import BASES
from grover_jax.tokenizer.bpe import replay_merges_linked
from grover_jax.tokenizer.bpe_compact import SEPARATOR, _merge_pass_sparse

WINDOW = 1 << 16  # bases: 128 KiB of uint16 tokens, inside a core's L2 cache
MARGIN = 256  # bases of each neighbour a window also replays


@nb.njit(nogil=True)
def _replay_window(tokens, n, merges, token_length, present, open_left, open_right, certain):
    """Replay merges (rows left, right, z) over tokens[:n] in place; returns the live length.
    certain = [first, end): the bases whose tokens are the whole contig's (the module docstring), first
    > end when the frontiers met. A window with an open edge holds one contig piece, no separator."""
    present[:] = 0
    end = 0
    for i in range(n):
        if tokens[i] != SEPARATOR:
            present[tokens[i]] += 1
            end += token_length[tokens[i]]
    first = 0
    lo, hi = 0, n  # token indices of the certain stretch
    no_tallies = np.zeros((0, 0), np.int64)
    for m in range(merges.shape[0]):
        left, right, z = merges[m, 0], merges[m, 1], merges[m, 2]
        if open_left:
            if left == right:
                while lo < hi and tokens[lo] == left:
                    first += token_length[left]
                    lo += 1
            elif lo < hi and tokens[lo] == right:
                first += token_length[right]
                lo += 1
        if open_right:
            if left == right:
                while hi > lo and tokens[hi - 1] == left:
                    end -= token_length[left]
                    hi -= 1
            elif hi > lo and tokens[hi - 1] == left:
                end -= token_length[left]
                hi -= 1
        if lo >= hi and (open_left or open_right):
            certain[0], certain[1] = 1, 0
            return n
        if present[left] == 0 or present[right] == 0 or (left == right and present[left] < 2):
            continue
        n_after, _, before_lo, before_hi = _merge_pass_sparse(tokens, 0, n, left, right, z, no_tallies, lo, hi)
        present[left] -= n - n_after
        present[right] -= n - n_after
        present[z] += n - n_after
        n = n_after
        lo -= before_lo
        hi -= before_hi
    certain[0], certain[1] = first, end
    return n


_PACKED, _PIECE = 0, 1  # a window of whole contigs (SEPARATOR between), or one piece of a contig


@nb.njit(nogil=True)
def _fill_window(codes, contig_start, row, base_ids, scratch):
    """The window's bases as token ids in scratch (SEPARATOR between packed contigs); returns the count."""
    kind, c_first, c_last, start, end = row[0], row[1], row[2], row[3], row[4]
    n = 0
    if kind == _PIECE:
        for i in range(contig_start[c_first] + start, contig_start[c_first] + end):
            scratch[n] = base_ids[codes[i]]
            n += 1
        return n
    for c in range(c_first, c_last + 1):
        if c > c_first:
            scratch[n] = SEPARATOR
            n += 1
        for i in range(contig_start[c], contig_start[c + 1]):
            scratch[n] = base_ids[codes[i]]
            n += 1
    return n


@nb.njit(nogil=True)
def _replay_run(codes, contig_start, windows, first_window, last_window, scratch_size, merges, token_length,
                base_ids, ids, offsets, contig_rows, failed):
    """Replay windows[first_window:last_window] in order (rows: kind, first contig, last contig, start,
    end, open left, open right), appending each contig's tokens to ids / offsets (bases into the contig);
    contig_rows[c] = this run's [start, end) of contig c. A piece's tokens are appended from its left
    frontier on and cut back to the next piece's left frontier once that piece is replayed (for the
    run's last window, the next run's first is replayed for it); a contig whose neighbouring frontiers
    do not overlap is marked failed. Each window is replayed in a scratch array that stays in cache,
    and only live tokens are written out: fresh pages cost more than the replay."""
    present = np.zeros(token_length.size, np.int64)
    certain = np.zeros(2, np.int64)
    scratch = np.empty(scratch_size, np.uint16)
    out = 0
    piece_from = 0  # where the current piece's tokens start in ids
    previous_end = 0  # the end of the previous piece's certain bases
    for w in range(first_window, last_window + 1):
        if w == windows.shape[0]:
            break
        kind, c = windows[w, 0], windows[w, 1]
        start, open_left, open_right = windows[w, 3], windows[w, 5], windows[w, 6]
        # Not its contig's first piece (a margin wider than the window leaves later pieces at base 0 too).
        continues = kind == _PIECE and w > 0 and windows[w - 1, 0] == _PIECE and windows[w - 1, 1] == c
        if w == last_window and not continues:
            break  # the next run's first window only matters when it continues this run's contig
        n = _fill_window(codes, contig_start, windows[w], base_ids, scratch)
        n = _replay_window(scratch, n, merges, token_length, present, open_left, open_right, certain)
        first, certain_end = start + certain[0], start + certain[1]
        if kind == _PACKED:
            contig_rows[c, 0] = out
            position = 0
            for i in range(n):
                t = scratch[i]
                if t == SEPARATOR:
                    contig_rows[c, 1] = out
                    c += 1
                    contig_rows[c, 0] = out
                    position = 0
                else:
                    ids[out], offsets[out] = t, position
                    position += token_length[t]
                    out += 1
            contig_rows[c, 1] = out
            continue
        if certain[0] > certain[1]:
            failed[c] = True
        if continues and w > first_window:
            # Cut the previous piece back to this one's left frontier, a token start in both.
            cut = piece_from
            while cut < out and offsets[cut] < first:
                cut += 1
            if cut == out or offsets[cut] != first or first < offsets[piece_from] or first > previous_end:
                failed[c] = True
            out = cut
        else:
            contig_rows[c, 0] = out
        if w == last_window:
            contig_rows[c, 1] = out
            break
        piece_from = out
        position = start
        for i in range(n):
            t = scratch[i]
            if position >= first:
                ids[out], offsets[out] = t, position
                out += 1
            position += token_length[t]
        previous_end = certain_end
        contig_rows[c, 1] = out


def _window_table(lengths: np.ndarray, window: int, margin: int) -> np.ndarray:
    """Rows (kind, first contig, last contig, start, end, open left, open right), in contig order:
    contigs up to `window` bases packed together, longer ones cut into pieces of about `window`."""
    rows = []
    packed: list[int] = []
    packed_bases = 0

    def close_pack() -> None:
        nonlocal packed, packed_bases
        if packed:
            rows.append((_PACKED, packed[0], packed[-1], 0, int(lengths[packed[-1]]), 0, 0))
        packed, packed_bases = [], 0

    for c, length in enumerate(lengths.tolist()):
        if length <= window:
            if packed_bases + length > window:
                close_pack()
            packed.append(c)
            packed_bases += length + 1
            continue
        close_pack()
        n_pieces = -(-length // window)
        cuts = np.linspace(0, length, n_pieces + 1).astype(np.int64)
        for a, b in pairwise(cuts.tolist()):
            start, end = max(0, a - margin), min(length, b + margin)
            rows.append((_PIECE, c, c, start, end, int(start > 0), int(end < length)))
    close_pack()
    return np.array(rows, dtype=np.int64).reshape(-1, 7)


def _replay_contigs(contigs, base_ids, merge_ids, token_length, workers, window, margin):
    lengths = np.array([len(c) for c in contigs], dtype=np.int64)
    contig_start = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    codes = np.concatenate([np.asarray(c, dtype=np.uint8) for c in contigs]) if contigs else np.zeros(0, np.uint8)
    windows = _window_table(lengths, window, margin)
    window_tokens = np.where(windows[:, 0] == _PIECE, windows[:, 4] - windows[:, 3],
                             contig_start[windows[:, 2] + 1] - contig_start[windows[:, 1]] + windows[:, 2] - windows[:, 1])
    # Runs of neighbouring windows of about equal size, one per thread.
    total = np.cumsum(window_tokens)
    cuts = np.searchsorted(total, np.linspace(0, total[-1] if len(total) else 0, workers + 1)[1:-1])
    edges = [0, *sorted({int(x) for x in cuts if 0 < x < len(windows)}), len(windows)]
    runs = []
    # uint32 offsets (the store's own starts) unless a contig is past 4 Gb
    offset_type = np.uint32 if len(contigs) == 0 or lengths.max() < 2**32 else np.int64
    for first_window, last_window in pairwise(edges):
        size = int(window_tokens[first_window:last_window].sum())
        runs.append((first_window, last_window, np.empty(size, np.uint16), np.empty(size, offset_type),
                     np.full((len(contigs), 2), -1, np.int64)))
    scratch_size = int(window_tokens.max()) if len(windows) else 0
    failed = np.zeros(len(contigs), np.bool_)
    with ThreadPoolExecutor(len(runs) or 1) as pool:
        list(pool.map(lambda run: _replay_run(codes, contig_start, windows, run[0], run[1], scratch_size, merge_ids,
                                              token_length, base_ids, run[2], run[3], run[4], failed), runs))
    results = []
    for c in range(len(contigs)):
        parts = [(ids[a:b], offsets[a:b]) for _, _, ids, offsets, rows in runs for a, b in [rows[c]] if a >= 0]
        if failed[c]:
            # Wider margins, finally one window of the whole contig (no open edge, so it cannot fail).
            wider = max(8 * margin, 64)
            retry = (window, wider) if wider < lengths[c] else (int(lengths[c]), 0)
            results.append(_replay_contigs([contigs[c]], base_ids, merge_ids, token_length, workers, *retry)[0])
        elif len(parts) == 1:
            results.append(parts[0])
        else:
            results.append((np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])))
    return results


def replay_merges(
    contigs: list[np.ndarray], vocab: dict[str, int], merges: list[tuple[str, str]], workers: int | None = None,
    window: int = WINDOW, margin: int = MARGIN,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tokenize contigs (base codes 0-3) by applying `merges` in order, ids from `vocab` (a
    tokenizer.json's): per contig (token ids uint16, offset of each token's first base in the contig,
    uint32). Windows are shared over `workers` threads (default: all cores); working memory is a
    window per thread and the output. Vocabularies past uint16 ids go to the linked-list replay
    (`bpe.replay_merges_linked`: int32 ids, int64 offsets, ~27 bytes per base)."""
    n_ids = max(vocab.values()) + 1
    if n_ids >= int(SEPARATOR):
        return replay_merges_linked(contigs, vocab, merges, workers)
    token_length = np.zeros(n_ids, np.int64)
    for token, i in vocab.items():
        token_length[i] = len(token)
    base_ids = np.array([vocab[b] for b in BASES], dtype=np.uint16)
    merge_ids = np.array([(vocab[a], vocab[b], vocab[a + b]) for a, b in merges], dtype=np.int64).reshape(-1, 3)
    workers = max(1, workers or os.cpu_count() or 1)
    return _replay_contigs(list(contigs), base_ids, merge_ids, token_length, workers, window, margin)
