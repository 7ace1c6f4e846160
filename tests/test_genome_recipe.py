"""The genome-scale recipe of docs/DATA.md, run as a user would on a small real input: a folder of
real hg19 FASTA files (the bundled chr20 slice, chrM and a 1 Mb window of chr22 from the shared
real-data folder; skipped without it) fetched, BPE with `--splits` and `--learn-on all`, a sharded
store with the same `--splits`, and a pretraining run that starts from it."""

import json
import shutil

import pytest

from grover_jax import bundled
from grover_jax.cli import main
from grover_jax.store import open_store
from tests.conftest import shared_file

SPLITS = "valid=chrM;test=chr22"  # the recipe holds out whole chromosomes (chr21, chr22 for hg19)


@pytest.mark.shared_data
def test_the_genome_scale_recipe_runs_on_real_chromosomes(tmp_path, capsys):
    source = tmp_path / "source"
    source.mkdir()
    shutil.copyfile(bundled.FASTA, source / "chr20.fa.gz")
    shutil.copyfile(shared_file("genome/hg19_chr22_20-21Mb.fa.gz"), source / "chr22.fa.gz")
    shutil.copyfile(shared_file("genome/hg19_chrM.fa.gz"), source / "chrM.fa.gz")
    genomes, vocab, store, run = (tmp_path / name for name in ("genomes", "vocab", "store", "run"))

    assert main(["data", "fetch", str(source), "--out", str(genomes)]) == 0
    assert main(["bpe", "--fasta", str(genomes), "--splits", SPLITS, "--learn-on", "all", "--cycles", "20",
                 "--out", str(vocab)]) == 0
    assert main(["store", "--sharded", "--workers", "2", "--fasta", str(genomes), "--splits", SPLITS,
                 "--tokenizer", str(vocab), "--out", str(store)]) == 0
    opened = open_store(store)
    chromosomes = {split: {c["chromosome"] for c in opened.split_contigs(split)} for split in ("train", "valid", "test")}
    assert chromosomes == {"train": {"chr20"}, "valid": {"chrM"}, "test": {"chr22"}}

    assert main(["pretrain", "--config", "tiny", "--store", str(store), "--workdir", str(run),
                 "--set", "train.num_steps=2", "--set", "train.warmup_steps=1", "--set", "train.eval_every=2",
                 "--set", "train.checkpoint_every=2", "--set", "data.eval_batches=1"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    valid = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["kind"] == "valid"]
    assert valid and valid[-1]["step"] == 2 and valid[-1]["n_targets"] > 0
