"""`grover finetune` / `grover predict` on a real task slice (Prom300 of the bundled chr20 slice),
starting from the shared tiny pretrained run."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grover_jax.cli import main
from grover_jax.configuration import load_config
from grover_jax.data.tasks import FinetuneError
from grover_jax.evaluation.metrics import classification_metrics
from grover_jax.model import BertForSequenceClassification
from grover_jax.programs.finetune import finetune
from grover_jax.programs.predict import predict_regions
from grover_jax.runs import load_params, load_pretrained, load_test_probabilities
from grover_jax.train.classifier import class_weights, classifier_params, weighted_loss

# Few epochs of a 64-wide model: seconds per epoch on 2 cores.
QUICK = ["train.max_epochs=12", "train.patience=4", "train.learning_rate=1e-3", "eval.bootstrap=200"]


@pytest.fixture(scope="module")
def prom300_run(tmp_path_factory, pretrained_run):
    root = tmp_path_factory.mktemp("finetune")
    config = load_config("finetune", QUICK + [f"task.data_dir={root / 'tasks'}"])
    results = finetune(config, pretrained_run, root / "ft", log=lambda _: None)
    return root, config, results


def test_finetuned_model_beats_the_majority_class_on_prom300(prom300_run):
    _, _, results = prom300_run
    grover = results["models"]["GROVER-jax (cls pooling)"]["test"]["metrics"]
    majority = results["models"]["majority class"]["test"]["metrics"]
    assert results["task"]["test_examples"] >= 40
    assert grover["accuracy"] > majority["accuracy"]
    assert grover["mcc"] > majority["mcc"] == 0.0
    assert grover["auroc"] > 0.5


def test_finetuning_is_reproducible_from_the_seed(prom300_run, pretrained_run):
    root, config, results = prom300_run
    again = finetune(config, pretrained_run, root / "ft_again", log=lambda _: None)

    def without_timing(models):
        return {name: {k: v for k, v in entry.items() if k != "seconds"} for name, entry in models.items()}

    assert without_timing(again["models"]) == without_timing(results["models"])
    first = load_params(root / "ft" / "best" / "params.npz")
    second = load_params(root / "ft_again" / "best" / "params.npz")
    assert all(np.array_equal(first["classifier"][k], second["classifier"][k]) for k in first["classifier"])


def test_results_files_hold_every_metric_with_intervals(prom300_run):
    root, _, _ = prom300_run
    saved = json.loads((root / "ft" / "results.json").read_text())
    for entry in saved["models"].values():
        for metric in ("accuracy", "f1", "mcc", "auroc", "auprc"):
            low, high = entry["test"]["ci"][metric]
            assert low <= entry["test"]["metrics"][metric] <= high
    table = (root / "ft" / "results.md").read_text()
    assert "| GROVER-jax (cls pooling) |" in table and "| majority class |" in table
    # The test probabilities are kept, so arms can later be compared on the same examples; they are
    # the ones the reported metrics came from.
    labels, probabilities = load_test_probabilities(root / "ft")
    assert len(labels) == saved["task"]["test_examples"]
    for name, p in probabilities.items():
        assert p.shape == (len(labels), 2)
        assert classification_metrics(labels, p)["mcc"] == pytest.approx(saved["models"][name]["test"]["metrics"]["mcc"])


def test_predict_scores_sequences_and_scans_a_bedgraph(prom300_run, bundled_slice_fasta, tmp_path):
    root, _, _ = prom300_run
    tsv = predict_regions(root / "ft", [str(bundled_slice_fasta)], None, tmp_path / "scores.tsv", False, 0, 0)
    header, row = tsv.read_text().splitlines()
    assert header.split("\t") == ["name", "chrom", "start", "end", "strand", "p_shuffled", "p_promoter"]
    assert row.split("\t")[:4] == ["chr20:33000001-33300000", "chr20", "33000000", "33300000"]
    bed = tmp_path / "regions.bed"
    bed.write_text("chr20\t33000000\t33002000\tfirst\nchr20\t33100000\t33101000\tsecond\n")
    code = main(["predict", "--checkpoint", str(root / "ft"), "--fasta", str(bundled_slice_fasta),
                 "--bed", str(bed), "--scan", "--window", "300", "--stride", "50", "--out", str(tmp_path / "s.bedGraph")])
    assert code == 0
    lines = (tmp_path / "s.bedGraph").read_text().splitlines()
    assert lines[0].startswith("track type=bedGraph")
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == (2000 - 300) // 50 + 1 + (1000 - 300) // 50 + 1
    starts = [int(r[1]) for r in rows]
    assert all(int(r[2]) - int(r[1]) == 50 and 0.0 <= float(r[3]) <= 1.0 for r in rows)
    assert starts[0] == 33_000_000 + 150 - 25 and starts == sorted(starts)


def test_predict_refuses_a_folder_that_is_not_a_finetuning_run(tmp_path, capsys):
    with pytest.raises(FinetuneError, match="not a fine-tuning folder"):
        predict_regions(tmp_path, ["x.fa"], None, tmp_path / "out.tsv", False, 0, 0)
    assert main(["predict", "--checkpoint", str(tmp_path), "--fasta", "x.fa", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_class_weighted_loss_counts_each_class_equally():
    train_labels = np.array([0, 0, 0, 1])
    weights = class_weights(train_labels, 2, weighted=True)
    np.testing.assert_allclose(weights, [4 / 6, 4 / 2])
    # Both classes among the real rows (the last row is padding, with a large loss of its own).
    logits = jnp.array([[2.0, 0.0], [1.0, 0.0], [1.0, 1.0], [5.0, 0.0]])
    labels = np.array([0, 1, 0, 1])
    batch = {"labels": jnp.asarray(labels), "weights": jnp.array([1.0, 1.0, 1.0, 0.0])}
    nll = [np.log1p(np.exp(-2.0)), np.log1p(np.exp(1.0)), np.log(2.0)]  # -log softmax, by hand
    expected = (2 / 3 * nll[0] + 2 * nll[1] + 2 / 3 * nll[2]) / (2 / 3 + 2 + 2 / 3)
    assert float(weighted_loss(logits, batch, jnp.asarray(weights))) == pytest.approx(expected, rel=1e-6)
    # Unweighted: the plain mean over the real rows, which the weighting moves towards the rare class.
    ones = class_weights(train_labels, 2, weighted=False)
    assert np.array_equal(ones, [1.0, 1.0])
    assert float(weighted_loss(logits, batch, jnp.asarray(ones))) == pytest.approx(np.mean(nll), rel=1e-6)
    assert expected - np.mean(nll) > 0.2


def test_classifier_params_keep_the_pretrained_encoder_and_draw_a_new_head(pretrained_run):
    pretrained = load_pretrained(pretrained_run)
    model = BertForSequenceClassification(pretrained.model_config, 2, "cls")
    params = classifier_params(model, pretrained.encoder_params, seed=0)
    for name in ("embeddings", "encoder"):
        for ours, theirs in zip(jax.tree.leaves(params["bert"][name]), jax.tree.leaves(pretrained.encoder_params[name])):
            assert np.array_equal(ours, theirs)
    assert np.all(params["classifier"]["bias"] == 0) and 0.015 < params["bert"]["pooler"]["dense"]["kernel"].std() < 0.025
    scratch = classifier_params(model, None, seed=0)  # the no-pretraining control
    assert np.all(scratch["bert"]["embeddings"]["LayerNorm"]["scale"] == 1)
    assert 0.015 < scratch["bert"]["embeddings"]["word_embeddings"]["embedding"].std() < 0.025
