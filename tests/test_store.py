"""Token store: windows map back to the right genome bases; an interrupted build is never taken for a store."""

import json

import numpy as np
import pytest

from grover_jax import bundled
from grover_jax.genome import read_genome
from grover_jax.store import StoreBuildError, StoreError, build_store, open_store
from grover_jax.tokenizer import learn_bpe, load_tokenizer, save_vocabulary

SPLITS = "valid=chr20:33100001-33150000;test=chr20:33250001-33300000"


@pytest.fixture(scope="module")
def built(tmp_path_factory, bundled_slice_fasta):
    genome = read_genome(bundled_slice_fasta, SPLITS)
    result = learn_bpe([genome.contig_codes(c) for c in genome.split_contigs("train")], 150, progress=False)
    root = tmp_path_factory.mktemp("store")
    save_vocabulary(result, root / "vocab")
    tokenizer = load_tokenizer(root / "vocab")
    build_store(genome, tokenizer, root / "store", split_spec=SPLITS, progress=False)
    return genome, tokenizer, open_store(root / "store")


def test_windows_decode_to_the_genome_bases_they_map_to(built):
    genome, tokenizer, store = built
    rng = np.random.default_rng(0)
    for split in ("train", "valid", "test"):
        starts = store.window_starts(split, 64)
        assert len(starts) > 10
        for index in rng.choice(starts, 5, replace=False):
            window = store.window(int(index), 64)
            interval = store.window_interval(int(index), 64)
            assert tokenizer.decode(window) == genome.bases(interval.chromosome, interval.start, interval.end)


def test_every_token_start_is_its_genome_coordinate(built):
    genome, tokenizer, store = built
    lengths = tokenizer.token_lengths[np.asarray(store.tokens)]
    for contig in store.contigs:
        first, n = contig["token_offset"], contig["n_tokens"]
        starts = np.asarray(store.starts[first : first + n], dtype=np.int64)
        assert starts[0] == contig["start"]
        assert np.array_equal(starts[1:], starts[:-1] + lengths[first : first + n - 1])
        assert starts[-1] + lengths[first + n - 1] == contig["end"]


def test_store_records_splits_tokenizer_and_sources(built, bundled_slice_fasta):
    genome, tokenizer, store = built
    assert store.tokenizer_sha256 == tokenizer.sha256
    assert store.index["sources"][0]["sha256"] == genome.sources[0]["sha256"]
    assert {c["split"] for c in store.contigs} == {"train", "valid", "test"}
    valid = store.split_contigs("valid")
    assert [(c["start"], c["end"]) for c in valid] == [(33_100_000, 33_150_000)]
    assert store.tokens.dtype == np.uint16 and not store.tokens.flags.writeable


def test_windows_never_cross_a_contig(built):
    _, _, store = built
    for index in store.window_starts("train", 128, stride=32):
        assert store.contig_of(int(index)) == store.contig_of(int(index) + 127)


def test_an_interrupted_build_leaves_nothing_that_looks_complete(built, tmp_path, monkeypatch):
    genome, tokenizer, _ = built

    def crash(path, array):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        build_store(genome, tokenizer, tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists()
    leftovers = list(tmp_path.glob(".store.tmp-*"))
    assert leftovers, "the partial build stays under its temporary name"
    with pytest.raises(StoreError, match="incomplete token store"):
        open_store(leftovers[0])


def test_existing_store_is_kept_unless_overwrite(built, tmp_path):
    genome, tokenizer, _ = built
    build_store(genome, tokenizer, tmp_path / "store", progress=False)
    with pytest.raises(StoreBuildError, match="already exists"):
        build_store(genome, tokenizer, tmp_path / "store", progress=False)
    build_store(genome, tokenizer, tmp_path / "store", overwrite=True, progress=False)
    assert len(open_store(tmp_path / "store")) > 0


def test_truncated_arrays_are_detected(built, tmp_path):
    genome, tokenizer, _ = built
    path = build_store(genome, tokenizer, tmp_path / "store", progress=False)
    index = json.loads((path / "index.json").read_text())
    np.save(path / "tokens.npy", np.zeros(index["n_tokens"] // 2, np.uint16))
    with pytest.raises(StoreError, match="rebuild the store"):
        open_store(path)


def test_cli_main_job_builds_vocabulary_and_store_on_the_bundled_genome(tmp_path):
    from grover_jax.cli import main

    assert main(["run", "--workdir", str(tmp_path / "run"), "--cycles", "100", "--stop-after", "store"]) == 0
    store = open_store(tmp_path / "run" / "store")
    assert store.index["split_spec"] == bundled.SPLIT_SPEC
    assert store.index["n_bases"] == 4_950_000
