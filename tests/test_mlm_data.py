"""Masked-token batches: GROVER's rates, no padding among targets, determinism by step, process sharding."""

import numpy as np
import pytest

from grover_jax.data.mlm import MaskingConfig, MlmBatches, eval_batches
from grover_jax.genome import read_genome
from grover_jax.store import build_store, open_store
from grover_jax.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, learn_bpe, load_tokenizer, save_vocabulary

SPLITS = "valid=chr20:33200001-33300000"


@pytest.fixture(scope="module")
def store(tmp_path_factory, bundled_slice_fasta):
    genome = read_genome(bundled_slice_fasta, SPLITS)
    result = learn_bpe([genome.contig_codes(c) for c in genome.split_contigs("train")], 100, progress=False)
    root = tmp_path_factory.mktemp("mlm")
    save_vocabulary(result, root / "vocab")
    build_store(genome, load_tokenizer(root / "vocab"), root / "store", split_spec=SPLITS, progress=False)
    return open_store(root / "store")


def test_masking_rates_match_the_config(store):
    config = MaskingConfig(seq_len=128, mask_rate=0.15)
    batch = MlmBatches(store, "train", config, global_batch_size=512, seed=0).batch(0)
    real = (batch["attention_mask"] == 1) & (batch["mlm_labels"] > SEP_ID + 1)
    chosen = batch["mlm_weights"] == 1
    assert chosen.sum() / real.sum() == pytest.approx(0.15, abs=0.01)
    inputs, labels = batch["input_ids"][chosen], batch["mlm_labels"][chosen]
    as_mask = (inputs == MASK_ID).mean()
    unchanged = (inputs == labels).mean()
    assert as_mask == pytest.approx(0.8, abs=0.02)
    # unchanged = the 10 % kept + the random draws that happen to hit the original token
    assert unchanged == pytest.approx(0.1 + 0.1 / (store.vocab_size - 5), abs=0.02)
    assert np.all(inputs[inputs != MASK_ID] >= 5)
    assert np.array_equal(batch["input_ids"][~chosen], batch["mlm_labels"][~chosen])


def test_padding_and_special_tokens_are_never_targets(store):
    config = MaskingConfig(seq_len=128, mask_rate=0.5, full_window_fraction=0.0)
    batch = MlmBatches(store, "train", config, global_batch_size=256, seed=1).batch(3)
    assert (batch["attention_mask"] == 0).any(), "short windows must produce padding"
    targets = batch["mlm_weights"] == 1
    assert not np.any(targets & (batch["attention_mask"] == 0))
    assert not np.any(targets & np.isin(batch["mlm_labels"], [PAD_ID, CLS_ID, SEP_ID]))
    assert np.all(batch["input_ids"][:, 0] == CLS_ID)


def test_window_lengths_follow_grover_half_full_half_random(store):
    config = MaskingConfig(seq_len=128, min_window_tokens=20)
    lengths = MlmBatches(store, "train", config, 1000, seed=2).batch(0)["attention_mask"].sum(1) - 2
    assert np.mean(lengths == 126) == pytest.approx(0.5 + 0.5 / 107, abs=0.05)
    assert lengths.min() >= 20 and lengths.max() == 126


def test_batches_are_a_function_of_the_step_and_rows_compose(store):
    config = MaskingConfig(seq_len=64)
    batches = MlmBatches(store, "train", config, 8, seed=3)
    again = MlmBatches(store, "train", config, 8, seed=3)
    full = batches.batch(5)
    for key, value in again.batch(5).items():
        assert np.array_equal(value, full[key])
    halves = [batches.batch(5, slice(0, 4)), batches.batch(5, slice(4, 8))]
    for key in full:
        assert np.array_equal(np.concatenate([h[key] for h in halves]), full[key])
    assert not np.array_equal(batches.batch(6)["mlm_labels"], full["mlm_labels"])


def test_training_windows_come_from_the_train_split_only(store):
    config = MaskingConfig(seq_len=64)
    batches = MlmBatches(store, "train", config, 4, seed=4)
    valid = [c for c in store.contigs if c["split"] == "valid"]
    lo, hi = valid[0]["token_offset"], valid[0]["token_offset"] + valid[0]["n_tokens"]
    assert not np.any((batches.window_starts >= lo) & (batches.window_starts < hi))


def test_eval_batches_are_fixed(store):
    config = MaskingConfig(seq_len=64, mask_rate=0.15)
    first = list(eval_batches(store, "valid", config, 8, 3, seed=0))
    second = list(eval_batches(store, "valid", config, 8, 3, seed=0))
    assert len(first) == 3
    assert all(np.array_equal(a["input_ids"], b["input_ids"]) for a, b in zip(first, second))
