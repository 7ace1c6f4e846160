"""The masked-LM methods of a loaded model (grover_jax/masked_lm.py) on the shipped model, each
checked against the model applied directly, one input at a time, outside the batching code."""

import jax
import numpy as np
import pytest

import grover_jax
from grover_jax import bundled
from grover_jax.masked_lm import MaskedLMError
from grover_jax.model.bert import BertForMaskedLM

NAME = "grover-small-hg19-chr20"


@pytest.fixture(scope="module")
def apply(shipped_model):
    """The MLM applied to one unpadded row [CLS] ids [SEP]: natural-log probabilities [L, V]."""
    mlm = jax.jit(BertForMaskedLM(shipped_model.model_config).apply)

    def log_probs(ids):
        row = np.array([[shipped_model.cls_id, *ids, shipped_model.sep_id]], np.int32)
        logits = mlm({"params": shipped_model.mlm_params}, row, np.ones_like(row))
        logits = np.asarray(logits[0], np.float64)[1:-1]
        shifted = logits - logits.max(axis=-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))

    return log_probs


def test_per_token_log_probs_are_the_unmasked_models_with_its_tokens(shipped_model, chr20_bases, apply):
    sequence = chr20_bases[3_600_000:3_600_200]  # the bundle's valid block
    scores = shipped_model.mlm_log_probs(sequence)
    assert "".join(scores.tokens) == sequence
    assert list(scores.ids) == shipped_model.tokenizer.encode(sequence, add_special_tokens=False)
    np.testing.assert_allclose(scores.values, apply(scores.ids), atol=2e-4)
    logits = shipped_model.mlm_logits([sequence, chr20_bases[100:150]])[0].values
    np.testing.assert_allclose(logits - logits.max(-1, keepdims=True),
                               scores.values - scores.values.max(-1, keepdims=True), atol=2e-4)


def test_fill_mask_top1_is_the_argmax_of_the_logits_at_the_mask(shipped_model, chr20_bases, apply):
    ids = shipped_model.token_ids(chr20_bases[3_600_300:3_600_500])
    masked = ids.copy()
    masked[[7, 20]] = shipped_model.mask_id
    tokens = [shipped_model.tokenizer.id_to_token[i] for i in masked]
    result = shipped_model.fill_mask_tokens(tokens, top_k=4)
    assert len(result) == 2 and all(len(per_mask) == 4 for per_mask in result)
    expected = apply(masked)
    for position, per_mask in zip((7, 20), result):
        assert per_mask[0]["token"] == int(np.argmax(expected[position]))
        np.testing.assert_allclose([c["score"] for c in per_mask], np.sort(np.exp(expected[position]))[::-1][:4],
                                   atol=1e-5)
        assert per_mask[0]["token_str"] == shipped_model.tokenizer.id_to_token[per_mask[0]["token"]]
    text = "".join(tokens)
    assert result[0][0]["sequence"] == text.replace("[MASK]", result[0][0]["token_str"], 1)
    # A sequence with [MASK] markers: the bases between markers tokenized as they stand.
    assert shipped_model.fill_mask(text, top_k=4) == shipped_model.fill_mask_tokens(shipped_model.tokenize(text), top_k=4)
    with pytest.raises(MaskedLMError, match="input 0 has no \\[MASK\\]"):
        shipped_model.fill_mask(chr20_bases[:50])
    with pytest.raises(MaskedLMError, match="not a token"):
        shipped_model.fill_mask_tokens(["ACG", "[MASK]", "XYZ"])


def test_fill_mask_agrees_with_the_transformers_pipeline_on_the_exported_folder(shipped_model, chr20_bases):
    pytest.importorskip("torch", reason="the pipeline needs torch")
    transformers = pytest.importorskip("transformers", reason="the pipeline needs transformers")
    pipeline = transformers.pipeline("fill-mask", model=str(bundled.MODELS[NAME]), device="cpu")
    one = chr20_bases[3_600_000:3_600_040] + "[MASK]" + chr20_bases[3_600_046:3_600_090]
    two = chr20_bases[3_601_000:3_601_030] + "[MASK]" + chr20_bases[3_601_035:3_601_070] + "[MASK]" + chr20_bases[3_601_074:3_601_100]
    for text in (one, two):
        theirs, ours = pipeline(text, top_k=5), shipped_model.fill_mask(text, top_k=5)
        if text is one:
            theirs, ours = [theirs], [ours]
        for their_mask, our_mask in zip(theirs, ours, strict=True):
            assert [c["token"] for c in our_mask] == [c["token"] for c in their_mask]
            assert [c["token_str"] for c in our_mask] == [c["token_str"] for c in their_mask]
            np.testing.assert_allclose([c["score"] for c in our_mask], [c["score"] for c in their_mask], atol=1e-5)
    assert shipped_model.fill_mask(one)[0]["sequence"] == pipeline(one)[0]["sequence"]


def test_pseudo_log_likelihood_is_the_sum_of_one_masked_position_at_a_time(shipped_model, chr20_bases, apply):
    sequences = [chr20_bases[3_600_600:3_600_700], chr20_bases[3_602_000:3_602_040]]
    expected = []
    for sequence in sequences:
        ids = shipped_model.token_ids(sequence)
        per_token = []
        for i in range(len(ids)):
            masked = ids.copy()
            masked[i] = shipped_model.mask_id
            per_token.append(apply(masked)[i, ids[i]])
        expected.append(np.array(per_token))
    np.testing.assert_allclose(shipped_model.pseudo_log_likelihood(sequences), [e.sum() for e in expected], atol=2e-3)
    for ours, theirs in zip(shipped_model.pseudo_log_likelihood(sequences, per_token=True), expected, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=2e-4)
    assert shipped_model.pseudo_log_likelihood(sequences[1]) == pytest.approx(expected[1].sum(), abs=2e-3)


def test_batched_variant_scores_equal_one_variant_score_at_a_time(shipped_model, chr20_bases):
    window = chr20_bases[3_600_100:3_600_260]
    variants = [(window, 80, window[80], "A" if window[80] != "A" else "G"),
                (window, 30, window[30:33], window[30]),  # a 2-base deletion
                (window[:120], 60, window[60], window[60] + "TT"),  # an insertion, a shorter sequence
                (window, 100, window[100], window[100])]  # ref against itself
    expected = [shipped_model.variant_score(*variant) for variant in variants]
    np.testing.assert_allclose(shipped_model.variant_scores(variants), expected, atol=2e-4)
    assert expected[3] == 0.0


def test_variants_by_genome_coordinate_are_scored_in_their_window(shipped_model, chr20_bases, tmp_path):
    fasta = tmp_path / "slice.fa"
    fasta.write_text(">chr20:35600001-35610000\n" + chr20_bases[3_600_000:3_610_000] + "\n")
    flank = 60
    # 1-based VCF positions on chr20; the slice starts at 35,600,001 (= chr20[3_600_000]).
    positions = [35_600_500, 35_605_017]
    variants = []
    for position in positions:
        ref = chr20_bases[position - 32_000_001]
        variants.append(("20" if position == positions[1] else "chr20", position, ref, "C" if ref != "C" else "T"))
    expected = []
    for _, position, ref, alt in variants:
        start = position - 32_000_001
        expected.append(shipped_model.variant_score(chr20_bases[start - flank : start + 1 + flank], flank, ref, alt))
    np.testing.assert_allclose(shipped_model.score_variants(fasta, variants, flank=flank), expected, atol=2e-4)

    wrong = [variants[0], ("chr20", positions[1], "ACGT"[("ACGT".index(variants[1][2]) + 1) % 4], "A")]
    with pytest.raises(MaskedLMError, match=r"^variant 1 .*REF . does not match the genome at chr20:35605017"):
        shipped_model.score_variants(fasta, wrong, flank=flank)
    with pytest.raises(MaskedLMError, match=r"^variant 0 .*chr21:100 is not in the genome"):
        shipped_model.score_variants(fasta, [("chr21", 100, "A", "C")])


def test_a_pretraining_run_folder_has_the_same_methods(pretrained_run, chr20_bases):
    shipped_model = grover_jax.load(pretrained_run)
    text = chr20_bases[3_600_000:3_600_060] + "[MASK]" + chr20_bases[3_600_064:3_600_120]
    logits = shipped_model.mlm_logits(text)
    at = logits.tokens.index("[MASK]")
    assert shipped_model.fill_mask(text, top_k=1)[0]["token"] == int(np.argmax(logits.values[at]))
    per_token = shipped_model.pseudo_log_likelihood(chr20_bases[3_600_000:3_600_120], per_token=True)
    assert len(per_token) == len(shipped_model.tokenize(chr20_bases[3_600_000:3_600_120])) and np.all(per_token <= 0)
