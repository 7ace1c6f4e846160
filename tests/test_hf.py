"""HF interop: export to and import from PyTorch BERT folders, exactly, with logits parity."""

import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from grover_jax.interop import hf
from grover_jax.interop.errors import HfConversionError
from grover_jax.pretrained import load_pretrained

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def assert_same_tree(a, b):
    flat_a, flat_b = flatten_dict(a), flatten_dict(b)
    assert flat_a.keys() == flat_b.keys()
    for path in flat_a:
        np.testing.assert_array_equal(np.asarray(flat_a[path]), np.asarray(flat_b[path]), err_msg="/".join(path))


@pytest.fixture(scope="module")
def pretrained(pretrained_run):
    return load_pretrained(pretrained_run)


@pytest.fixture(scope="module")
def exported(pretrained_run, tmp_path_factory):
    return hf.export_pretrained(pretrained_run, tmp_path_factory.mktemp("hf") / "grover-tiny")


def test_flax_to_hf_to_flax_gives_identical_parameters(pretrained, exported):
    state = hf.flax_to_hf(pretrained.params)
    assert state["bert.encoder.layer.0.attention.self.query.weight"].shape == (64, 64)  # [H*Dh, D]
    assert_same_tree(hf.hf_to_flax(state, pretrained.params), pretrained.params)
    params, model_config = hf.masked_lm_from_hf(exported)  # and through the files on disk
    assert_same_tree(params, pretrained.params)
    assert model_config == pretrained.model_config


def test_exported_folder_loads_offline_in_transformers_with_logits_equal_to_flax(pretrained, exported):
    pytest.importorskip("torch", reason="parity needs torch")
    transformers = pytest.importorskip("transformers", reason="parity needs transformers")
    assert {p.name for p in exported.iterdir()} == {
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}
    _, info = transformers.AutoModelForMaskedLM.from_pretrained(exported, local_files_only=True,
                                                                output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    tokenizer = transformers.AutoTokenizer.from_pretrained(exported, local_files_only=True)
    sequence = hf.parity_sequences(126)[1]
    from grover_jax.tokenizer import load_tokenizer

    assert tokenizer(sequence)["input_ids"] == load_tokenizer(pretrained.tokenizer_path).encode(sequence)
    # Real chr20 sequence: one 126-token window and a shorter, padded one.
    difference = hf.logits_parity(exported, pretrained.params, pretrained.model_config, pretrained.tokenizer_path)
    print(f"max |PyTorch - Flax logits| = {difference:.3g}")
    assert difference <= 1e-4


def test_import_hf_writes_a_run_folder_that_loads_and_can_resume(pretrained, exported, tmp_path):
    from grover_jax.model import make_model
    from grover_jax.parallel import make_mesh
    from grover_jax.train import Checkpointer, abstract_train_state, make_optimizer

    run = hf.import_masked_lm(exported, tmp_path / "imported")
    loaded = load_pretrained(run)
    assert_same_tree(loaded.params, pretrained.params)
    assert loaded.model_config == pretrained.model_config
    assert loaded.tokenizer_sha256 == pretrained.tokenizer_sha256
    # Pretraining's own restore path: the state is params + a fresh AdamW state at step 0.
    config = loaded.config
    config.mesh.data, config.mesh.fsdp = 1, -1
    abstract = abstract_train_state(make_model(config.model), make_optimizer(config.train), make_mesh(config.mesh))
    checkpoints = Checkpointer(run.absolute() / "checkpoints", config, loaded.tokenizer_sha256)
    state, data_state = checkpoints.restore(abstract)
    checkpoints.close()
    assert int(state.step) == 0 and data_state["step"] == 0
    assert all(float(np.abs(m).max()) == 0.0 for m in jax.tree.leaves(state.opt_state) if np.ndim(m) > 0)


def _broken_copy(exported, tmp_path, change):
    from safetensors.numpy import load_file, save_file

    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (broken / name).write_bytes((exported / name).read_bytes())
    state = load_file(exported / "model.safetensors")
    change(state)
    save_file(state, broken / "model.safetensors")
    return broken


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update({"bert.encoder.layer.1.output.dense.weight":
                         s["bert.encoder.layer.1.output.dense.weight"][:, :-1]}),
     "tensor bert.encoder.layer.1.output.dense.weight has shape (64, 127), the config implies (64, 128)"),
    (lambda s: s.update({"bert.encoder.layer.0.attention.self.rotary.weight": np.zeros((4, 4), np.float32)}),
     "unknown tensor bert.encoder.layer.0.attention.self.rotary.weight (4, 4)"),
    (lambda s: s.pop("cls.predictions.transform.LayerNorm.bias"),
     "missing tensor cls.predictions.transform.LayerNorm.bias (64,)"),
], ids=["bad-shape", "unknown-tensor", "missing-tensor"])
def test_import_hf_refuses_a_mismatched_folder_in_one_line(exported, tmp_path, change, message):
    broken = _broken_copy(exported, tmp_path, change)
    result = subprocess.run(
        [sys.executable, "-m", "grover_jax.cli", "import-hf", "--hf", str(broken), "--out", str(tmp_path / "run")],
        check=False, capture_output=True, text=True, cwd=REPO, env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"grover: error: {broken}: {message}"
    assert not (tmp_path / "run").exists()


def test_import_drops_what_hf_drops_and_refuses_an_untied_decoder(pretrained):
    """A pytorch_model.bin of BertForPreTraining era: tied decoder copies, pooler, NSP head,
    position_ids buffer, LayerNorm gamma/beta names."""
    state = hf.flax_to_hf(pretrained.params)
    words = state["bert.embeddings.word_embeddings.weight"]
    old_style = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
                 for k, v in state.items()}
    old_style.update({
        "cls.predictions.decoder.weight": words.copy(),
        "cls.predictions.decoder.bias": state["cls.predictions.bias"].copy(),
        "bert.pooler.dense.weight": np.zeros((64, 64), np.float32), "bert.pooler.dense.bias": np.zeros(64, np.float32),
        "cls.seq_relationship.weight": np.zeros((2, 64), np.float32),
        "bert.embeddings.position_ids": np.arange(128)[None],
    })
    assert_same_tree(hf.hf_to_flax(old_style, pretrained.params), pretrained.params)
    old_style["cls.predictions.decoder.weight"] = words + 1.0
    with pytest.raises(HfConversionError, match="untied MLM decoder"):
        hf.hf_to_flax(old_style, pretrained.params)


def test_classifier_exports_as_bert_for_sequence_classification(pretrained, tmp_path):
    pytest.importorskip("torch", reason="parity needs torch")
    pytest.importorskip("transformers", reason="parity needs transformers")
    from grover_jax import api
    from grover_jax.model import make_classifier

    model_config = pretrained.config.model
    classifier = make_classifier(model_config, pretrained.model_config.vocab_size, num_labels=3)
    ids = np.full((1, 8), 7, np.int32)
    shapes = nn.unbox(jax.eval_shape(classifier.init, jax.random.key(0), ids, ids)["params"])
    # Every tensor random (init's zero biases and unit norms would hide a misplaced one).
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: rng.normal(0.0, 0.2, s.shape).astype(np.float32), shapes)
    out = hf.export_classifier(params, model_config, 3, "cls", pretrained.tokenizer_path, tmp_path / "clf")
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForSequenceClassification"]
    difference = hf.logits_parity(out, params, pretrained.model_config, pretrained.tokenizer_path)
    assert difference <= 1e-4

    loaded = api.load(out)  # the API predicts with the exported head
    sequences = hf.parity_sequences(60)
    apply = jax.jit(classifier.apply)
    expected = [np.asarray(apply({"params": params}, np.array([ids]), np.ones((1, len(ids)), np.int32)))[0]
                for ids in (loaded.tokenizer.encode(s) for s in sequences)]
    np.testing.assert_allclose(loaded.predict(sequences), np.stack(expected), atol=1e-5)

    with pytest.raises(HfConversionError, match="only pooling='cls'"):
        hf.export_classifier(params, model_config, 3, "mean", pretrained.tokenizer_path, tmp_path / "mean")
