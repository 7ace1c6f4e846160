"""The Python API: load, tokenize, embed by the documented windowing rule, score variants."""

import jax
import numpy as np
import pytest

import grover_jax
from grover_jax import bundled
from grover_jax.genome import read_fasta
from grover_jax.model.bert import BertForMaskedLM, BertModel
from grover_jax.tokenizer import CLS_ID, MASK_ID, SEP_ID


@pytest.fixture(scope="module")
def model(pretrained_run):
    return grover_jax.load(pretrained_run)


@pytest.fixture(scope="module")
def chr20():
    """The bundled real hg19 chr20 slice (chr20:32,000,001-37,000,000) as one string."""
    return read_fasta(bundled.FASTA, keep_soft_mask=False)[0].sequence.tobytes().decode("ascii")


def test_import_is_light_and_load_is_lazy():
    import subprocess
    import sys

    code = "import sys, grover_jax; assert 'jax' not in sys.modules; assert callable(grover_jax.load)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tokenize_spells_the_sequence(model, chr20):
    sequence = chr20[1_000_000:1_000_300]
    tokens = model.tokenize(sequence.lower())
    assert "".join(tokens) == sequence
    assert [model.tokenizer.vocab[t] for t in tokens] == list(model.token_ids(sequence))


def test_embed_of_a_long_sequence_is_the_concatenation_of_its_windows(model, chr20):
    sequence = chr20[3_600_000:3_601_500]  # ~1.5 kb of the valid block: 3+ windows of W = 126 tokens
    ids = model.tokenizer.encode(sequence, add_special_tokens=False)
    width = model.model_config.max_position_embeddings - 2
    assert len(ids) > 2 * width
    encoder = BertModel(model.model_config)
    expected = []
    for start in range(0, len(ids), width):  # each window alone, unpadded, as [CLS] window [SEP]
        window = np.array([[CLS_ID, *ids[start : start + width], SEP_ID]], np.int32)
        hidden = encoder.apply({"params": model.encoder_params}, window, np.ones_like(window))
        expected.append(np.asarray(hidden)[0, 1:-1])
    expected = np.concatenate(expected)

    tokens = model.embed(sequence)
    assert tokens.shape == (len(ids), model.hidden_size)
    np.testing.assert_allclose(tokens, expected, atol=2e-5)
    np.testing.assert_allclose(model.embed(sequence, pooling="mean"), expected.mean(axis=0), atol=2e-5)
    # Batched with a short sequence: each result is the same as alone.
    batch = model.embed([chr20[100:180], sequence])
    np.testing.assert_allclose(batch[1], tokens, atol=2e-5)
    np.testing.assert_allclose(batch[0], model.embed(chr20[100:180]), atol=2e-5)


def log_likelihood(model, sequence_ids, span_start, span):
    """log P(span) with the span's tokens masked in [CLS] sequence_ids [SEP], computed unjitted."""
    ids = np.array([CLS_ID, *sequence_ids, SEP_ID], np.int32)
    ids[1 + span_start : 1 + span_start + len(span)] = MASK_ID
    logits = BertForMaskedLM(model.model_config).apply({"params": model.mlm_params}, ids[None], np.ones((1, len(ids))))
    log_p = np.asarray(jax.nn.log_softmax(logits[0], axis=-1), np.float64)
    return sum(log_p[1 + span_start + i, token] for i, token in enumerate(span))


def test_layer_states_are_the_embeddings_and_each_layers_output(model, chr20):
    import dataclasses

    from grover_jax.model.bert import BertEmbeddings

    chunks = [model.token_ids(chr20[3_600_000:3_601_500])[: model.window_tokens], model.token_ids(chr20[100:180])]
    states = model.layer_states_chunks(chunks)
    assert [s.shape for s in states] == [(3, len(c), model.hidden_size) for c in chunks]  # embeddings + 2 layers
    # The last layer is embed_chunks' output, bit for bit; a subset of layers is those rows.
    for last, s in zip(model.embed_chunks(chunks), states):
        assert np.array_equal(s[-1], last)
    for subset, s in zip(model.layer_states_chunks(chunks, layers=[1, 0]), states):
        assert np.array_equal(subset, s[[1, 0]])
    # Independently: layer 0 from the embeddings module alone, layer 1 as the last state of the
    # same model cut to its first layer.
    window = np.array([[CLS_ID, *chunks[0], SEP_ID]], np.int32)
    embeddings = BertEmbeddings(model.model_config).apply({"params": model.encoder_params["embeddings"]}, window,
                                                          np.zeros_like(window), True)
    np.testing.assert_allclose(states[0][0], np.asarray(embeddings)[0, 1:-1], atol=1e-6)
    params = {"embeddings": model.encoder_params["embeddings"],
              "encoder": {"layer": {"0": model.encoder_params["encoder"]["layer"]["0"]}}}
    one_layer = BertModel(dataclasses.replace(model.model_config, num_layers=1))
    hidden = one_layer.apply({"params": params}, window, np.ones_like(window))
    np.testing.assert_allclose(states[0][1], np.asarray(hidden)[0, 1:-1], atol=2e-5)
    with pytest.raises(ValueError, match="layers must be among 0..2"):
        model.layer_states_chunks(chunks, layers=[3])


def test_variant_score_is_the_masked_log_likelihood_ratio(model, chr20):
    sequence = chr20[3_600_100:3_600_260]
    pos, ref = 80, chr20[3_600_180]
    alt = "A" if ref != "A" else "G"
    ref_ids = model.tokenizer.encode(sequence, add_special_tokens=False)
    alt_ids = model.tokenizer.encode(sequence[:pos] + alt + sequence[pos + 1 :], add_special_tokens=False)
    # The variant tokens: what is left after the shared leading and trailing tokens.
    prefix = next(i for i, (r, a) in enumerate(zip(ref_ids, alt_ids)) if r != a)
    suffix = next(i for i, (r, a) in enumerate(zip(ref_ids[::-1], alt_ids[::-1])) if r != a)
    ref_span, alt_span = ref_ids[prefix : len(ref_ids) - suffix], alt_ids[prefix : len(alt_ids) - suffix]
    assert "".join(model.tokenizer.id_to_token[i] for i in alt_span).find(alt) >= 0
    expected = (log_likelihood(model, alt_ids, prefix, alt_span)
                - log_likelihood(model, ref_ids, prefix, ref_span))

    score = model.variant_score(sequence, pos, ref, alt)
    assert score == pytest.approx(expected, abs=1e-4)
    # Swapping the alleles swaps the sign; an allele against itself scores 0.
    back = model.variant_score(sequence[:pos] + alt + sequence[pos + 1 :], pos, alt, ref)
    assert back == pytest.approx(-score, abs=1e-5)
    assert model.variant_score(sequence, pos, ref, ref) == 0.0
    with pytest.raises(ValueError, match="does not match"):
        model.variant_score(sequence, pos, alt, ref)


def test_the_real_genome_scores_above_random_substitutions_on_average(model, chr20):
    """Sign sanity on the held-out valid block: replacing the real base by another lowers the
    likelihood more often than not (the model learned something of hg19)."""
    rng = np.random.default_rng(0)
    scores = []
    for p in range(3_600_050, 3_601_450, 50):
        ref = chr20[p]
        alt = str(rng.choice([b for b in "ACGT" if b != ref]))
        scores.append(model.variant_score(chr20[p - 40 : p + 40], 40, ref, alt))
    assert np.mean(scores) < 0
    assert np.mean(np.array(scores) < 0) > 0.5


def test_a_finetune_folder_predicts_as_the_finetune_program_does(pretrained_run, tmp_path, chr20):
    import dataclasses
    import json

    import flax.linen as nn

    from grover_jax.model import make_classifier
    from grover_jax.programs import predict
    from grover_jax.runs import load_pretrained, save_params

    pretrained = load_pretrained(pretrained_run)
    classifier = make_classifier(pretrained.config.model, pretrained.model_config.vocab_size, 2, "mean")
    ids = np.full((1, 8), 7, np.int32)
    shapes = nn.unbox(jax.eval_shape(classifier.init, jax.random.key(0), ids, ids)["params"])
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: rng.normal(0.0, 0.2, s.shape).astype(np.float32), shapes)
    save_params(params, tmp_path / "best" / "params.npz")
    (tmp_path / "tokenizer.json").write_bytes(pretrained.tokenizer_path.read_bytes())
    (tmp_path / "finetune.json").write_text(json.dumps({
        "config": {"model": {"pooling": "mean"}}, "encoder": dataclasses.asdict(pretrained.model_config),
        "num_classes": 2, "class_names": ["background", "promoter"]}))

    model = grover_jax.load(tmp_path)
    sequences = [chr20[2_000_000:2_000_300], chr20[2_100_000:2_100_120]]
    logits = model.predict(sequences)
    apply = jax.jit(classifier.apply)
    expected = [np.asarray(apply({"params": params}, np.array([i]), np.ones((1, len(i)), np.int32)))[0]
                for i in (model.tokenizer.encode(s) for s in sequences)]
    np.testing.assert_allclose(logits, np.stack(expected), atol=1e-5)
    assert model.classifier.class_names == ["background", "promoter"]
    probabilities = predict.score_sequences(sequences, *predict.load_finetuned(tmp_path))
    np.testing.assert_allclose(np.asarray(jax.nn.softmax(logits)), probabilities, atol=1e-5)
