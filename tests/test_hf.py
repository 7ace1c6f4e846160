"""HF interop: export to and import from PyTorch BERT folders, exactly, with logits parity."""

import json
import os
import re
import subprocess
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from grover_jax.cli import main
from grover_jax.interop import hf
from grover_jax.interop.errors import HfConversionError
from grover_jax.runs import import_masked_lm, load_pretrained

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
def exported(pretrained, tmp_path_factory):
    return hf.export_masked_lm(pretrained.params, pretrained.model_config, pretrained.tokenizer_path,
                               tmp_path_factory.mktemp("hf") / "grover-tiny")


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

    run = import_masked_lm(exported, tmp_path / "imported")
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


# ---------------------------------------------------------------------------------------------
# `grover export-hf` / `grover import-hf` through the CLI, and the folders they must refuse.


PARITY_LINE = re.compile(r"^parity: max \|PyTorch - Flax logits\| = (\S+) on real chr20 sequence$", re.MULTILINE)


def needs_torch():
    pytest.importorskip("torch", reason="parity needs torch")
    pytest.importorskip("transformers", reason="parity needs transformers")


def test_export_hf_and_import_hf_print_what_they_wrote_and_the_parity(pretrained_run, pretrained, tmp_path, capsys):
    needs_torch()
    hf_dir, run = tmp_path / "hf", tmp_path / "run"
    assert main(["export-hf", "--checkpoint", str(pretrained_run), "--out", str(hf_dir)]) == 0
    out = capsys.readouterr().out
    assert f"export-hf: wrote {hf_dir}\n" in out
    assert float(PARITY_LINE.search(out)[1]) <= 1e-4
    assert_same_tree(hf.masked_lm_from_hf(hf_dir)[0], pretrained.params)

    # An older or hand-written config.json without `architectures`: the MLM head's tensors say MaskedLM.
    config = json.loads((hf_dir / "config.json").read_text())
    del config["architectures"]
    (hf_dir / "config.json").write_text(json.dumps(config))
    assert hf.hf_architecture(hf_dir) == "BertForMaskedLM"
    assert main(["import-hf", "--hf", str(hf_dir), "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"import-hf: wrote {run}\n" in out
    assert float(PARITY_LINE.search(out)[1]) <= 1e-4
    assert_same_tree(load_pretrained(run).params, pretrained.params)


def finetune_folder(pretrained, path, pooling):
    """A `grover finetune --out` folder as finetune() lays it out (finetune.json, tokenizer.json,
    best/params.npz), holding random classifier parameters (every tensor random, so a misplaced
    one shows in the logits)."""
    import dataclasses

    from grover_jax.configuration import load_config
    from grover_jax.model import make_classifier
    from grover_jax.runs import save_params

    config = load_config("finetune", [f"model.pooling={pooling}"])
    classifier = make_classifier(pretrained.config.model, pretrained.model_config.vocab_size, 2, pooling)
    ids = np.full((1, 8), 7, np.int32)
    shapes = nn.unbox(jax.eval_shape(classifier.init, jax.random.key(0), ids, ids)["params"])
    rng = np.random.default_rng(1)
    save_params(jax.tree.map(lambda s: rng.normal(0.0, 0.2, s.shape).astype(np.float32), shapes),
                path / "best" / "params.npz")
    (path / "tokenizer.json").write_bytes(pretrained.tokenizer_path.read_bytes())
    (path / "finetune.json").write_text(json.dumps({
        "config": json.loads(config.to_json_best_effort()), "encoder": dataclasses.asdict(pretrained.model_config),
        "num_classes": 2, "class_names": ["background", "promoter"]}))
    return path


def test_export_hf_of_a_finetune_folder_writes_bert_for_sequence_classification(pretrained, tmp_path, capsys):
    needs_torch()
    ft_dir, hf_dir = finetune_folder(pretrained, tmp_path / "ft", "cls"), tmp_path / "hf"
    assert main(["export-hf", "--checkpoint", str(ft_dir), "--out", str(hf_dir)]) == 0
    out = capsys.readouterr().out
    assert f"export-hf: wrote {hf_dir}\n" in out
    assert float(PARITY_LINE.search(out)[1]) <= 1e-4
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "background", "1": "promoter"}

    # A mean-pooled head has no HF counterpart: one line, nothing written.
    mean_dir = finetune_folder(pretrained, tmp_path / "mean", "mean")
    assert main(["export-hf", "--checkpoint", str(mean_dir), "--out", str(tmp_path / "hf-mean")]) == 2
    error = capsys.readouterr().err.splitlines()
    assert len(error) == 1 and error[0].startswith("grover: error: pooling='mean': HF BertForSequenceClassification")
    assert not (tmp_path / "hf-mean").exists()


def with_special_ids(tokenizer_json: str, ids: dict[str, int | None]) -> str:
    """tokenizer.json text with special tokens renumbered (or removed, for None)."""
    spec = json.loads(tokenizer_json)
    vocab = spec["model"]["vocab"]
    for token, new_id in ids.items():
        del vocab[token]
        if new_id is not None:
            vocab[token] = new_id
    spec["added_tokens"] = [{**t, "id": vocab[t["content"]]} for t in spec["added_tokens"] if t["content"] in vocab]
    for token, entry in spec["post_processor"]["special_tokens"].items():
        entry["ids"] = [vocab[token]]
    return json.dumps(spec)


@pytest.mark.parametrize("ids, message", [
    ({"[MASK]": None}, ("the tokenizer lacks the special token(s) [MASK] (a BERT tokenizer needs "
                        "[PAD] [UNK] [CLS] [SEP] [MASK])")),
    ({"[CLS]": 3, "[SEP]": 2}, ("special tokens at ids [PAD]=0, [UNK]=1, [CLS]=3, [SEP]=2, [MASK]=4; the programs "
                                "here need [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4 (grover_jax.load() reads "
                                "the HF folder as it is)")),
], ids=["missing", "renumbered"])
def test_import_hf_refuses_a_tokenizer_without_the_special_tokens_in_one_line(exported, tmp_path, capsys, ids,
                                                                              message):
    broken = _broken_copy(exported, tmp_path, lambda state: None)
    (broken / "tokenizer.json").write_text(with_special_ids((exported / "tokenizer.json").read_text(), ids))
    assert main(["import-hf", "--hf", str(broken), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.splitlines() == [f"grover: error: {broken / 'tokenizer.json'}: {message}"]
    assert not (tmp_path / "run").exists()


def test_the_api_takes_special_token_ids_from_the_vocabulary(pretrained, tmp_path):
    from grover_jax.api import GroverModel
    from grover_jax.tokenizer import load_tokenizer

    path = tmp_path / "tokenizer.json"
    path.write_text(with_special_ids(pretrained.tokenizer_path.read_text(), {"[CLS]": 3, "[SEP]": 2}))
    model = GroverModel(pretrained.model_config, load_tokenizer(path), mlm_params=pretrained.params, batch_size=2)
    inputs = model._wrapped_inputs([np.array([10, 11, 12], np.int32)])
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    assert ids[0, :5].tolist() == [3, 10, 11, 12, 2] and (ids[0, 5:] == 0).all() and mask[0].sum() == 5
    sequence = hf.parity_sequences(40)[1]
    (row, positions, _), _ = model.variant_inputs(sequence, 30, sequence[30], "A" if sequence[30] != "A" else "C")
    assert row[0] == 3 and row[-1] == 2 and (row[positions] == 4).all()

    path.write_text(with_special_ids(pretrained.tokenizer_path.read_text(), {"[MASK]": None}))
    with pytest.raises(ValueError, match=r"lacks the special token\(s\) \[MASK\]"):
        GroverModel(pretrained.model_config, load_tokenizer(path), mlm_params=pretrained.params)


@pytest.mark.parametrize("index, message", [
    ("{not json", "unreadable (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    ('{"metadata": {}}', "no weight_map of tensor name -> file"),
    ('{"weight_map": {"bert.embeddings.word_embeddings.weight": "../elsewhere.safetensors"}}',
     "weight_map must name safetensors files of the folder"),
], ids=["not-json", "no-weight-map", "outside-the-folder"])
def test_a_corrupt_sharded_index_is_one_line(exported, tmp_path, capsys, index, message):
    broken = tmp_path / "sharded"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (broken / name).write_bytes((exported / name).read_bytes())
    (broken / "model.safetensors.index.json").write_text(index)
    assert main(["import-hf", "--hf", str(broken), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"grover: error: {broken / 'model.safetensors.index.json'}: {message}"]


def test_a_config_without_architectures_or_heads_is_one_line(exported, tmp_path):
    broken = _broken_copy(exported, tmp_path, lambda state: [state.pop(k) for k in list(state)
                                                               if k.startswith("cls.")])
    config = json.loads((broken / "config.json").read_text())
    del config["architectures"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(HfConversionError, match="no architectures, and the tensors hold neither"):
        hf.hf_architecture(broken)
