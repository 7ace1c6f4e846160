"""scripts/reproduce.py end to end on its smoke scale (the bundled slice, a few steps per part), so the
command that regenerates RESULTS.md cannot rot; and the sanity gate's rule."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("reproduce", REPO / "scripts" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gue_like_folder(root: Path, bundled_genome) -> Path:
    """A folder laid out like a GUE task (train/dev/test CSVs of 101 bp, `sequence,label`), cut from
    the bundled real slice; its labels are arbitrary: it exercises the GUE path, it measures nothing."""
    folder = root / "gue" / "smoke"
    folder.mkdir(parents=True)
    contig = max(bundled_genome.contigs, key=lambda c: c.length)  # A/C/G/T only
    for number, stem in enumerate(("train", "dev", "test")):
        rows = ["sequence,label"]
        for i in range(60 if stem == "train" else 20):
            start = contig.start + 10_000 * number + 101 * i
            rows.append(f"{bundled_genome.bases(contig.chromosome, start, start + 101)},{i % 2}")
        (folder / f"{stem}.csv").write_text("\n".join(rows) + "\n")
    return folder.parent


def test_smoke_scale_writes_every_section_and_resumes(tmp_path, bundled_genome):
    reproduce = load_script()
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\nHand-written text stays.\n")
    gue = gue_like_folder(tmp_path, bundled_genome)
    assert reproduce.main(["--scale", "smoke", "--workdir", str(tmp_path / "work"), "--results", str(results),
                           "--gue", str(gue)]) == 0
    text = results.read_text()
    assert "Hand-written text stays." in text
    for part in reproduce.PARTS:
        assert f"<!-- reproduce:smoke:{part} -->" in text and f"<!-- /reproduce:smoke:{part} -->" in text
        result = json.loads((tmp_path / "work" / "smoke" / part / "result.json").read_text())
        provenance = result["provenance"]
        assert provenance["commit"] and provenance["cpu"] is not None and provenance["cores"] >= 1
        assert "--scale smoke" in provenance["command"]
    mlm = json.loads((tmp_path / "work" / "smoke" / "mlm" / "result.json").read_text())
    assert [row["mask_rate"] for row in mlm["rows"]] == [0.022, 0.15]
    for row in mlm["rows"]:
        assert row["model_minus_ngram_top1_low"] <= row["model_minus_ngram_top1"] <= row["model_minus_ngram_top1_high"]
    # Other seeds are scored on the seed-0 targets: the same n-gram score, a model of their own.
    seeds = json.loads((tmp_path / "work" / "smoke" / "seeds" / "result.json").read_text())
    assert [row["seed"] for row in seeds["rows"]] == [0, 1]
    assert seeds["rows"][0]["model_top1"] == mlm["rows"][1]["model_top1"]
    assert {row["ngram_top1"] for row in seeds["rows"]} == {mlm["rows"][1]["ngram_top1"]}
    assert (tmp_path / "work" / "smoke" / "seeds" / "1" / "config.json").exists()
    assert (tmp_path / "docs" / "results" / "smoke_pretrain_curves.png").stat().st_size > 0
    assert (tmp_path / "work" / "smoke" / "pretrain_curves.svg").stat().st_size > 0
    # What pretraining adds: both arms and the baselines per fraction and seed, scored on one test set,
    # the half-label fraction trained on half the train split, and paired intervals around each difference.
    downstream = json.loads((tmp_path / "work" / "smoke" / "downstream" / "result.json").read_text())
    task = downstream["tasks"]["promoter_gc"]
    half, full = task["fractions"]["0.5"], task["fractions"]["1"]
    assert full["train_examples"] == [full["train_examples"][0]] * 2
    assert all(abs(n - full["train_examples"][0] / 2) <= 1 for n in half["train_examples"])
    for entry in (half, full):
        assert set(entry["mcc"]) == {"pretrained", "not pretrained", "4-mer logistic regression",
                                     "6-mer logistic regression", "CNN"}
        assert all(len(values) == 2 for values in entry["mcc"].values())
        # Exactly the budget's steps for both encoder arms, whatever the fraction (no early stop).
        assert entry["steps"] == {"pretrained": [4, 4], "not pretrained": [4, 4]}
        assert set(entry["valid_mcc"]) == set(entry["mcc"])
        for arm, paired in entry["paired"].items():
            assert paired["difference"] == pytest.approx(np.mean(entry["mcc"]["pretrained"]) - np.mean(entry["mcc"][arm]))
            assert paired["low"] <= paired["high"]
    assert "| promoter_gc | 0.5 |" in text
    assert (tmp_path / "docs" / "results" / "smoke_downstream_label_efficiency.png").stat().st_size > 0
    # The representation analyses of the smoke model and of the same encoder with random weights.
    representations = json.loads((tmp_path / "work" / "smoke" / "representations" / "result.json").read_text())
    for entry in representations["models"].values():
        assert [row["axis"] for row in entry["paper_rows"]][:3] == ["pc1", "pc2", "pc3"]
        assert len(entry["self_similarity_median"]) == 3  # the tiny encoder: embeddings + 2 layers
        assert all(-1 <= v <= 1 for v in entry["self_similarity_median"]) and entry["tokens"] > 10
        change = entry["self_similarity_change"]
        assert change["low"] <= change["median"] <= change["high"] and 0 <= change["falling_share"] <= 1
    assert "| PC2 ~ gc | -0.96 |" in text
    # The GUE path: the folder's train/dev/test become one CSV with a split column, read as a user task.
    gue_result = json.loads((tmp_path / "work" / "smoke" / "gue" / "result.json").read_text())
    assert gue_result["tasks"]["gue:smoke"]["task"]["labels"] == {
        "train": {"0": 30, "1": 30}, "valid": {"0": 10, "1": 10}, "test": {"0": 10, "1": 10}}
    assert "| gue:smoke | 1 |" in text

    # A second run reads every finished part back: same results, nothing retrained.
    stamps = {p: (tmp_path / "work" / "smoke" / p / "result.json").stat().st_mtime_ns for p in reproduce.PARTS}
    assert reproduce.main(["--scale", "smoke", "--workdir", str(tmp_path / "work"), "--results", str(results),
                           "--gue", str(gue)]) == 0
    assert stamps == {p: (tmp_path / "work" / "smoke" / p / "result.json").stat().st_mtime_ns for p in reproduce.PARTS}
    assert results.read_text().count("<!-- reproduce:smoke:mlm -->") == 1


def test_a_failed_sanity_gate_stops_every_later_part(tmp_path):
    reproduce = load_script()
    failed = tmp_path / "work" / "smoke" / "sanity" / "result.json"
    failed.parent.mkdir(parents=True)
    failed.write_text(json.dumps({"model_top1": 0.2, "ngram_top1": 0.9, "n_targets": 10, "min_top1": 0.9,
                                  "passed": False, "mean_nll": 2.0}))
    results = tmp_path / "RESULTS.md"
    assert reproduce.main(["--scale", "smoke", "--workdir", str(tmp_path / "work"), "--results", str(results)]) == 1
    assert "FAILED" in results.read_text()
    assert not (tmp_path / "work" / "smoke" / "pretrain").exists()


@pytest.mark.parametrize("scale", ["chromosome"])
def test_chromosome_scale_needs_its_fasta(scale, capsys):
    with pytest.raises(SystemExit):
        load_script().main(["--scale", scale])
    assert "--fasta" in capsys.readouterr().err


def test_a_gue_folder_without_train_cuts_dev_into_train_and_valid_by_label(tmp_path, bundled_genome):
    reproduce = load_script()
    folder = gue_like_folder(tmp_path, bundled_genome) / "smoke"
    (folder / "train.csv").unlink()
    dev = (folder / "dev.csv").read_text().splitlines()[1:]
    # 20 dev rows, alternating labels; one more positive so the cut rounds per label.
    (folder / "dev.csv").write_text("sequence,label\n" + "\n".join(dev + [dev[1]]) + "\n")
    target = reproduce.gue_csv(folder, tmp_path / "out")
    rows = target.read_text().splitlines()[1:]
    by_split = {split: [r.rsplit(",", 2)[:2] for r in rows if r.endswith("," + split)]
                for split in ("train", "valid", "test")}
    assert sorted(map(tuple, by_split["train"] + by_split["valid"])) == sorted(
        tuple(r.split(",")) for r in dev + [dev[1]])
    share = reproduce.GUE_DEV_CUT["valid_share"]
    for label, n in (("0", 10), ("1", 11)):
        assert sum(lab == label for _, lab in by_split["valid"]) == round(share * n)
    assert len(by_split["test"]) == 20
    # Seeded: the same cut on a second build.
    again = reproduce.gue_csv(folder, tmp_path / "again")
    assert again.read_text() == target.read_text()


def test_a_gue_file_without_a_label_column_is_named_and_nothing_is_written(tmp_path, bundled_genome):
    reproduce = load_script()
    folder = gue_like_folder(tmp_path, bundled_genome) / "smoke"
    dev = (folder / "dev.csv").read_text().replace("sequence,label", "sequence,lab", 1)
    (folder / "dev.csv").write_text(dev)
    with pytest.raises(ValueError, match=r"dev\.csv: no label column in its header line"):
        reproduce.gue_csv(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()
