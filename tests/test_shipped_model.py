"""The chromosome-scale model shipped inside the package: loadable by name, small, documented, and
the trained weights (it fills in held-out sequence better than the unigram)."""

import dataclasses
import json

import jax
import numpy as np
import pytest

import grover_jax
from grover_jax import bundled
from grover_jax.evaluation.fill_in import fill_in_set, score_model
from grover_jax.model.bert import BertForMaskedLM
from grover_jax.programs.mlm_eval import masked_lm_logits_fn
from grover_jax.programs.vocabulary import build_token_store
from grover_jax.runs import load_pretrained, run_folder
from grover_jax.store import open_store

NAME = "grover-small-hg19-chr20"
FOLDER = bundled.MODELS[NAME]


def test_the_folder_is_a_small_hf_folder_with_its_card():
    files = {path.name for path in FOLDER.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= files
    assert sum(path.stat().st_size for path in FOLDER.iterdir()) <= 25_000_000
    card = (FOLDER / "README.md").read_text()
    assert card.startswith("---\n") and "scripts/reproduce.py --scale chromosome" in card
    assert "commit `" in card and "model − n-gram" in card
    from safetensors.numpy import load_file

    assert {tensor.dtype for tensor in load_file(FOLDER / "model.safetensors").values()} == {np.dtype("float16")}


def test_loadable_by_name_everywhere():
    assert run_folder(NAME) == FOLDER
    pretrained = load_pretrained(NAME)
    config = json.loads((FOLDER / "config.json").read_text())
    assert pretrained.model_config.num_layers == config["num_hidden_layers"]
    model = grover_jax.load(NAME)
    vectors = model.embed(["ACGTTGCATTTAGGCAAATCCCAGCACTTTGGGAGGCCGAGGCGGGCGGATCACGAGG"], pooling="mean")
    assert vectors.shape == (1, config["hidden_size"]) and np.all(np.isfinite(vectors))


def test_a_folder_on_disk_is_never_shadowed_by_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / NAME).mkdir()
    assert bundled.model_folder(NAME) is None


@pytest.fixture(scope="module")
def bundled_store_with_shipped_vocabulary(tmp_path_factory):
    out = tmp_path_factory.mktemp("shipped") / "store"
    return open_store(build_token_store(None, FOLDER / "tokenizer.json", out, progress=False))


def test_it_predicts_held_out_sequence_far_better_than_its_untrained_self(bundled_store_with_shipped_vocabulary):
    # The bundled slice's test block (chr20:36.5-37 Mb) is inside the model's own test regions. The
    # shipped model is near the unigram at fill-in top-1 (RESULTS.md), so the check that these are
    # the trained weights is the perplexity: a freshly initialised encoder of the same shape is near
    # the vocabulary size.
    store = bundled_store_with_shipped_vocabulary
    fill = fill_in_set(store, "test", 256, 0.15, n_windows=48)
    pretrained = load_pretrained(NAME)
    trained = score_model(masked_lm_logits_fn(pretrained), fill).summary()
    untrained_params = BertForMaskedLM(pretrained.model_config).init(
        jax.random.PRNGKey(0), fill.tokens_BxL[:1], fill.attention_BxL[:1])["params"]
    untrained = score_model(masked_lm_logits_fn(dataclasses.replace(pretrained, params=untrained_params)),
                            fill).summary()
    assert untrained["perplexity"] > 0.8 * (store.vocab_size - 5)
    assert trained["perplexity"] < 0.6 * untrained["perplexity"]
    assert trained["top10"] > untrained["top10"] + 0.05


def test_pytorch_loads_it_and_agrees_with_jax():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from grover_jax.interop.hf import logits_parity

    model = transformers.BertForMaskedLM.from_pretrained(FOLDER)
    assert isinstance(model, torch.nn.Module)
    pretrained = load_pretrained(NAME)
    difference = logits_parity(FOLDER, pretrained.params, pretrained.model_config, pretrained.tokenizer_path)
    assert difference < 1e-4
