"""`grover export-hf` writes a model card and an export record into every folder; `grover run` keeps
an export or a fine-tuning that is up to date instead of redoing it."""

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest

from grover_jax.cli import main
from grover_jax.configuration import load_config
from grover_jax.interop import hf
from grover_jax.interop.errors import HfConversionError
from grover_jax.programs import export
from grover_jax.programs.finetune import finished_results
from grover_jax.runs import load_pretrained
from tests.test_hf import finetune_folder


@pytest.fixture(scope="module")
def pretrained(pretrained_run):
    return load_pretrained(pretrained_run)


def test_a_masked_lm_export_carries_a_card_with_genome_splits_step_metrics_and_caveats(
        pretrained_run, pretrained, tmp_path, capsys):
    out = tmp_path / "grover-tiny"
    assert main(["export-hf", "--checkpoint", str(pretrained_run), "--out", str(out), "--no-check"]) == 0
    assert f"model card: {out / 'README.md'}\n" in capsys.readouterr().out
    card = (out / "README.md").read_text()
    metadata, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert "library_name: transformers\npipeline_tag: fill-mask\n" in metadata
    assert body.startswith("\n# grover-tiny\n")
    # The step exported and the valid metrics at that step, as the run logged them.
    assert f"this is step {pretrained.step:,} of 300" in card
    valid = [json.loads(line) for line in (pretrained_run / "metrics.jsonl").read_text().splitlines()]
    row = [r for r in valid if r["kind"] == "valid" and r["step"] <= pretrained.step][-1]
    assert f"Valid split at step {row['step']:,}" in card and f"loss {row['loss']:.4f}" in card
    # The genome and its regions: the bundled slice, its held-out blocks, the rest train.
    assert "`hg19_chr20_32-37Mb.fa.gz`" in card
    assert "valid=chr20:35500001-36000000;test=chr20:36500001-37000000" in card
    assert "train: chr20 " in card and f"{pretrained.config.model.vocab_size} tokens" in card
    assert "strand-specific" in card and "`pooler_output` is its random initialisation" in card
    assert f'grover_jax.load("{out}")' in card
    record = json.loads((out / export.EXPORT_RECORD).read_text())
    assert record["step"] == pretrained.step and record["architecture"] == "BertForMaskedLM"


def test_a_classifier_export_carries_a_card_naming_its_labels(pretrained, tmp_path):
    ft_dir = finetune_folder(pretrained, tmp_path / "ft", "cls")
    out = tmp_path / "grover-prom300"
    assert main(["export-hf", "--checkpoint", str(ft_dir), "--out", str(out), "--no-check"]) == 0
    card = (out / "README.md").read_text()
    assert "pipeline_tag: text-classification" in card
    assert "labels 0 = `background`, 1 = `promoter`" in card
    assert "No `results.json` in the fine-tuned folder" in card  # this folder never finished
    assert "strand-specific" in card and "BertForSequenceClassification.from_pretrained" in card


def test_a_skipped_parity_check_says_how_to_enable_it(pretrained_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(hf, "check_parity", lambda *args, **kwargs: None)  # as without torch
    assert main(["export-hf", "--checkpoint", str(pretrained_run), "--out", str(tmp_path / "hf")]) == 0
    assert ('parity: torch/transformers not installed, skipped (to check the PyTorch logits: '
            'pip install -e ".[torch]")\n') in capsys.readouterr().out


def test_an_export_that_fails_its_parity_check_is_removed(pretrained_run, tmp_path, capsys, monkeypatch):
    def disagree(hf_dir, *args, **kwargs):
        raise HfConversionError(f"{hf_dir}: PyTorch and Flax logits differ by 0.5 (> 0.0001)")

    monkeypatch.setattr(hf, "check_parity", disagree)
    out = tmp_path / "hf"
    assert main(["export-hf", "--checkpoint", str(pretrained_run), "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"grover: error: {out}: PyTorch and Flax logits differ by 0.5 (> 0.0001)"]
    assert not out.exists()


def test_an_export_is_current_only_for_the_same_run_step_and_whole_folder(pretrained, tmp_path):
    out = tmp_path / "hf"
    assert not export.is_current(out, pretrained)
    export.export_masked_lm(pretrained, out, check=False)
    assert export.is_current(out, pretrained)
    record = json.loads((out / export.EXPORT_RECORD).read_text())
    (out / export.EXPORT_RECORD).write_text(json.dumps({**record, "step": pretrained.step - 150}))
    assert not export.is_current(out, pretrained)  # a later best checkpoint: export again
    (out / export.EXPORT_RECORD).write_text(json.dumps(record))
    (out / hf.MODEL_FILE).unlink()
    assert not export.is_current(out, pretrained)


def test_a_fine_tuning_is_kept_only_when_it_finished_with_the_same_config_and_encoder(pretrained_run, tmp_path):
    config = load_config("finetune:pipeline")
    out = tmp_path / "ft"
    out.mkdir()
    assert finished_results(config, pretrained_run, 300, out, baselines=True) is None  # nothing there
    (out / "finetune.json").write_text(json.dumps({"config": json.loads(config.to_json_best_effort())}))
    results = {"checkpoint": str(pretrained_run), "pretrained_step": 300,
               "models": {"GROVER-jax (cls pooling)": {}, "majority class": {}, "k-mer logistic regression": {},
                          "CNN": {}}}
    (out / "results.json").write_text(json.dumps(results)[:40])  # killed while writing
    assert finished_results(config, pretrained_run, 300, out, baselines=True) is None
    (out / "results.json").write_text(json.dumps(results))
    assert finished_results(config, pretrained_run, 300, out, baselines=True) == results
    assert finished_results(config, pretrained_run, 150, out, baselines=True) is None  # another step
    assert finished_results(config, pretrained_run, 300, out, baselines=False) is None
    changed = load_config("finetune:pipeline", ["train.learning_rate=0.5"])
    assert finished_results(changed, pretrained_run, 300, out, baselines=True) is None
    # Recorded with the encoder's hash: the same weights anywhere are the same encoder, other weights
    # in the same folder are not.
    (out / "results.json").write_text(json.dumps({**results, "encoder_sha256": "abc", "checkpoint": "/elsewhere"}))
    assert finished_results(config, pretrained_run, 300, out, baselines=True, encoder_sha256="abc") is not None
    (out / "results.json").write_text(json.dumps({**results, "encoder_sha256": "abc"}))
    assert finished_results(config, pretrained_run, 300, out, baselines=True, encoder_sha256="def") is None


def test_the_encoder_hash_names_the_weights_and_tokenizer_not_the_folder(pretrained_run, tmp_path):
    first = load_pretrained(pretrained_run)
    copy = tmp_path / "copy"
    shutil.copytree(pretrained_run, copy)
    assert load_pretrained(copy).encoder_sha256 == first.encoder_sha256
    changed = dataclasses.replace(first, params={**first.params, "bert": jax.tree_util.tree_map(
        lambda a: np.asarray(a) + 1, first.params["bert"])})
    assert changed.encoder_sha256 != first.encoder_sha256
