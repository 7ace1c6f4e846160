"""The block learner (tokenizer/bpe_blocks.py) against the pure-Python reference and `learn_bpe`.

Tiny blocks make pairs straddle block boundaries everywhere, runs of one token span several blocks,
and a boundary merge can empty a block: the cases the block learner handles apart from the rest."""

import numpy as np
import pytest

from grover_jax.genome import read_genome
from grover_jax.tokenizer import learn_bpe
from grover_jax.tokenizer.bpe_blocks import learn_bpe_blocks
from grover_jax.tokenizer.bpe_compact import chromosome_tokens
from tests.conftest import shared_file
from tests.test_bpe import _codes, reference_bpe


def _blocks(chromosomes: list[list[str]], cycles: int, block_slots: int, workers: int = 1):
    arrays = [chromosome_tokens(_codes(c) for c in contigs) for contigs in chromosomes]
    return learn_bpe_blocks(arrays, cycles, progress=False, workers=workers, block_slots=block_slots)


def _merges(result) -> list[tuple[str, str, int]]:
    return [(m.left, m.right, m.count) for m in result.merges]


@pytest.mark.parametrize("block_slots", [1, 2, 3, 7, 64, 1024])
def test_matches_reference_on_real_sequence_with_ties_runs_and_contigs(bundled_genome, block_slots):
    contigs = [bundled_genome.bases("chr20", s, s + 1500) for s in (33_000_000, 35_000_000, 36_200_000)]
    contigs += ["A" * 4, "A" * 5, "T" * 17, "ACACACACA", "AAAAGAAAAAGAAAAAAG"]
    expected, ties = reference_bpe(contigs, 150)
    assert ties > 20, "the slice must exercise the tie rule"
    chromosomes = [contigs[:2], contigs[2:5], contigs[5:]]  # contig separators and chromosome ends
    assert _merges(_blocks(chromosomes, 150, block_slots)) == expected
    assert _merges(_blocks(chromosomes, 150, block_slots, workers=2)) == expected


@pytest.mark.parametrize("block_slots", [1, 2, 3, 4, 5])
def test_runs_straddling_blocks_merge_left_to_right(block_slots):
    """Runs of every parity across blocks of every phase: the (x, x) carry over boundaries, blocks
    that are all x, and blocks emptied by a boundary merge, against the reference and `learn_bpe`
    (which also reports how many occurrences each cycle merged)."""
    contigs = ["A" * n for n in range(2, 12)] + ["AAAAGAAAAAGAAAAAAG", "ATATATATA", "A" * 37 + "T" * 21]
    chromosomes = [contigs[:5], contigs[5:]]
    expected, _ = reference_bpe(contigs, 40)
    result = _blocks(chromosomes, 40, block_slots)
    assert _merges(result) == expected
    linked = learn_bpe([_codes(c) for c in contigs], 40, progress=False)
    assert result.merges == linked.merges and np.array_equal(result.token_counts, linked.token_counts)


def test_pairs_never_span_contigs_or_chromosomes():
    result = _blocks([["AC", "GT"], ["TA"]], 5, block_slots=1)
    assert [(m.left, m.right) for m in result.merges] == [("A", "C"), ("G", "T"), ("T", "A")]  # never C+G, T+T


def test_max_token_length_caps_merges(bundled_genome):
    codes = _codes(bundled_genome.bases("chr20", 33_000_000, 33_050_000))
    linked = learn_bpe([codes], 200, max_token_length=4, progress=False)
    capped = learn_bpe_blocks([chromosome_tokens([codes])], 200, max_token_length=4, progress=False, block_slots=256)
    assert max(len(t) for t in capped.tokens) <= 4 and len(capped.merges) == 200
    assert capped.merges == linked.merges


def _against_linked(chromosomes: list[list[np.ndarray]], cycles: int, block_slots: int) -> None:
    linked = learn_bpe([c for contigs in chromosomes for c in contigs], cycles, progress=False)
    for workers in (1, 2):
        result = learn_bpe_blocks([chromosome_tokens(c) for c in chromosomes], cycles, progress=False,
                                  workers=workers, block_slots=block_slots)
        assert result.merges == linked.merges, f"workers={workers}"
        assert result.tokens == linked.tokens and np.array_equal(result.token_counts, linked.token_counts)
        assert result.n_bases == sum(len(c) for contigs in chromosomes for c in contigs)


@pytest.mark.parametrize("block_slots", [13, 1024])
def test_same_merges_as_linked_learner_on_real_chromosome_slices(bundled_genome, block_slots):
    """Four real chr20 slices as four chromosomes (one cut into two contigs), 300 cycles: the same
    merges, counts, merged occurrences and final token counts as `learn_bpe`, on 1 and 2 threads."""
    slices = [(33_000_000, 33_400_000), (34_000_000, 34_250_000), (35_500_000, 36_000_000), (36_800_000, 36_900_000)]
    chromosomes = [[_codes(bundled_genome.bases("chr20", s, e))] for s, e in slices]
    chromosomes[0] = [chromosomes[0][0][:150_000], chromosomes[0][0][150_000:]]
    _against_linked(chromosomes, 300, block_slots)


@pytest.mark.shared_data
def test_same_merges_as_linked_learner_on_the_chr22_window():
    """A second chromosome: hg19 chr22:20-21 Mb, 600 cycles."""
    genome = read_genome(shared_file("genome/hg19_chr22_20-21Mb.fa.gz"))
    _against_linked([[genome.contig_codes(c) for c in genome.contigs]], 600, 1024)


MEMORY_PROBE = """
import json
from grover_jax import bundled
from grover_jax.genome import read_genome
from grover_jax.tokenizer.bpe_blocks import learn_bpe_blocks
from grover_jax.tokenizer.bpe_compact import chromosome_tokens

def status(field):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(field + ":"))

genome = read_genome(bundled.FASTA)
tokens = [chromosome_tokens([genome.contig_codes(c) for c in genome.contigs])]
del genome
learn_bpe_blocks([tokens[0][:5000].copy()], 5, progress=False, workers=2)  # load the compiled code
open("/proc/self/clear_refs", "w").write("5")  # peak (VmHWM) := resident now
resident = status("VmRSS")
learn_bpe_blocks(tokens, 600, progress=False, workers=2)
print(json.dumps({"n_slots": len(tokens[0]), "learning_bytes": status("VmHWM") - resident}))
"""
TABLE_BYTES = 604 * 604 * 8  # one [V, V] int64 pair-count table at 600 cycles


def test_learning_adds_a_tenth_of_a_byte_per_base_to_its_2_byte_tokens():
    """600 cycles, 2 threads, on the bundled 4.95 Mb: learning adds to the uint16 tokens < 1 byte per
    base (the blocks' bookkeeping: a 604-bit presence bitset, length, first slot, first and last token
    per 1,024 slots, ~0.1 byte/base, measured 7.8-10.8 MB in all as the machine's load varied) plus a
    constant of 3 pair-count tables (the learner's and one per thread while the first pairs are
    counted). One int32 per base more would add 4 bytes per base and fail it."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    if not Path("/proc/self/clear_refs").exists():
        pytest.skip("needs Linux /proc to reset the peak resident size")
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    probe = json.loads(out.strip().splitlines()[-1])
    assert probe["learning_bytes"] < 1.0 * probe["n_slots"] + 3 * TABLE_BYTES


def test_grover_bpe_engine_blocks_writes_the_linked_engines_vocabulary(bundled_genome, tmp_path):
    """`learn_vocabulary(engine="blocks")` (`grover bpe --engine blocks`) on two real slices in two files,
    train split only: the same tokenizer.json and merges.tsv as the default engine."""
    from grover_jax.programs.vocabulary import learn_vocabulary
    from tests.conftest import write_fasta

    files = [
        str(write_fasta(tmp_path / f"slice{i}.fa", [(f"chr20:{s + 1}-{e}", bundled_genome.bases("chr20", s, e))]))
        for i, (s, e) in enumerate([(33_000_000, 33_300_000), (34_000_000, 34_200_000)])
    ]
    splits = "valid=chr20:34000001-34050000"
    for engine in ("linked", "blocks"):
        learn_vocabulary(files, tmp_path / engine, cycles=200, split_spec=splits, engine=engine, progress=False)
    for name in ("tokenizer.json", "merges.tsv"):
        assert (tmp_path / "linked" / name).read_text() == (tmp_path / "blocks" / name).read_text()
