"""Replay a learned merge list over new sequence, window by window: the token store's encoder, the
same tokens as HF `tokenizers` on the saved tokenizer.json.

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
from grover_jax.tokenizer.bpe_compact import SEPARATOR, _merge_pass_sparse
from grover_jax.tokenizer.vector_ops import VECTOR_COMPRESS

WINDOW = 1 << 16  # bases: 128 KiB of uint16 tokens, inside a core's L2 cache
MARGIN = 256  # bases of each neighbour a window also replays


# The replay's functions compile in each process (about 2 s): cached on disk they ran about 10 % slower
# (chr20, one thread, three alternating runs each), which on a genome costs more than the compile.
@nb.njit(nogil=True)
def _replay_window(tokens, n, merges, token_length, present, open_left, open_right, certain, compress):
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
        # Frontiers move even for a pair absent from the window: its other half may lie past the edge.
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
        n_after, _, before_lo, before_hi = _merge_pass_sparse(tokens, 0, n, left, right, z, no_tallies, lo, hi,
                                                                    compress)
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
def _fill_window(bases, contig_from, contig_to, row, base_ids, scratch):
    """The window's bases as token ids in scratch (SEPARATOR between packed contigs); returns the
    count, or -1 - c where contig c holds a base other than A, C, G or T."""
    kind, c_first, c_last, start, end = row[0], row[1], row[2], row[3], row[4]
    n = 0
    for c in range(c_first, c_last + 1):
        if c > c_first:
            scratch[n] = SEPARATOR
            n += 1
        if kind == _PIECE:
            first, last = contig_from[c] + start, contig_from[c] + end
        else:
            first, last = contig_from[c], contig_to[c]
        for i in range(first, last):
            scratch[n] = base_ids[bases[i]]
            if scratch[n] == SEPARATOR:
                return -1 - c
            n += 1
    return n


@nb.njit(nogil=True)
def _replay_share(bases, contig_from, contig_to, windows, first_window, last_window, scratch_size, merges,
                  token_length, base_ids, ids, offsets, contig_rows, failed, compress):
    """Replay one thread's share, windows[first_window:last_window], in order (rows: kind, first
    contig, last contig, start, end, open left, open right), appending each contig's tokens to ids /
    offsets (bases into the contig); contig_rows[c] = this share's [start, end) of contig c. A piece's
    tokens are appended from its left frontier on and cut back to the next piece's left frontier once
    that piece is replayed (for the share's last window, the next share's first is replayed for it).
    failed[c] gets bit 1 where neighbouring frontiers do not overlap, bit 2 where a base is not A, C,
    G or T. Each window is replayed in a scratch array that stays in cache, and only live tokens are
    written out: fresh pages cost more than the replay."""
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
            break  # the next share's first window only matters when it continues this share's contig
        n = _fill_window(bases, contig_from, contig_to, windows[w], base_ids, scratch)
        if n < 0:
            failed[-1 - n] |= 2
            continue
        n = _replay_window(scratch, n, merges, token_length, present, open_left, open_right, certain, compress)
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
            failed[c] |= 1
        if continues and w > first_window:
            # Cut the previous piece back to this one's left frontier, a token start in both.
            cut = piece_from
            while cut < out and offsets[cut] < first:
                cut += 1
            if cut == out or offsets[cut] != first or first > previous_end:
                failed[c] |= 1
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
        for a, b in pairwise(length * k // n_pieces for k in range(n_pieces + 1)):
            start, end = max(0, a - margin), min(length, b + margin)
            rows.append((_PIECE, c, c, start, end, int(start > 0), int(end < length)))
    close_pack()
    return np.array(rows, dtype=np.int64).reshape(-1, 7)


def _replay_contigs(bases, contig_from, contig_to, base_ids, merge_ids, token_length, workers, window, margin):
    """Replay the contigs bases[contig_from[c]:contig_to[c]]: per contig (ids, offsets)."""
    lengths = contig_to - contig_from
    windows = _window_table(lengths, window, margin)
    window_tokens = np.where(windows[:, 0] == _PIECE, windows[:, 4] - windows[:, 3], 0)
    for w in np.flatnonzero(windows[:, 0] == _PACKED):
        window_tokens[w] = lengths[windows[w, 1] : windows[w, 2] + 1].sum() + windows[w, 2] - windows[w, 1]
    # Shares of neighbouring windows of about equal size, one per thread.
    total = np.cumsum(window_tokens)
    cuts = np.searchsorted(total, np.linspace(0, total[-1] if len(total) else 0, workers + 1)[1:-1])
    edges = [0, *sorted({int(x) for x in cuts if 0 < x < len(windows)}), len(windows)]
    # uint32 offsets (the store's own starts) unless a contig is past 4 Gb
    offset_type = np.uint32 if len(lengths) == 0 or lengths.max() < 2**32 else np.int64
    shares = []
    for first_window, last_window in pairwise(edges):
        size = int(window_tokens[first_window:last_window].sum())
        shares.append((first_window, last_window, np.empty(size, np.uint16), np.empty(size, offset_type),
                     np.full((len(lengths), 2), -1, np.int64)))
    scratch_size = int(window_tokens.max()) if len(windows) else 0
    failed = np.zeros(len(lengths), np.int8)
    with ThreadPoolExecutor(len(shares) or 1) as pool:
        list(pool.map(lambda share: _replay_share(bases, contig_from, contig_to, windows, share[0], share[1],
                                                  scratch_size, merge_ids, token_length, base_ids, share[2], share[3],
                                                  share[4], failed, VECTOR_COMPRESS),
                      shares))
    if (failed & 2).any():
        raise ValueError(f"contig {int(np.argmax(failed & 2))} holds a base other than A, C, G or T")
    results = []
    for c in range(len(lengths)):
        parts = [(ids[a:b], offsets[a:b]) for _, _, ids, offsets, rows in shares for a, b in [rows[c]] if a >= 0]
        if failed[c]:
            # Wider margins, finally one window of the whole contig (no open edge, so it cannot fail).
            wider = max(8 * margin, 64)
            retry = (window, wider) if wider < min(window, lengths[c]) else (int(lengths[c]), 0)
            results.append(_replay_contigs(bases, contig_from[c : c + 1], contig_to[c : c + 1], base_ids, merge_ids,
                                           token_length, workers, *retry)[0])
        elif len(parts) == 1:
            results.append(parts[0])
        else:
            results.append((np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])))
    return results


def _replay_options(vocab: dict[str, int], merges: list[tuple[str, str]], workers: int | None, window: int,
                    margin: int) -> tuple:
    """`_replay_contigs`'s arguments after the bases, checked: the merge table, threads, window, margin."""
    if max(vocab.values()) >= int(SEPARATOR):
        raise ValueError(f"a vocabulary with ids up to {max(vocab.values())} does not fit the replay's uint16 tokens "
                         f"(at most {int(SEPARATOR) - 1})")
    if window < 1 or margin < 0:
        raise ValueError(f"window {window}, margin {margin}: a window needs at least 1 base, a margin at least 0")
    return (*_merge_table(vocab, merges), max(1, workers or os.cpu_count() or 1), window, margin)


def _merge_table(vocab: dict[str, int], merges: list[tuple[str, str]]):
    """(base ids by code 0-3 and by ASCII letter, merges as rows (left, right, z), bases per id)."""
    n_ids = max(vocab.values()) + 1
    token_length = np.zeros(n_ids, np.int64)
    for token, i in vocab.items():
        token_length[i] = len(token)
    base_ids = np.full(256, SEPARATOR, np.uint16)
    for code, base in enumerate(BASES):
        base_ids[code] = base_ids[ord(base)] = vocab[base]
    merge_ids = np.array([(vocab[a], vocab[b], vocab[a + b]) for a, b in merges], dtype=np.int64).reshape(-1, 3)
    return base_ids, merge_ids, token_length


def replay_merges(
    contigs: list[np.ndarray], vocab: dict[str, int], merges: list[tuple[str, str]], workers: int | None = None,
    window: int = WINDOW, margin: int = MARGIN,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tokenize contigs (base codes 0-3, or the letters A, C, G, T) by applying `merges` in order, ids
    from `vocab` (a tokenizer.json's): per contig (token ids uint16, offset of each token's first base in the contig,
    uint32). Windows are shared over `workers` threads (default: all cores); working memory is a
    window per thread and the output. ValueError for a vocabulary past uint16 ids (the store's own
    limit; HF's tokenizer encodes with any) and for a window under 1 base or a negative margin."""
    options = _replay_options(vocab, merges, workers, window, margin)  # checked before the bases are copied
    lengths = np.array([len(c) for c in contigs], dtype=np.int64)
    ends = np.cumsum(lengths)
    bases = np.concatenate([np.asarray(c, dtype=np.uint8) for c in contigs]) if len(contigs) else np.zeros(0, np.uint8)
    return _replay_contigs(bases, ends - lengths, ends, *options)


def replay_regions(
    sequence: np.ndarray, regions: np.ndarray, vocab: dict[str, int], merges: list[tuple[str, str]],
    workers: int | None = None, window: int = WINDOW, margin: int = MARGIN,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """`replay_merges` over stretches [start, end) (rows of `regions`) of one uppercase ASCII sequence,
    such as a FASTA record's A/C/G/T runs, read where they lie: no copy of the bases. Offsets count
    from each stretch's start. ValueError names a stretch holding another letter."""
    regions = np.asarray(regions, dtype=np.int64).reshape(-1, 2)
    return _replay_contigs(np.asarray(sequence, dtype=np.uint8), regions[:, 0].copy(), regions[:, 1].copy(),
                           *_replay_options(vocab, merges, workers, window, margin))
