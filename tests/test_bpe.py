"""The compiled BPE learner against a slow, obviously-correct pure-Python GROVER-cycle BPE."""

from collections import Counter

import numpy as np
import pytest

from grover_jax.genome import read_genome
from grover_jax.genome.genome import BASE_CODE
from grover_jax.tokenizer import learn_bpe
from tests.conftest import shared_file


def reference_bpe(contigs: list[str], cycles: int) -> tuple[list[tuple[str, str, int]], int]:
    """Each cycle: count every adjacent pair of current tokens in every contig, take the most
    frequent (ties: smaller left id, then right id; ids in creation order A, C, G, T, ...), replace
    its occurrences left to right without overlap. Returns the merges and how many cycles had a tie."""
    sequences = [list(c) for c in contigs]
    ids = {b: i for i, b in enumerate("ACGT")}
    merges, ties = [], 0
    for _ in range(cycles):
        counts = Counter(pair for s in sequences for pair in zip(s, s[1:]))
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], -ids[p[0]], -ids[p[1]]))
        ties += sum(1 for c in counts.values() if c == counts[best]) > 1
        merges.append((best[0], best[1], counts[best]))
        new = best[0] + best[1]
        ids.setdefault(new, len(ids))
        for index, s in enumerate(sequences):
            merged, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    merged.append(new)
                    i += 2
                else:
                    merged.append(s[i])
                    i += 1
            sequences[index] = merged
    return merges, ties


def _codes(text: str) -> np.ndarray:
    return BASE_CODE[np.frombuffer(text.encode(), np.uint8)]


def _fast(contigs: list[str], cycles: int) -> list[tuple[str, str, int]]:
    result = learn_bpe([_codes(c) for c in contigs], cycles, progress=False)
    return [(m.left, m.right, m.count) for m in result.merges]


def test_matches_reference_on_real_sequence_with_ties(bundled_genome):
    # 3 real 1.5 kb stretches of chr20 as separate contigs; 150 cycles run deep into ties.
    contigs = [bundled_genome.bases("chr20", s, s + 1500) for s in (33_000_000, 35_000_000, 36_200_000)]
    expected, ties = reference_bpe(contigs, 150)
    assert ties > 20, "the slice must exercise the tie rule"
    assert _fast(contigs, 150) == expected


def test_matches_reference_on_homopolymer_runs_and_repeats(bundled_genome):
    # Real poly-A/T-rich sequence (an Alu tail region) plus runs of every parity: AAAA, AAAAA, ...
    real = bundled_genome.bases("chr20", 33_100_000, 33_102_000)
    contigs = [real, "A" * 4, "A" * 5, "T" * 17, "ACACACACA", "AAAAGAAAAAGAAAAAAG"]
    expected, _ = reference_bpe(contigs, 80)
    assert _fast(contigs, 80) == expected


def test_overlapping_run_counts_every_position_and_merges_left_to_right():
    result = learn_bpe([_codes("AAAAA")], 2, progress=False)
    (first, second) = result.merges
    assert (first.left, first.right, first.count, first.merged) == ("A", "A", 4, 2)  # AA AA A
    # Now AA AA A: (AA, AA) and (AA, A) tie at 1; the tie goes to the smaller right id, A.
    assert (second.left, second.right, second.count) == ("AA", "A", 1)
    assert result.tokens[-1] == "AAA" and result.token_counts.tolist() == [0, 0, 0, 0, 1, 1]


def test_pairs_never_span_contigs():
    result = learn_bpe([_codes("AC"), _codes("GT")], 5, progress=False)
    assert [(m.left, m.right) for m in result.merges] == [("A", "C"), ("G", "T")]  # never (C, G)


def test_max_token_length_caps_merges(bundled_genome):
    contigs = [_codes(bundled_genome.bases("chr20", 33_000_000, 33_050_000))]
    result = learn_bpe(contigs, 200, max_token_length=4, progress=False)
    assert max(len(t) for t in result.tokens) <= 4
    assert len(result.merges) == 200


def test_whole_chr20_reproduces_the_measured_grover_vocabulary():
    """600 exact cycles on the whole of hg19 chr20 (GROVER.md §1.2b): first merges and counts,
    604 symbols, 14,634,064 tokens, mean 4.066 nt (paper: 4.07)."""
    genome = read_genome(shared_file("genome/hg19_chr20.fa.gz"))
    result = learn_bpe([genome.contig_codes(c) for c in genome.contigs], 600, progress=False)
    assert [(m.left, m.right, m.count) for m in result.merges[:5]] == [
        ("T", "T", 5_289_614), ("A", "A", 5_161_675), ("T", "G", 3_711_223), ("C", "C", 3_597_241),
        ("A", "G", 3_470_762),
    ]
    assert (result.merges[8].left, result.merges[8].right, result.merges[8].count) == ("A", "TT", 991_958)
    assert result.merges[-1].count == 3_575
    assert len(result.tokens) == 604 and int(result.token_counts.sum()) == 14_634_064
    assert result.mean_token_length == pytest.approx(4.066, abs=5e-4)
    assert "CG" not in result.tokens
