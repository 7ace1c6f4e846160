"""BPE in GROVER cycles over real contiguous genome sequence (no fake "words"), on the linked-list core.

`learn_bpe` runs N cycles; `replay_merges_linked` applies a learned merge list to new sequence on the
same structure: the cross-check of `bpe_replay.replay_merges` (the encoder the store uses). Replaying the merges in order is exactly what HF `tokenizers`
does with the saved tokenizer.json (it applies merges by rank, left to right), so the token store and
the Rust tokenizer agree token for token.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from grover_jax.genome.genome import BASES
from grover_jax.progress import progress_bar
from grover_jax.tokenizer import bpe_core


@dataclass(frozen=True)
class Merge:
    """One cycle: `left`+`right` became `token`; `count` is the pair's frequency when chosen (every
    adjacent position, runs included), `merged` how many occurrences were actually replaced."""

    left: str
    right: str
    count: int
    merged: int

    @property
    def token(self) -> str:
        return self.left + self.right


@dataclass
class BpeResult:
    merges: list[Merge]
    tokens: list[str]  # the vocabulary in id order: A, C, G, T, then each new string once
    token_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # after the last cycle
    n_bases: int = 0

    @property
    def mean_token_length(self) -> float:
        lengths = np.array([len(t) for t in self.tokens])
        return float((lengths * self.token_counts).sum() / max(self.token_counts.sum(), 1))


class _Sequence:
    """The compiled core's state over a set of contigs joined with separators."""

    def __init__(self, contigs: list[np.ndarray], base_ids: np.ndarray, vocab_capacity: int):
        lengths = np.array([len(c) for c in contigs], dtype=np.int64)
        total = int(lengths.sum() + len(contigs))
        dtype = np.int32 if total < 2**31 - 1 else np.int64
        token_at = np.full(total, bpe_core.SEPARATOR, dtype=np.int32)
        self.contig_starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
        for start, codes in zip(self.contig_starts, contigs):
            token_at[start : start + len(codes)] = base_ids[codes]
        self.token_at = token_at
        (self.next_at, self.prev_at, self.pair_count, self.block_head, self.blocks, self.n_blocks,
         self.arena, self.arena_size) = bpe_core.init_state(token_at.astype(dtype, copy=False), vocab_capacity)
        self.token_at = self.token_at.astype(dtype, copy=False)
        self.heap = (np.empty(1024, np.int64), np.empty(1024, np.int32), np.empty(1024, np.int32), 0)

    def push_all_pairs(self) -> None:
        heap = self.heap
        for left, right in zip(*np.nonzero(self.pair_count)):
            heap = bpe_core.push_pair(*heap, self.pair_count, int(left), int(right))
        self.heap = heap

    def pop_best(self, token_length: np.ndarray, max_token_length: int) -> tuple[int, int, int]:
        left, right, count, *heap = bpe_core.pop_best_pair(*self.heap, self.pair_count, token_length, max_token_length)
        self.heap = tuple(heap)
        return int(left), int(right), int(count)

    def merge(self, left: int, right: int, z: int, use_heap: bool) -> int:
        (self.blocks, self.n_blocks, self.arena, self.arena_size, *heap, merged) = bpe_core.merge_pair(
            self.token_at, self.next_at, self.prev_at, self.pair_count, self.block_head, self.blocks,
            self.n_blocks, self.arena, self.arena_size, *self.heap, left, right, z, use_heap)
        self.heap = tuple(heap)
        return int(merged)

    def contig_tokens(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per contig: (token ids, offset of each token's first base within the contig)."""
        positions, tokens = bpe_core.live_tokens(self.token_at, self.next_at)
        bounds = np.searchsorted(positions, self.contig_starts)
        bounds = np.append(bounds, len(positions))
        return [
            (tokens[bounds[c] : bounds[c + 1]], positions[bounds[c] : bounds[c + 1]] - self.contig_starts[c])
            for c in range(len(self.contig_starts))
        ]


class MergedVocabulary:
    """The token strings of a BPE run in creation order (A, C, G, T, then each merge's string) and
    their lengths in bases. A merge whose string already exists (AA+A after A+AA) reuses that
    token, as a vocabulary of strings must."""

    def __init__(self, capacity: int):
        self.tokens = list(BASES)
        self.token_id = {t: i for i, t in enumerate(self.tokens)}
        self.token_length = np.zeros(capacity, np.int64)  # read by the compiled pair selection
        self.token_length[: len(BASES)] = 1

    def token_for(self, left: int, right: int) -> int:
        """The id of the string left + right, created if new."""
        string = self.tokens[left] + self.tokens[right]
        z = self.token_id.get(string)
        if z is None:
            z = self.token_id[string] = len(self.tokens)
            self.tokens.append(string)
            self.token_length[z] = len(string)
        return z


def learn_bpe(
    contigs: list[np.ndarray], cycles: int, max_token_length: int = 0, progress: bool = True
) -> BpeResult:
    """Run `cycles` GROVER cycles on contigs given as base codes (0-3 = A, C, G, T).

    Each cycle merges the most frequent adjacent pair of current tokens over all contigs (pairs never
    span two contigs); ties go to the smaller (left id, right id), ids in creation order. A merge whose
    string already exists (AA+A after A+AA) reuses that token, as a vocabulary of strings must.
    `max_token_length` > 0 makes longer merges ineligible (0: exact, uncapped cycles).
    """
    # Checked here because the compiled core indexes without bounds checks: a negative capacity or
    # an empty sequence would crash the interpreter instead of raising.
    if cycles < 0:
        raise ValueError(f"cycles={cycles}: must be >= 0")
    if not any(len(c) for c in contigs):
        raise ValueError("no base to learn from (every contig is empty)")
    capacity = len(BASES) + cycles
    sequence = _Sequence(contigs, np.arange(len(BASES), dtype=np.int32), capacity)
    sequence.push_all_pairs()
    vocabulary = MergedVocabulary(capacity)
    tokens, token_length = vocabulary.tokens, vocabulary.token_length
    merges = []
    bar = progress_bar(total=cycles, desc="BPE cycles", unit="cycle", disable=not progress, mininterval=0.5)
    for _ in range(cycles):
        left, right, count = sequence.pop_best(token_length, max_token_length)
        if count == 0:
            break
        z = vocabulary.token_for(left, right)
        string = tokens[z]
        merged = sequence.merge(left, right, z, use_heap=True)
        merges.append(Merge(tokens[left], tokens[right], count, merged))
        bar.update(1)
        bar.set_postfix_str(f"{string} x{count:,}", refresh=False)
    bar.close()
    counts = np.zeros(len(tokens), np.int64)
    for ids, _ in sequence.contig_tokens():
        counts += np.bincount(ids, minlength=len(tokens))[: len(tokens)]
    return BpeResult(merges, tokens, counts, int(sum(len(c) for c in contigs)))


def share_longest_first(sizes: list[int], workers: int) -> list[list[int]]:
    """Indices of `sizes` in `workers` groups: largest first, each to the group with the least so far,
    so the longest never starts last and the groups' totals stay close."""
    groups: list[list[int]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for index in sorted(range(len(sizes)), key=lambda i: -sizes[i]):
        lightest = loads.index(min(loads))
        groups[lightest].append(index)
        loads[lightest] += sizes[index]
    return groups


def replay_merges_linked(
    contigs: list[np.ndarray], vocab: dict[str, int], merges: list[tuple[str, str]], workers: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tokenize contigs (base codes 0-3) by applying `merges` in order, with ids from `vocab`
    (e.g. a tokenizer.json's). Returns per contig (token ids, offset of each token in the contig).

    Contigs are independent, so they are shared out over `workers` threads (default: all cores),
    longest first; the compiled core releases the GIL."""
    workers = max(1, min(workers or os.cpu_count() or 1, len(contigs)))
    # A group can be empty (all contigs empty); the compiled core needs at least one contig.
    groups = [g for g in share_longest_first([len(c) for c in contigs], workers) if g]

    def replay(group: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
        base_ids = np.array([vocab[b] for b in BASES], dtype=np.int32)
        sequence = _Sequence([contigs[i] for i in group], base_ids, max(vocab.values()) + 1)
        for left, right in merges:
            sequence.merge(vocab[left], vocab[right], vocab[left + right], use_heap=False)
        return sequence.contig_tokens()

    results: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(contigs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for group, encoded in zip(groups, pool.map(replay, groups)):
            for index, tokens in zip(group, encoded):
                results[index] = tokens
    return results
