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


@pytest.mark.shared_data
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


# --- whole-genome learner (tokenizer/bpe_compact.py): same cycles at 2 bytes per base ---------------

def _compact(chromosomes: list[list[str]], cycles: int) -> list[tuple[str, str, int]]:
    from grover_jax.tokenizer.bpe_compact import chromosome_tokens, learn_bpe_compact

    arrays = [chromosome_tokens(_codes(c) for c in contigs) for contigs in chromosomes]
    return [(m.left, m.right, m.count) for m in learn_bpe_compact(arrays, cycles, progress=False).merges]


def test_compact_learner_matches_reference_on_real_sequence_with_ties_and_runs(bundled_genome):
    contigs = [bundled_genome.bases("chr20", s, s + 1500) for s in (33_000_000, 35_000_000, 36_200_000)]
    contigs += ["A" * 4, "A" * 5, "T" * 17, "ACACACACA", "AAAAGAAAAAGAAAAAAG"]
    expected, ties = reference_bpe(contigs, 150)
    assert ties > 20
    assert _compact([contigs[:2], contigs[2:5], contigs[5:]], 150) == expected


def test_a_genome_of_chromosome_slices_learns_the_merges_of_its_contigs(bundled_genome):
    """Several real chromosome slices, each its own chromosome for the whole-genome learner, against
    the same slices as separate contigs of one input to `learn_bpe`: identical merges, counts and
    token counts."""
    from grover_jax.tokenizer.bpe_compact import chromosome_tokens, learn_bpe_compact

    slices = [(33_000_000, 33_400_000), (34_000_000, 34_250_000), (35_500_000, 36_000_000), (36_800_000, 36_900_000)]
    chromosomes = [[_codes(bundled_genome.bases("chr20", s, e))] for s, e in slices]
    joined = learn_bpe([c for contigs in chromosomes for c in contigs], 300, progress=False)
    compact = learn_bpe_compact([chromosome_tokens(c) for c in chromosomes], 300, progress=False, workers=2)
    assert compact.merges == joined.merges
    assert compact.tokens == joined.tokens and np.array_equal(compact.token_counts, joined.token_counts)


# The learner's passes: sparse with vector compaction (a CPU without it still runs that code, lane by
# lane), sparse with memmove, dense.
PASSES = pytest.mark.parametrize("spacing, compress", [(0, True), (0, False), (10**12, False)],
                                 ids=["every pass sparse, vector compaction", "every pass sparse, memmove",
                                      "every pass dense"])


@PASSES
@pytest.mark.parametrize("workers", [1, 3, 8])
def test_compact_learner_in_pieces_of_a_few_tokens_keeps_every_merge(bundled_genome, monkeypatch, spacing, compress,
                                                                      workers):
    """Three chromosomes of real sequence and one-token runs, cut into pieces of 20-200 tokens
    (min_piece=1) and merged on threads, with either pass: the merges, merge counts and token counts
    of `learn_bpe`."""
    from grover_jax.tokenizer import bpe_compact
    from grover_jax.tokenizer.bpe_compact import CompactSequence, chromosome_tokens, learn_bpe_compact

    monkeypatch.setattr(bpe_compact, "SPARSE_SPACING", spacing)
    monkeypatch.setattr(bpe_compact, "VECTOR_COMPRESS", compress)
    real = [bundled_genome.bases("chr20", s, s + 300) for s in (33_000_000, 33_100_000)]
    runs = ["A" * 4, "A" * 5, "T" * 17, "ACACACACA", "AAAAGAAAAAGAAAAAAG", "C" * 40]
    chromosomes = [[real[0], *runs[:3]], [runs[3], real[1], runs[4]], [runs[5]]]
    arrays = [chromosome_tokens(_codes(c) for c in contigs) for contigs in chromosomes]
    pieces = CompactSequence([a.copy() for a in arrays], 8, workers, min_piece=1)
    pieces.close()
    assert workers == 1 or (any(pieces.joined) and max(pieces.live) < 200)
    expected = learn_bpe([_codes(c) for contigs in chromosomes for c in contigs], 150, progress=False)
    result = learn_bpe_compact(arrays, 150, progress=False, workers=workers, min_piece=1)
    assert result.merges == expected.merges
    assert np.array_equal(result.token_counts, expected.token_counts)


@PASSES
def test_runs_and_a_contig_separator_at_the_joins_of_pieces_keep_every_merge(bundled_genome, monkeypatch, spacing,
                                                                             compress):
    """One chromosome of 400 tokens cut in 4 for 4 threads, laid out so that the joins fall inside a
    run of A (7 before the cut, 9 after: an odd run parity to carry over), on the contig separator, and
    inside a run of C (4 and 4); the sequence shrinks until pieces are joined back into one."""
    from grover_jax.tokenizer import bpe_compact
    from grover_jax.tokenizer.bpe_compact import SEPARATOR, CompactSequence, chromosome_tokens, learn_bpe_compact

    monkeypatch.setattr(bpe_compact, "SPARSE_SPACING", spacing)
    monkeypatch.setattr(bpe_compact, "VECTOR_COMPRESS", compress)
    real = bundled_genome.bases("chr20", 33_000_000, 33_000_400).replace("A", "G").replace("C", "T")
    first = real[:93] + "A" * 16 + real[109:200]  # A at 93-108, across the cut at 100; separator at 200
    second = real[201:296] + "C" * 8 + real[304:400]  # contig from 201: C at 296-303, across the cut at 300
    contigs = [first, second]  # 200 + 1 + 199 = 400 tokens
    tokens = chromosome_tokens(_codes(c) for c in contigs)
    pieces = CompactSequence([tokens.copy()], 8, 4, min_piece=1)
    pieces.close()
    assert pieces.live == [100, 100, 100, 100]
    a, c = BASE_CODE[ord("A")], BASE_CODE[ord("C")]
    assert pieces.pieces[0][-1] == pieces.pieces[1][0] == a and pieces.pieces[2][0] == SEPARATOR
    assert pieces.pieces[2][-1] == pieces.pieces[3][0] == c
    expected = learn_bpe([_codes(c) for c in contigs], 120, progress=False)
    result = learn_bpe_compact([tokens], 120, progress=False, workers=4, min_piece=1)
    assert result.merges == expected.merges
    assert np.array_equal(result.token_counts, expected.token_counts)


def test_compact_learner_in_pieces_matches_the_reference_on_random_runs():
    """150 random chromosomes of two or four letters with one-token runs, cut into pieces for 2-29
    threads: every merge as the pure-Python reference."""
    from grover_jax.tokenizer.bpe_compact import chromosome_tokens, learn_bpe_compact

    rng = np.random.default_rng(0)
    for _ in range(150):
        contigs = ["".join(rng.choice(list("ACGT" if rng.random() < 0.5 else "AT"), int(rng.integers(20, 80))))
                   + "A" * int(rng.integers(0, 12)) for _ in range(int(rng.integers(1, 4)))]
        expected, _ = reference_bpe(contigs, 40)
        result = learn_bpe_compact([chromosome_tokens(_codes(c) for c in contigs)], 40, progress=False,
                                   workers=int(rng.integers(2, 30)), min_piece=1)
        assert [(m.left, m.right, m.count) for m in result.merges] == expected, contigs


@pytest.mark.parametrize("compress", [True, False], ids=["vector compaction", "memmove"])
def test_the_sparse_pass_merges_and_tallies_as_the_dense_pass(compress):
    """4,000 random token strings with runs, separators and either start (read 0 or 1), many of them
    just around multiples of the 64-token block: the sparse pass gives the dense pass's tokens, merge
    count and neighbour tallies, counts merges before two token indices (the replay's frontiers) as a
    direct count does, and writes nothing at or past `end` in a longer array (a piece); without
    tallies, the same."""
    from grover_jax.tokenizer.bpe_compact import SEPARATOR, _merge_pass, _merge_pass_sparse

    rng = np.random.default_rng(3)
    edges = [block * k + d for block in (64, 256) for k in (1, 2, 3) for d in (-2, -1, 0, 1, 2, 3)]
    marker = 0xBEEF
    for case in range(4000):
        n = int(rng.choice(edges)) if case % 2 else int(rng.integers(0, 700))
        letters = int(rng.integers(1, 5))
        tokens = rng.integers(0, letters, n).astype(np.uint16)
        tokens[rng.random(n) < rng.random()] = 0  # long runs of one token
        if case % 3 == 0:
            tokens[rng.random(n) < 0.02] = SEPARATOR
        left = int(rng.integers(0, letters))
        right = int(rng.integers(0, letters)) if rng.random() < 0.6 else left
        read = int(rng.integers(0, 2)) if n else 0
        lo, hi = sorted(rng.integers(0, n + 1, 2).tolist())
        dense, dense_tallies = tokens.copy(), np.zeros((2, 10), np.int64)
        written, merged = _merge_pass(dense, read, n, left, right, 9, dense_tallies)
        # The k-th z written at output index j merged the pair at input index read + j + k.
        starts = [read + j + k for k, j in enumerate(np.flatnonzero(dense[:written] == 9))]
        expected = (written, merged, sum(p < lo for p in starts), sum(p < hi for p in starts))
        for tallies in (np.zeros((2, 10), np.int64), np.zeros((0, 0), np.int64)):
            piece = np.full(n + 70, marker, np.uint16)
            piece[:n] = tokens
            assert _merge_pass_sparse(piece, read, n, left, right, 9, tallies, lo, hi, compress) == expected, case
            assert np.array_equal(piece[:written], dense[:written]), case
            assert (piece[n:] == marker).all(), f"case {case}: written past end"
            assert not tallies.size or np.array_equal(tallies, dense_tallies), case


@pytest.mark.shared_data
def test_compact_learner_in_pieces_on_a_second_chromosome_matches_the_linked_learner():
    """hg19 chr22:20-21 Mb, 600 cycles, cut into pieces for 4 threads: the linked learner's merges,
    merge counts and token counts."""
    from grover_jax.tokenizer.bpe_compact import chromosome_tokens, learn_bpe_compact

    genome = read_genome(shared_file("genome/hg19_chr22_20-21Mb.fa.gz"))
    codes = [genome.contig_codes(c) for c in genome.contigs]
    expected = learn_bpe(codes, 600, progress=False)
    result = learn_bpe_compact([chromosome_tokens(codes)], 600, progress=False, workers=4, min_piece=100_000)
    assert result.merges == expected.merges
    assert np.array_equal(result.token_counts, expected.token_counts)


MEMORY_PROBE = """
import json, sys
from grover_jax import bundled
from grover_jax.genome import read_genome
from grover_jax.tokenizer import learn_bpe
from grover_jax.tokenizer.bpe_compact import chromosome_tokens, learn_bpe_compact

def status(field):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(field + ":"))

genome = read_genome(bundled.FASTA)
codes = [genome.contig_codes(c) for c in genome.contigs]
# Load the compiled cores, the sparse pass too (it compiles in the process: numba cannot cache it).
learn_bpe_compact([chromosome_tokens(codes)[:20_000]], 60, progress=False)
learn_bpe([c[:1000] for c in codes], 5, progress=False)
tokens = [chromosome_tokens(codes)] if sys.argv[1] == "compact" else None
n_bases = sum(len(c) for c in codes)
open("/proc/self/clear_refs", "w").write("5")  # peak (VmHWM) := resident now
resident = status("VmRSS")
if tokens is not None:
    learn_bpe_compact(tokens, 300, progress=False)
else:
    learn_bpe(codes, 300, progress=False)
print(json.dumps({"n_bases": n_bases, "learning_bytes": status("VmHWM") - resident}))
"""


def _learning_peak_bytes_per_base(engine: str) -> float:
    import json
    import subprocess
    import sys
    from pathlib import Path

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to reset the peak resident size")
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, engine], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    probe = json.loads(out.strip().splitlines()[-1])
    return probe["learning_bytes"] / probe["n_bases"]


def test_compact_learner_peak_memory_is_its_2_byte_tokens():
    """On the bundled 4.95 Mb: learning adds < 0.5 byte/base above its uint16 input (measured ~0.03);
    the linked learner, for contrast, adds > 20 (measured ~27)."""
    assert _learning_peak_bytes_per_base("compact") < 0.5
    assert _learning_peak_bytes_per_base("linked") > 20


def test_whole_genome_engine_reads_files_one_at_a_time_and_learns_the_same_vocabulary(bundled_genome, tmp_path):
    """`grover bpe --engine compact` on three real slices in three files (train split only, a valid
    block held out) writes the same tokenizer.json and merges.tsv as the default engine."""
    from grover_jax.programs.vocabulary import learn_vocabulary
    from tests.conftest import write_fasta

    files = [
        str(write_fasta(tmp_path / f"slice{i}.fa", [(f"chr20:{s + 1}-{e}", bundled_genome.bases("chr20", s, e))]))
        for i, (s, e) in enumerate([(33_000_000, 33_300_000), (34_000_000, 34_200_000), (36_000_000, 36_100_000)])
    ]
    splits = "valid=chr20:34000001-34050000"
    for engine in ("linked", "compact"):
        learn_vocabulary(files, tmp_path / engine, cycles=200, split_spec=splits, engine=engine, progress=False)
    for name in ("tokenizer.json", "merges.tsv"):
        assert (tmp_path / "linked" / name).read_text() == (tmp_path / "compact" / name).read_text()
