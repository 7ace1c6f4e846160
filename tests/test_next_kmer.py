"""Next-k-mer examples, baselines, program and vocabulary sweep, on the bundled real hg19 chr20 slice."""

import itertools
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from grover_jax import bundled
from grover_jax.configuration import load_config
from grover_jax.data.next_kmer import (
    MarkovNextKmer,
    NextKmerError,
    contig_base_codes,
    kmer_class,
    majority_class,
    sample_examples,
    tokenize_inputs,
)
from grover_jax.genome import read_genome
from grover_jax.store import open_store
from grover_jax.tokenizer import load_tokenizer
from grover_jax.tokenizer.kmer import save_kmer_vocabulary


def test_labels_are_the_genome_bases_right_after_each_input(bundled_store):
    store = open_store(bundled_store)
    tokenizer = load_tokenizer(store.tokenizer.path)
    examples = sample_examples(store, tokenizer, "test", 300, input_bases=50, max_k=6, seed=3)
    genome = read_genome(bundled.FASTA, bundled.SPLIT_SPEC)  # the FASTA itself, not the store
    test_contigs = store.split_contigs("test")
    for i, (chromosome, end) in enumerate(zip(examples.chromosome, examples.end)):
        end = int(end)
        assert any(c["start"] <= end - 50 and end + 6 <= c["end"] for c in test_contigs)
        assert examples.input_strings()[i] == genome.bases(chromosome, end - 50, end).upper()
        after = genome.bases(chromosome, end, end + 6).upper()
        for k in (2, 3, 6):
            expected_class = ["".join(p) for p in itertools.product("ACGT", repeat=k)].index(after[:k])
            assert examples.labels(k)[i] == expected_class


def test_inputs_are_tokenized_on_their_own_not_cut_from_the_store(bundled_store):
    store = open_store(bundled_store)
    tokenizer = load_tokenizer(store.tokenizer.path)
    examples = sample_examples(store, tokenizer, "valid", 50, input_bases=50, max_k=2, seed=0)
    ids, mask = tokenize_inputs(examples, tokenizer, seq_len=64)
    for row, text in zip(range(50), examples.input_strings()):
        expected = tokenizer.encode(text)  # [CLS] ... [SEP] of the 50 nt alone
        assert list(ids[row, : mask[row].sum()]) == expected
        assert tokenizer.decode(ids[row]) == text


def test_fixed_kmer_tokenizer_matches_its_compiled_store_encoding():
    import tempfile

    tokenizer = load_tokenizer(save_kmer_vocabulary(3, tempfile.mkdtemp()))
    rng = np.random.default_rng(0)
    for length in (0, 1, 2, 3, 10, 31):
        codes = rng.integers(0, 4, length).astype(np.uint8)
        ids, offsets = tokenizer.encode_contigs([codes])[0]
        text = "".join("ACGT"[c] for c in codes)
        assert list(ids) == tokenizer.encode(text, add_special_tokens=False)
        assert list(offsets) == list(range(0, length, 3))
    assert tokenizer.encode("acgTNNacgta", add_special_tokens=False) == tokenizer.encode("ACG", False)[:1] + [
        tokenizer.vocab["T"], tokenizer.vocab["[UNK]"], tokenizer.vocab["ACG"], tokenizer.vocab["TA"]]


@pytest.mark.parametrize("order,k", [(0, 2), (2, 2), (3, 1), (1, 3)])
def test_markov_baseline_equals_a_direct_count_on_a_real_slice(bundled_store, order, k):
    store = open_store(bundled_store)
    tokenizer = load_tokenizer(store.tokenizer.path)
    contig = store.split_contigs("train")[0]
    slice_codes = contig_base_codes(store, contig, tokenizer)[:20_000]
    model = MarkovNextKmer([slice_codes], order, k)

    # Independent count: context string -> Counter of following k-mer strings.
    text = "".join("ACGT"[c] for c in slice_codes)
    following: dict[str, Counter] = {}
    overall: Counter = Counter()
    for i in range(len(text) - order - k + 1):
        following.setdefault(text[i : i + order], Counter())[text[i + order : i + order + k]] += 1
        overall[text[i + order : i + order + k]] += 1
    kmers = ["".join(p) for p in itertools.product("ACGT", repeat=k)]  # class order

    def best(counter: Counter) -> int:
        return max(range(len(kmers)), key=lambda c: (counter[kmers[c]], -c))  # ties: lowest class

    queries = np.random.default_rng(order).integers(0, 4, (200, 50)).astype(np.uint8)
    queries[:100, -12:] = slice_codes[1000:1012]  # some contexts certainly seen
    for query, predicted in zip(queries, model.predict(queries)):
        context = "".join("ACGT"[c] for c in query[len(query) - order :]) if order else ""
        expected = best(following[context]) if context in following else best(overall)
        assert predicted == expected


@pytest.mark.parametrize("order,k", [(3, 2), (10, 6), (12, 4), (25, 6)])
def test_sparse_markov_backs_off_like_a_direct_count_with_shorter_contexts(bundled_genome, order, k):
    # Train on 20 kb of real chr20; query with real 50-nt held-out windows, whose long contexts are
    # mostly absent from 20 kb and must back off, while their short ones are all seen; 20 queries end
    # in a context taken from the training slice. Order 25 + k 6 fills 62 of the key's 64 bits.
    train_codes = bundled_genome.contig_codes(bundled_genome.split_contigs("train")[0])[:20_000]
    held_out = bundled_genome.contig_codes(bundled_genome.split_contigs("test")[0])
    queries = held_out[np.arange(0, 300 * 97, 97)[:, None] + np.arange(50)]
    queries[:20, 50 - order :] = train_codes[np.arange(20)[:, None] * 911 + np.arange(order)]
    model = MarkovNextKmer([train_codes], order, k)

    # Independent count: for each context length m <= order, the last m context bases of every
    # (order + k)-base window -> Counter of the k-mer that follows.
    text = "".join("ACGT"[c] for c in train_codes)
    following: list[dict[str, Counter]] = [{} for _ in range(order + 1)]
    for i in range(len(text) - order - k + 1):
        kmer = text[i + order : i + order + k]
        for m in range(order + 1):
            following[m].setdefault(text[i + order - m : i + order], Counter())[kmer] += 1
    kmers = ["".join(p) for p in itertools.product("ACGT", repeat=k)]  # class order

    backed_off = 0
    for query, predicted in zip(queries, model.predict(queries)):
        bases = "".join("ACGT"[c] for c in query)
        m = next(m for m in range(order, -1, -1) if bases[len(bases) - m :] in following[m])
        backed_off += m < order
        counter = following[m][bases[len(bases) - m :]]
        assert predicted == max(range(len(kmers)), key=lambda c: (counter[kmers[c]], -c))  # ties: lowest class
    assert (backed_off > 0) == (order > 3) and backed_off < len(queries)


def test_sparse_markov_refuses_windows_longer_than_31_bases():
    with pytest.raises(ValueError, match="order \\+ k <= 31"):
        MarkovNextKmer([np.zeros(100, np.uint8)], 26, 6)


def test_markov_baseline_refuses_train_contigs_shorter_than_one_window():
    with pytest.raises(NextKmerError, match="no train contig holds the 16 bases"):
        MarkovNextKmer([np.zeros(15, np.uint8)], 10, 6)


def test_majority_class_and_kmer_class_order():
    assert list(kmer_class(np.array([[0, 0], [0, 3], [3, 0], [3, 3]]))) == [0, 3, 12, 15]
    assert majority_class(np.array([5, 2, 5, 2, 7])) == 2  # ties: the lower class


def test_fine_tuned_model_beats_the_majority_class_on_held_out_sequence(pretrained_run, bundled_store, tmp_path):
    config = load_config("next_kmer", ["next_kmer.ks=(2,)", "next_kmer.n_train=20000", "next_kmer.n_valid=1000",
                                       "next_kmer.n_test=8000", "train.num_steps=600", "train.learning_rate=1e-3",
                                       "train.eval_every=300"])
    from grover_jax.programs.next_kmer import run_next_kmer

    (result,) = run_next_kmer(pretrained_run, tmp_path, config, bundled_store, progress=False)
    print(result)
    assert result["n_test"] == 8000
    # Majority is scored on the same 8,000 test examples; 0.01 is ~3.5 standard errors there.
    assert result["accuracy"] > result["majority_accuracy"] + 0.01, result
    table = (tmp_path / "next_kmer.md").read_text()
    assert f"{result['accuracy']:.4f}" in table


def test_next_kmer_program_does_not_import_the_pretraining_program():
    code = ("import sys, grover_jax.programs.next_kmer; "
            "sys.exit(1 if 'grover_jax.programs.pretrain' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_resumed_sweep_skips_finished_arms_and_writes_the_same_table(tmp_path, monkeypatch):
    from grover_jax.programs import select_vocab

    config = load_config("select_vocab:quick", ["sweep.cycles=(20,)", "sweep.kmers=(2,)", "next_kmer.ks=(2,)"])
    first = select_vocab.select_vocabulary(tmp_path, config, progress=False)
    table = (tmp_path / "selection.csv").read_text()
    assert [a["arm"] for a in first["arms"]] == ["bpe20", "kmer2"]
    assert (tmp_path / "selection.png").stat().st_size > 0
    assert first["best"] in table

    # Everything finished: no arm may run again.
    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished arm was recomputed")

    with monkeypatch.context() as patch:
        patch.setattr(select_vocab, "_run_arm", must_not_run)
        select_vocab.select_vocabulary(tmp_path, config, progress=False)
    assert (tmp_path / "selection.csv").read_text() == table

    # An arm interrupted after its stages finished (arm.json never written) resumes from them:
    # vocabulary, store and checkpoints are reused, next-k-mer reads its finished ks.
    arm_dir = tmp_path / "arms" / "kmer2"
    (arm_dir / "arm.json").unlink()
    store_index = (arm_dir / "store" / "index.json").stat().st_mtime_ns
    metrics_lines = (arm_dir / "pretrain" / "metrics.jsonl").read_text()
    select_vocab.select_vocabulary(tmp_path, config, progress=False)
    assert (arm_dir / "store" / "index.json").stat().st_mtime_ns == store_index
    assert (arm_dir / "pretrain" / "metrics.jsonl").read_text() == metrics_lines
    resumed = json.loads((arm_dir / "arm.json").read_text())
    assert {k: v for k, v in resumed.items() if k != "seconds"} == {
        k: v for k, v in first["arms"][1].items() if k != "seconds"}
    assert (tmp_path / "selection.csv").read_text() == table


def test_a_kmer_tokenizer_encodes_record_regions_as_it_encodes_their_codes(bundled_genome, tmp_path):
    """The store reads each FASTA record in place (`encode_regions`); for a k-mer vocabulary that is
    its own branch."""
    tokenizer = load_tokenizer(save_kmer_vocabulary(4, tmp_path))
    record = bundled_genome.records[0]
    contigs = [c for c in bundled_genome.contigs if record.offset <= c.start < record.end]
    regions = np.array([(c.start - record.offset, c.end - record.offset) for c in contigs])
    in_place = tokenizer.encode_regions(record.sequence, regions)
    from_codes = tokenizer.encode_contigs([bundled_genome.contig_codes(c) for c in contigs])
    assert len(in_place) == len(contigs) > 1
    for (ids, offsets), (code_ids, code_offsets) in zip(in_place, from_codes):
        assert np.array_equal(ids, code_ids) and np.array_equal(offsets, code_offsets)
