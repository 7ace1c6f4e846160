"""A classifier's probabilities come with its class names, and an exported HF classifier loaded
back keeps them (config.json's id2label)."""

import json
import shutil

import flax.linen as nn
import jax
import numpy as np
import pytest

import grover_jax
from grover_jax.interop import hf
from grover_jax.model import make_classifier
from grover_jax.runs import load_pretrained

NAMES = ["enhancer", "promoter", "background"]
SEQUENCES = ["CCCAGCACTTTGGGAGGCCGAGGCGGGCGGATCACGAGGTCAGGAGATCGAGACCATCC", "ACGTTGCATTTAGGCAAATCCGGTACCA"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The shipped encoder under a random 3-class head (every tensor random), exported with class names."""
    pretrained = load_pretrained("grover-small-hg19-chr20")
    classifier = make_classifier(pretrained.config.model, pretrained.model_config.vocab_size, 3, "cls")
    ids = np.full((1, 8), 7, np.int32)
    shapes = nn.unbox(jax.eval_shape(classifier.init, jax.random.key(0), ids, ids)["params"])
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: rng.normal(0.0, 0.2, s.shape).astype(np.float32), shapes)
    return hf.export_classifier(params, pretrained.model_config, 3, "cls", pretrained.tokenizer_path,
                                tmp_path_factory.mktemp("clf") / "clf", class_names=NAMES)


def test_an_exported_classifier_loads_back_with_its_class_names(exported):
    model = grover_jax.load(exported)
    assert model.class_names == NAMES
    logits = model.predict(SEQUENCES)
    probabilities = model.predict_proba(SEQUENCES)
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.log(probabilities[:, 1] / probabilities[:, 0]), logits[:, 1] - logits[:, 0],
                               atol=1e-5)
    labelled = model.predict_labelled(SEQUENCES)
    assert [list(row) for row in labelled] == [NAMES, NAMES]
    assert model.predict_labelled(SEQUENCES[0]) == pytest.approx(labelled[0])


def test_labels_and_probabilities_agree_with_the_transformers_pipeline(exported):
    pytest.importorskip("torch", reason="the pipeline needs torch")
    transformers = pytest.importorskip("transformers", reason="the pipeline needs transformers")
    pipeline = transformers.pipeline("text-classification", model=str(exported), device="cpu", top_k=None)
    ours = grover_jax.load(exported).predict_labelled(SEQUENCES)
    for theirs, mine in zip(pipeline(SEQUENCES), ours, strict=True):
        assert {row["label"]: row["score"] for row in theirs} == pytest.approx(mine, abs=1e-5)


@pytest.mark.parametrize("num_labels", ["three", 2.0, 0, True])
def test_a_mistyped_num_labels_is_one_error_naming_the_field(exported, tmp_path, num_labels):
    folder = tmp_path / "clf"
    shutil.copytree(exported, folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_labels"] = num_labels
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(hf.HfConversionError) as error:
        grover_jax.load(folder)
    message = str(error.value)
    assert "\n" not in message and "config.json" in message and "num_labels" in message
