"""Sharded token store: same windows as a single store of the same files; incremental; never half-valid."""

import shutil

import numpy as np
import pytest

from grover_jax.data.mlm import MaskingConfig, MlmBatches
from grover_jax.genome import read_genome
from grover_jax.store import (
    ShardedTokenStore,
    StoreError,
    build_sharded_store,
    build_store,
    open_store,
)
from grover_jax.tokenizer import learn_bpe, load_tokenizer, save_vocabulary
from tests.conftest import write_fasta

# Three real stretches of hg19 chr20, each its own FASTA file (a region header keeps true coordinates).
SLICES = [(33_000_000, 33_150_000), (34_000_000, 34_120_000), (36_000_000, 36_200_000)]
SPLITS = "valid=chr20:34000001-34060000;test=chr20:36150001-36200000"


@pytest.fixture(scope="module")
def genome_files(tmp_path_factory, bundled_genome):
    root = tmp_path_factory.mktemp("sharded_genome")
    paths = []
    for start, end in SLICES:
        name = f"chr20_{start // 1000}k"
        paths.append(str(write_fasta(root / f"{name}.fa", [(f"chr20:{start + 1}-{end}", bundled_genome.bases(
            "chr20", start, end))])))
    genome = read_genome(paths, SPLITS)
    result = learn_bpe([genome.contig_codes(c) for c in genome.split_contigs("train")], 120, progress=False)
    save_vocabulary(result, root / "vocab")
    tokenizer = load_tokenizer(root / "vocab")
    build_store(genome, tokenizer, root / "single", split_spec=SPLITS, progress=False)
    return paths, root / "vocab" / "tokenizer.json", root / "single"


def _mtimes(store_dir):
    return {p.name: (p / "tokens.npy").stat().st_mtime_ns for p in (store_dir / "shards").iterdir()
            if not p.name.startswith(".")}


def test_sharded_and_single_store_give_identical_windows(genome_files, tmp_path):
    paths, tokenizer, single_dir = genome_files
    build_sharded_store(paths, tokenizer, tmp_path / "sharded", SPLITS, workers=1, progress=False)
    single, sharded = open_store(single_dir), open_store(tmp_path / "sharded")
    assert isinstance(sharded, ShardedTokenStore) and len(sharded) == len(single)
    assert sharded.open_shards == [], "opening reads only the top-level index"
    for split in ("train", "valid", "test"):
        starts = single.window_starts(split, 50)
        assert np.array_equal(starts, sharded.window_starts(split, 50))
        for index in starts[:: max(1, len(starts) // 40)]:
            assert np.array_equal(single.window(int(index), 50), sharded.window(int(index), 50))
            assert single.window_interval(int(index), 50) == sharded.window_interval(int(index), 50)
    assert np.array_equal(np.asarray(single.tokens), np.asarray(sharded.tokens))
    assert np.array_equal(single.starts[5::7], sharded.starts[5::7])
    config = MaskingConfig(seq_len=64, mask_rate=0.15)
    batches = [MlmBatches(s, "train", config, global_batch_size=8, seed=3).batch(step=2) for s in (single, sharded)]
    for key in batches[0]:
        assert np.array_equal(batches[0][key], batches[1][key])


def test_a_host_opens_only_the_shards_it_samples(genome_files, tmp_path):
    paths, tokenizer, _ = genome_files
    build_sharded_store(paths, tokenizer, tmp_path / "sharded", SPLITS, progress=False)
    store = open_store(tmp_path / "sharded")
    last_shard = store.shards[-1]
    store.window(last_shard["token_offset"] + 10, 30)
    assert store.open_shards == [last_shard["name"]]


def test_rebuild_keeps_valid_shards_and_rebuilds_a_deleted_one(genome_files, tmp_path):
    paths, tokenizer, single_dir = genome_files
    out = tmp_path / "sharded"
    first = build_sharded_store(paths, tokenizer, out, SPLITS, workers=2, progress=False)
    assert sorted(first["built"]) == sorted(_mtimes(out)) and first["kept"] == []
    before = _mtimes(out)
    shutil.rmtree(out / "shards" / "chr20_34000k")
    second = build_sharded_store(paths, tokenizer, out, SPLITS, workers=2, progress=False)
    assert second["built"] == ["chr20_34000k"]
    after = _mtimes(out)
    assert {k: v for k, v in after.items() if k != "chr20_34000k"} == {
        k: v for k, v in before.items() if k != "chr20_34000k"}, "valid shards are not rewritten"
    assert np.array_equal(np.asarray(open_store(single_dir).tokens), np.asarray(open_store(out).tokens))


def test_an_interrupted_shard_build_leaves_no_valid_looking_shard(genome_files, tmp_path, monkeypatch):
    paths, tokenizer, _ = genome_files
    out = tmp_path / "sharded"

    def crash(path, array):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        build_sharded_store(paths, tokenizer, out, SPLITS, workers=1, progress=False)
    monkeypatch.undo()
    assert not (out / "index.json").exists(), "no top-level index until every shard is whole"
    assert not [p for p in (out / "shards").iterdir() if not p.name.startswith(".")]
    (leftover,) = (out / "shards").glob(".chr20_33000k.tmp-*")
    with pytest.raises(StoreError, match="incomplete"):
        open_store(leftover)
    outcome = build_sharded_store(paths, tokenizer, out, SPLITS, workers=1, progress=False)
    assert len(outcome["built"]) == 3 and len(open_store(out)) > 0


def test_grover_store_sharded_takes_a_folder_of_fasta_files(genome_files, tmp_path, capsys):
    from grover_jax.cli import main

    paths, tokenizer, single_dir = genome_files
    folder = str(tmp_path / "genome")
    shutil.copytree(str(paths[0].rsplit("/", 1)[0]), folder, ignore=shutil.ignore_patterns("vocab", "single"))
    assert main(["store", "--sharded", "--workers", "2", "--fasta", folder, "--splits", SPLITS,
                 "--tokenizer", str(tokenizer), "--out", str(tmp_path / "sharded")]) == 0
    assert "3 shards (built 3, kept 0 valid)" in capsys.readouterr().out
    assert np.array_equal(np.asarray(open_store(single_dir).tokens), np.asarray(open_store(tmp_path / "sharded").tokens))
