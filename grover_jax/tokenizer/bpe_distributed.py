"""GROVER's BPE cycles over a genome split across worker processes: the merges of `learn_bpe_compact`.

Each worker holds only its share of the contigs, as `bpe_compact`'s uint16 token arrays, plus a copy
of the global [V, V] pair counts. A cycle on every worker: pick the best pair from the global counts
with the shared tie rule (`best_pair`, a row-major argmax: every worker picks the same pair from the
same counts, so nothing is broadcast), merge it in the worker's own contigs (`merge_tokens`), then
sum the cycle's tallies over the workers and apply the sum to the counts (`apply_merge_tallies`).
The update is linear in the tallies and pairs never span a contig, so any split of the contigs gives
the single-process counts exactly. The per-cycle sum is 2V + 1 int64 (neighbours before the pair,
after it, merges): 9.7 KB at GROVER's 600 cycles, instead of the 2.9 MB count table.

How the sum travels is the caller's `sum_over_workers` (programs/bpe_workers.py passes a
jax.distributed all-gather), so this module holds no process machinery.
"""

from collections.abc import Callable

import numpy as np

from grover_jax.genome.genome import BASES
from grover_jax.tokenizer.bpe import BpeResult
from grover_jax.tokenizer.bpe_compact import CompactSequence, apply_merge_tallies, learn_cycles

SumOverWorkers = Callable[[np.ndarray], np.ndarray]


class ContigShares:
    """Which contigs one worker keeps, for `read_learning_chromosomes(keep_contigs=...)`.

    Within each file, contigs longest first go to the worker with the fewest bases so far (ties: the
    lowest rank); the loads carry over to the next file. Every worker computes the same assignment
    from the same files, so the shares are disjoint and cover the genome without any exchange. More
    workers than contigs leaves some with nothing, which the learner allows."""

    def __init__(self, workers: int, rank: int):
        self.rank = rank
        self.loads = [0] * workers

    def __call__(self, lengths: list[int]) -> list[bool]:
        keep = [False] * len(lengths)
        for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):  # stable: file order on ties
            worker = self.loads.index(min(self.loads))
            self.loads[worker] += lengths[index]
            keep[index] = worker == self.rank
        return keep


def learn_bpe_shared(
    chromosomes: list[np.ndarray], cycles: int, sum_over_workers: SumOverWorkers, max_token_length: int = 0,
    progress: bool = True, threads: int | None = None,
) -> BpeResult:
    """`learn_bpe_compact` on this worker's chromosomes (uint16, `chromosome_tokens`), every worker
    calling it at once with the same arguments but its own share; each returns the whole genome's
    result. `sum_over_workers` sums an int64 array element-wise over the workers (every worker gets
    the sum). The arrays are taken over and overwritten. `threads` merge this worker's chromosomes."""
    if cycles < 0:
        raise ValueError(f"cycles={cycles}: must be >= 0")
    capacity = len(BASES) + cycles
    # Whole chromosomes: the counts of pairs across pieces are not in the tallies the workers sum.
    sequence = CompactSequence(chromosomes, capacity, threads, min_piece=None)
    start = sum_over_workers(np.append(sequence.pair_count.ravel(), sequence.bases()))
    sequence.pair_count[:] = start[:-1].reshape(capacity, capacity)
    n_bases = int(start[-1])
    if n_bases == 0:
        sequence.close()
        raise ValueError("no base to learn from (every worker's share is empty)")

    def merge(left: int, right: int, z: int) -> int:
        tallies = sum_over_workers(sequence.merge_tokens(left, right, z))
        apply_merge_tallies(sequence.pair_count, left, right, z, tallies)
        return int(tallies[-1])

    try:
        merges, vocabulary = learn_cycles(sequence.pair_count, cycles, merge, max_token_length, progress,
                                          "BPE cycles (workers)")
        token_counts = sum_over_workers(sequence.token_counts(capacity))
    finally:
        sequence.close()
    return BpeResult(merges, vocabulary.tokens, token_counts[: len(vocabulary.tokens)], n_bases)
