"""The windowed replay (the store's encoder) against the linked-list replay: random sequence cut into
tiny windows, frontiers that meet (the wider-margin retry), packed short contigs, and a real slice."""

import numpy as np
import pytest

from grover_jax import bundled
from grover_jax.tokenizer import bpe_replay, learn_bpe, load_tokenizer
from grover_jax.tokenizer.bpe import replay_merges_linked
from grover_jax.tokenizer.bpe_replay import replay_merges, replay_regions

BUNDLED_TOKENIZER = bundled.MODELS["grover-small-hg19-chr20"] / "tokenizer.json"  # 600 cycles of chr20


def vocabulary_of(contigs, cycles):
    result = learn_bpe(contigs, cycles, progress=False)
    return {t: i for i, t in enumerate(result.tokens)}, [(m.left, m.right) for m in result.merges]


def assert_same(contigs, vocab, merges, **options):
    ours = replay_merges(contigs, vocab, merges, **options)
    reference = replay_merges_linked(contigs, vocab, merges)
    assert len(ours) == len(reference)
    for c, ((ids, offsets), (ref_ids, ref_offsets)) in enumerate(zip(ours, reference)):
        assert ids.tolist() == ref_ids.tolist(), f"contig {c}"
        assert offsets.tolist() == ref_offsets.tolist(), f"contig {c}"


def random_contigs(rng, n, longest):
    """Base codes with long runs and repeats: often only one to three letters."""
    contigs = []
    for _ in range(n):
        length = int(rng.integers(0, longest))
        letters = rng.choice(4, size=int(rng.integers(1, 5)), replace=False)
        runs = rng.geometric(rng.uniform(0.05, 0.9), size=length)
        sequence = np.repeat(rng.choice(letters, size=length), runs)[:length]
        contigs.append(sequence.astype(np.uint8))
    return contigs


@pytest.mark.parametrize("compress", [True, False], ids=["vector compaction", "memmove"])
@pytest.mark.parametrize("seed", range(12))
def test_tiny_windows_replay_random_sequence_like_the_linked_replay(monkeypatch, seed, compress):
    monkeypatch.setattr(bpe_replay, "VECTOR_COMPRESS", compress)
    rng = np.random.default_rng(seed)
    contigs = random_contigs(rng, 8, 3000)
    vocab, merges = vocabulary_of(contigs, 60)
    window, margin = int(rng.integers(8, 300)), int(rng.integers(1, 40))
    assert_same(contigs, vocab, merges, window=window, margin=margin, workers=int(rng.integers(1, 4)))


def test_frontiers_that_meet_are_replayed_again_with_wider_margins(monkeypatch):
    """A homopolymer run across every window edge: the merge (A, A)'s parity is unknown from inside a
    window, so the frontiers meet, and the contig must be replayed again (finally whole) to stay exact."""
    contigs = [np.zeros(5000, np.uint8), np.array([0, 1] * 300 + [0] * 777 + [2, 3] * 300, np.uint8)]
    vocab, merges = vocabulary_of(contigs + [np.array([0, 1, 2, 3] * 50, np.uint8)], 12)
    calls = []
    original = bpe_replay._replay_contigs
    monkeypatch.setattr(bpe_replay, "_replay_contigs", lambda *a: calls.append(a[-2:]) or original(*a))
    assert_same(contigs, vocab, merges, window=256, margin=4, workers=2)
    assert len(calls) > 1, "no window's frontiers met: the retry was not exercised"


def test_short_contigs_are_packed_and_split_apart_again():
    rng = np.random.default_rng(7)
    contigs = random_contigs(rng, 300, 40) + [np.zeros(0, np.uint8)] * 3
    rng.shuffle(contigs)
    vocab, merges = vocabulary_of(contigs, 40)
    assert_same(contigs, vocab, merges, window=200, margin=16)


def test_the_bundled_vocabulary_on_a_real_slice_in_small_windows(bundled_genome):
    tokenizer = load_tokenizer(BUNDLED_TOKENIZER)
    contigs = [bundled_genome.contig_codes(c) for c in bundled_genome.contigs]
    assert_same(contigs, tokenizer.vocab, tokenizer.merges, window=4096, margin=64)
    ids, offsets = replay_merges(contigs[:1], tokenizer.vocab, tokenizer.merges)[0]
    assert (ids.dtype, offsets.dtype) == (np.uint16, np.uint32)


def test_regions_of_a_record_replay_in_place_like_their_codes(bundled_genome):
    tokenizer = load_tokenizer(BUNDLED_TOKENIZER)
    record = bundled_genome.records[0]
    contigs = [c for c in bundled_genome.contigs if record.offset <= c.start < record.end]
    regions = np.array([(c.start - record.offset, c.end - record.offset) for c in contigs])
    in_place = replay_regions(record.sequence, regions, tokenizer.vocab, tokenizer.merges, window=8192)
    from_codes = replay_merges([bundled_genome.contig_codes(c) for c in contigs], tokenizer.vocab, tokenizer.merges)
    assert len(in_place) == len(contigs) > 1
    for (ids, offsets), (code_ids, code_offsets) in zip(in_place, from_codes):
        assert np.array_equal(ids, code_ids) and np.array_equal(offsets, code_offsets)


def test_a_letter_other_than_acgt_is_named_not_replayed():
    vocab, merges = vocabulary_of([np.array([0, 1, 2, 3] * 20, np.uint8)], 5)
    sequence = np.frombuffer(b"ACGTACGTNNACGTACGT", np.uint8)
    assert len(replay_regions(sequence, [(0, 8), (10, 18)], vocab, merges)) == 2
    with pytest.raises(ValueError, match="contig 1 holds a base other than A, C, G or T"):
        replay_regions(sequence, [(0, 8), (4, 12)], vocab, merges)


@pytest.mark.parametrize("workers", [1, 2, 5])
def test_only_empty_contigs_give_empty_tokens_on_any_number_of_threads(workers):
    """The linked replay gave a thread an empty group here and read out of bounds (a segfault)."""
    vocab, merges = vocabulary_of([np.array([0, 1, 2, 3] * 20, np.uint8)], 5)
    contigs = [np.zeros(0, np.uint8)] * 2
    for replay in (replay_merges, replay_merges_linked):
        assert [(len(i), len(o)) for i, o in replay(contigs, vocab, merges, workers=workers)] == [(0, 0), (0, 0)]


def test_a_vocabulary_past_uint16_ids_is_one_line_not_a_huge_table():
    with pytest.raises(ValueError, match="ids up to 70000 does not fit the replay's uint16 tokens"):
        replay_merges([np.zeros(4, np.uint8)], {"A": 0, "C": 1, "G": 2, "T": 3, "AA": 70000}, [("A", "A")])


@pytest.mark.parametrize("window, margin", [(0, 10), (-5, 10), (64, -1)])
def test_a_window_under_one_base_or_a_negative_margin_is_one_line(window, margin):
    vocab = {"A": 0, "C": 1, "G": 2, "T": 3, "AA": 4}
    with pytest.raises(ValueError, match=f"window {window}, margin {margin}: a window needs at least 1 base"):
        replay_merges([np.zeros(100, np.uint8)], vocab, [("A", "A")], window=window, margin=margin)
    with pytest.raises(ValueError, match="a margin at least 0"):
        replay_regions(np.frombuffer(b"AAAA", np.uint8), np.array([[0, 4]]), vocab, [("A", "A")], window=window,
                       margin=margin)
