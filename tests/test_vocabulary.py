"""tokenizer.json: exact round trips, the Rust tokenizer equals the compiled replay, transformers loads it."""

import json

import numpy as np
import pytest

from grover_jax.tokenizer import (
    CLS_ID, SEP_ID, SPECIAL_TOKENS, UNK_ID, TokenizerFileError, learn_bpe, load_tokenizer, save_vocabulary,
)


@pytest.fixture(scope="module")
def vocabulary(tmp_path_factory, bundled_genome):
    """200 cycles learned on the bundle's train split."""
    contigs = [bundled_genome.contig_codes(c) for c in bundled_genome.split_contigs("train")]
    result = learn_bpe(contigs, 200, progress=False)
    out = tmp_path_factory.mktemp("vocab")
    save_vocabulary(result, out)
    return result, load_tokenizer(out)


def test_layout_special_tokens_then_bases_then_merges(vocabulary):
    result, tokenizer = vocabulary
    assert tokenizer.id_to_token[:9] == [*SPECIAL_TOKENS, "A", "C", "G", "T"]
    assert tokenizer.vocab_size == 5 + len(result.tokens)
    assert tokenizer.merges == [(m.left, m.right) for m in result.merges]


def test_round_trip_on_real_sequence_is_exact(vocabulary, bundled_genome):
    _, tokenizer = vocabulary
    sequence = bundled_genome.bases("chr20", 35_600_000, 35_700_000)  # valid split: unseen by BPE
    ids = tokenizer.encode(sequence)
    assert ids[0] == CLS_ID and ids[-1] == SEP_ID and UNK_ID not in ids
    assert tokenizer.decode(ids) == sequence
    assert len(ids) - 2 < len(sequence) / 3  # the vocabulary compresses real sequence


def test_rust_tokenizer_equals_the_compiled_replay_on_a_real_contig(vocabulary, bundled_genome):
    _, tokenizer = vocabulary
    contig = bundled_genome.split_contigs("valid")[0]
    ids, offsets = tokenizer.encode_contigs([bundled_genome.contig_codes(contig)])[0]
    sequence = bundled_genome.bases(contig.chromosome, contig.start, contig.end)
    assert tokenizer.encode(sequence, add_special_tokens=False) == ids.tolist()
    lengths = tokenizer.token_lengths[ids]
    assert offsets[0] == 0 and np.array_equal(offsets[1:], np.cumsum(lengths)[:-1])


def test_transformers_fast_tokenizer_gives_the_same_ids(vocabulary, bundled_genome, tmp_path):
    transformers = pytest.importorskip("transformers")
    _, tokenizer = vocabulary
    sequence = bundled_genome.bases("chr20", 36_600_000, 36_605_000)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_file=str(tokenizer.path))
    assert fast(sequence)["input_ids"] == tokenizer.encode(sequence)
    auto = transformers.AutoTokenizer.from_pretrained(str(tokenizer.path.parent))
    assert auto(sequence)["input_ids"] == tokenizer.encode(sequence)
    assert auto.mask_token_id == SPECIAL_TOKENS.index("[MASK]") and auto.pad_token_id == 0


def test_soft_masked_input_tokenizes_like_uppercase_and_n_runs_become_one_unk(vocabulary, bundled_genome):
    _, tokenizer = vocabulary
    left = bundled_genome.bases("chr20", 33_000_000, 33_000_300)
    right = bundled_genome.bases("chr20", 33_000_400, 33_000_700)
    assert tokenizer.encode(left.lower()) == tokenizer.encode(left)
    joined = tokenizer.encode(left + "NNNNN" + right, add_special_tokens=False)
    assert joined == (tokenizer.encode(left, add_special_tokens=False) + [UNK_ID]
                      + tokenizer.encode(right, add_special_tokens=False))


def test_merge_table_records_every_merge_frequency(vocabulary):
    result, tokenizer = vocabulary
    rows = (tokenizer.path.parent / "merges.tsv").read_text().splitlines()[1:]
    assert [int(r.split("\t")[5]) for r in rows] == [m.count for m in result.merges]
    summary = json.loads((tokenizer.path.parent / "bpe_summary.json").read_text())
    assert summary["n_tokens"] == int(result.token_counts.sum())


def test_a_broken_tokenizer_file_is_a_one_line_error(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"model": {"type": "BPE"}}')
    with pytest.raises(TokenizerFileError, match="not a BPE or k-mer tokenizer.json"):
        load_tokenizer(bad)
