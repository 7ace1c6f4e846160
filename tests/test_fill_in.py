"""Fill-in evaluation: targets, the n-gram baseline against a brute-force count, the paired bootstrap."""

from collections import Counter, defaultdict

import numpy as np
import pytest

from grover_jax.evaluation.bootstrap import paired_bootstrap
from grover_jax.evaluation.fill_in import (
    CONTEXT_TOKENS,
    TOP_K,
    FillInNgram,
    fill_in_set,
    non_adjacent_positions,
    score_model,
)
from grover_jax.store import TokenStore, open_store
from grover_jax.tokenizer import MASK_ID, SPECIAL_TOKENS


def test_non_adjacent_positions_are_uniform_and_never_touch():
    rng = np.random.default_rng(0)
    seen = Counter()
    for _ in range(6000):
        positions = non_adjacent_positions(5, 2, rng)
        assert np.all(np.diff(positions) >= 2) and positions.min() >= 0 and positions.max() < 5
        seen[tuple(positions)] += 1
    # The six non-adjacent pairs of 5 slots, each ~1/6 of the draws.
    assert set(seen) == {(0, 2), (0, 3), (0, 4), (1, 3), (1, 4), (2, 4)}
    assert max(seen.values()) / min(seen.values()) < 1.2


def test_fill_in_set_masks_every_target_with_both_neighbours_real(bundled_store):
    store = open_store(bundled_store)
    fill = fill_in_set(store, "valid", 128, 0.15, n_windows=8)
    inputs = fill.masked_inputs_BxL
    assert np.all(inputs[fill.target_row, fill.target_col] == MASK_ID)
    assert np.all(fill.labels >= len(SPECIAL_TOKENS))
    neighbours = fill.neighbours()
    assert np.all(neighbours >= len(SPECIAL_TOKENS))  # never [CLS]/[SEP]: CONTEXT_TOKENS keeps them out
    for row in range(8):
        cols = np.sort(fill.target_col[fill.target_row == row])
        assert np.all(np.diff(cols) >= 2)
        assert cols.min() >= 1 + CONTEXT_TOKENS and cols.max() <= 126 - CONTEXT_TOKENS
        assert len(cols) == round(0.15 * 126)
    # The same windows, targets and labels every time (a fixed evaluation set).
    again = fill_in_set(store, "valid", 128, 0.15, n_windows=8)
    assert np.array_equal(again.target_col, fill.target_col) and np.array_equal(again.labels, fill.labels)


def brute_force_ranking(store: TokenStore, fill, vocab_size: int) -> np.ndarray:
    """The n-gram's documented rule, counted with dictionaries over the train contigs."""
    wide, narrow, unigram = defaultdict(Counter), defaultdict(Counter), Counter()
    for contig in store.split_contigs("train"):
        t = [int(x) for x in store.tokens[contig["token_offset"]: contig["token_offset"] + contig["n_tokens"]]]
        for i in range(2, len(t) - 2):
            wide[(t[i - 2], t[i - 1], t[i + 1], t[i + 2])][t[i]] += 1
            narrow[(t[i - 1], t[i + 1])][t[i]] += 1
            unigram[t[i]] += 1

    def top(counter):
        return [token for token, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_K]]

    ranked = []
    for l2, l1, r1, r2 in fill.neighbours().tolist():
        merged = []
        for candidates in (top(wide.get((l2, l1, r1, r2), Counter())), top(narrow.get((l1, r1), Counter())),
                           top(unigram)):
            merged += [c for c in candidates if c not in merged]
            if len(merged) >= TOP_K:
                break
        ranked.append(merged[:TOP_K])
    return np.array(ranked)


def test_ngram_fill_in_equals_a_brute_force_count_on_real_sequence(bundled_store):
    store = open_store(bundled_store)
    fill = fill_in_set(store, "valid", 128, 0.15, n_windows=24)
    ngram = FillInNgram(store, "train")
    ranked = brute_force_ranking(store, fill, store.vocab_size)
    scores = ngram.score(fill)
    labels = fill.labels
    assert np.array_equal(scores.top1, ranked[:, 0] == labels)
    assert np.array_equal(scores.top10, (ranked == labels[:, None]).any(axis=1))
    # It is a real baseline on real sequence: well above the unigram, well below perfect.
    unigram = ngram.score_unigram(fill)
    assert unigram.top1.mean() + 0.05 < scores.top1.mean() < 0.6


def test_score_model_ranks_and_log_probabilities():
    class Fill:  # two windows, three targets
        target_row = np.array([0, 0, 1])
        target_col = np.array([1, 3, 2])
        attention_BxL = np.ones((2, 5), np.int32)
        masked_inputs_BxL = np.zeros((2, 5), np.int32)
        labels = np.array([5, 6, 7])

    vocab = 9
    logits = np.zeros((2, 5, vocab))
    logits[0, 1, 5] = 3.0  # label is the best genome token
    logits[0, 3, 5], logits[0, 3, 6] = 2.0, 1.0  # label second
    logits[1, 2, 0] = 50.0  # a special token scoring highest is not a candidate
    logits[1, 2, 7] = -1.0  # label last of the genome tokens (5..8)
    scores = score_model(lambda ids, mask: logits[: len(ids)] if len(ids) == 2 else np.resize(logits, (len(ids), 5, vocab)),
                         Fill(), batch_size=2)
    assert scores.top1.tolist() == [True, False, False]
    assert scores.top10.tolist() == [True, True, True]
    genome = logits[:, :, len(SPECIAL_TOKENS):]
    expected = [genome[0, 1, 0] - np.log(np.exp(genome[0, 1]).sum()),
                genome[0, 3, 1] - np.log(np.exp(genome[0, 3]).sum()),
                genome[1, 2, 2] - np.log(np.exp(genome[1, 2]).sum())]
    assert np.allclose(scores.log_prob, expected)


def test_paired_bootstrap_matches_a_hand_computed_case():
    # Two groups: group 0 has differences (1, 1), group 1 has (0,). Resampling groups gives means
    # 1 (both draws group 0), 1/3... exactly: draws {0,0}: 4/4 = 1; {0,1} or {1,0}: 2/3; {1,1}: 0.
    a, b, groups = np.array([1, 1, 0]), np.array([0, 0, 0]), np.array([7, 7, 9])
    result = paired_bootstrap(a, b, groups, n_resamples=20000, level=0.4, seed=1)
    assert result["difference"] == pytest.approx(2 / 3)
    # P(mean=0) = 1/4, P(2/3) = 1/2, P(1) = 1/4: the 30th and 70th percentiles are both 2/3 ...
    assert result["low"] == pytest.approx(2 / 3) and result["high"] == pytest.approx(2 / 3)
    # ... while a 90 % interval runs from 0 (a quarter of the group resamples) to 1. Resampling single
    # targets instead gives 0 only when all three draws are the third target (1/27 < 5 %), so its
    # interval starts at 1/3: the level and the grouping both show in the result.
    wide = paired_bootstrap(a, b, groups, n_resamples=20000, level=0.9, seed=1)
    assert wide["low"] == 0.0 and wide["high"] == 1.0
    ungrouped = paired_bootstrap(a, b, None, n_resamples=20000, level=0.9, seed=1)
    assert ungrouped["low"] == pytest.approx(1 / 3) and ungrouped["high"] == 1.0


def test_paired_bootstrap_interval_has_the_asked_level_with_half_the_rest_in_each_tail():
    # Differences (1, 1, 0, 0), resampled one by one: the mean is k/4 with k ~ Binomial(4, 1/2), so
    # P = 1/16, 4/16, 6/16, 4/16, 1/16 for 0, 1/4, 1/2, 3/4, 1. A 90 % interval leaves 5 % in each
    # tail: 0 to 1 (a 10 % tail each side would give 1/4 to 3/4); a 50 % interval, 1/4 to 3/4 (a
    # level read as 95 % would give 0 to 1, a 25 % tail read as 50 % would give 1/2 to 1/2).
    a, b = np.array([1, 1, 0, 0]), np.zeros(4)
    ninety = paired_bootstrap(a, b, n_resamples=20000, level=0.9, seed=2)
    assert (ninety["low"], ninety["high"]) == (0.0, 1.0)
    half = paired_bootstrap(a, b, n_resamples=20000, level=0.5, seed=2)
    assert (half["low"], half["high"]) == (0.25, 0.75)


def test_paired_bootstrap_pairs_the_resamples():
    rng = np.random.default_rng(0)
    shared = rng.normal(size=2000)
    a, b = shared + 0.1, shared  # b is a up to a constant: the paired interval is that constant
    result = paired_bootstrap(a, b, n_resamples=200)
    assert result["low"] == pytest.approx(0.1) and result["high"] == pytest.approx(0.1)
    with pytest.raises(ValueError):
        paired_bootstrap(a, b[:-1])
