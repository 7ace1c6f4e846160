"""GROVER's fine-tuning tasks built from the bundled real chr20 slice, and users' data.

Specifications: splits never share a base of the genome nor a sequence; each construction's labels
are re-derived independently here from the genome and annotation; bad user data stops with one line.
"""

import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from grover_jax import bundled
from grover_jax.cli import main
from grover_jax.data.tasks import TaskDataError
from grover_jax.data.tasks.builders import TaskSpec, prepare_task
from grover_jax.data.tasks.motif import log_odds, read_jaspar_pfm, score_threshold
from grover_jax.data.tasks.regions import SPLITS, read_bed

COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}


def examples_of(data):
    for split in SPLITS:
        arrays = data.splits[split]
        for i, sequence in enumerate(arrays.sequences):
            yield split, sequence, int(arrays.labels[i]), arrays.chromosomes[i], int(arrays.starts[i]), int(arrays.ends[i])


@pytest.fixture(scope="module")
def tasks(tmp_path_factory, bundled_store):
    data_dir = tmp_path_factory.mktemp("tasks")
    tokenizer = str(bundled_store / "tokenizer.json")
    return {
        "prom300": prepare_task(TaskSpec("prom300", tokenizer=tokenizer), data_dir),
        "promscan": prepare_task(TaskSpec("promscan", window=500, span=5000), data_dir),
        "ctcf": prepare_task(TaskSpec("ctcf", window=300), data_dir),
        "promoter_gc": prepare_task(TaskSpec("promoter_gc"), data_dir),
    }


@pytest.mark.parametrize("task", ["prom300", "promscan", "ctcf", "promoter_gc"])
def test_splits_never_share_a_region_or_a_sequence(tasks, task):
    rows = list(examples_of(tasks[task]))
    assert {split for split, *_ in rows} == set(SPLITS)
    intervals = sorted((start, end, split) for split, _, _, _, start, end in rows)
    for (start, end, split), (next_start, _, next_split) in itertools.pairwise(intervals):
        if split != next_split:
            assert next_start >= end, f"{split} {start}-{end} overlaps {next_split} at {next_start}"
    splits_of = {}
    for split, sequence, *_ in rows:
        splits_of.setdefault(sequence, set()).add(split)
    assert all(len(s) == 1 for s in splits_of.values())


@pytest.mark.parametrize("task", ["prom300", "promscan", "ctcf", "promoter_gc"])
def test_label_balance_is_reported_and_matches_the_files(tasks, task):
    data = tasks[task]
    for split in SPLITS:
        counts = np.bincount(data.splits[split].labels, minlength=2)
        assert data.report["labels"][split] == {str(k): int(v) for k, v in enumerate(counts) if v}


def test_prom300_positives_are_the_tss_windows_and_negatives_their_shuffles(tasks, bundled_genome):
    data = tasks["prom300"]
    tss = {(r.chromosome, r.start, r.strand) for r in read_bed(bundled.annotation("tss"))}
    positives, negatives = {}, {}
    for split, sequence, label, chromosome, start, end in examples_of(data):
        assert end - start == 300 and len(sequence) == 300
        (positives if label == 1 else negatives)[(split, chromosome, start)] = sequence
        if label == 0:
            continue
        genomic = bundled_genome.bases(chromosome, start, end)
        if sequence == genomic:  # plus strand: the TSS is base 249 (-249..+50)
            assert (chromosome, start + 249, "+") in tss
        else:  # minus strand: base 249 of the reverse complement
            assert sequence == "".join(COMPLEMENT[b] for b in reversed(genomic))
            assert (chromosome, end - 250, "-") in tss
    assert positives.keys() == negatives.keys()
    for key, positive in positives.items():
        negative = negatives[key]
        assert negative != positive and sorted(negative) == sorted(positive)


def test_promscan_label_is_whether_the_window_holds_a_tss(tasks):
    positions = sorted(r.start for r in read_bed(bundled.annotation("tss")))
    for _, sequence, label, _, start, end in examples_of(tasks["promscan"]):
        assert len(sequence) == end - start == 500
        assert label == int(any(start <= p < end for p in positions))


def test_ctcf_examples_centre_a_motif_hit_labelled_by_chip_overlap(tasks):
    pwm = log_odds(read_jaspar_pfm(bundled.CTCF_MATRIX))
    threshold = score_threshold(pwm, 1e-5)
    assert threshold == pytest.approx(13.1, abs=0.05)  # ../shared/data/README.md: p<1e-5 is 13.1 bits
    sites = [(r.start, r.end) for r in read_bed(bundled.annotation("CTCF"))]
    index = {b: i for i, b in enumerate("ACGT")}
    for _, sequence, label, _, start, _ in examples_of(tasks["ctcf"]):
        motif = sequence[150 - 9 : 150 - 9 + 19]  # 19 bp motif centred in the 300 bp window
        forward = sum(pwm[j, index[b]] for j, b in enumerate(motif))
        reverse = sum(pwm[j, index[COMPLEMENT[b]]] for j, b in enumerate(reversed(motif)))
        assert max(forward, reverse) >= threshold - 1e-9
        motif_start = start + 150 - 9
        assert label == int(any(s < motif_start + 19 and e > motif_start for s, e in sites))


def test_the_array_record_files_read_back_without_our_builder(tasks):
    data = tasks["ctcf"]
    source = tfds.builder_from_directory(str(data.data_dir)).as_data_source()
    assert len(source["test"]) == len(data.splits["test"].labels)
    assert source["test"][0]["sequence"].decode() == data.splits["test"].sequences[0]


def write_gz(path: Path, text: str) -> Path:
    path.write_bytes(gzip.compress(text.encode()))
    return path


def test_user_csv_keeps_copies_of_a_sequence_in_one_split(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["sequence,label"]
    for i in range(60):
        sequence = "".join(rng.choice(list("ACGT"), 40))
        rows += [f"{sequence},{i % 2}", f"{sequence.lower()},{i % 2}"]
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(rows) + "\n")
    data = prepare_task(TaskSpec("user", csv=str(path)), tmp_path / "data")
    seen = {}
    for split, sequence, *_ in examples_of(data):
        assert seen.setdefault(sequence, split) == split
    assert sum(len(data.splits[s].labels) for s in SPLITS) == 60  # the lowercase copies merged
    assert data.class_names == ["0", "1"]


def test_user_fasta_and_bed_with_labels(tmp_path, bundled_slice_fasta):
    bed = tmp_path / "labels.bed"
    bed.write_text("".join(f"chr20\t{33_000_000 + i * 5000}\t{33_000_300 + i * 5000}\t{'ab'[i % 2]}\t0\t{'+-'[i % 2]}\n"
                           for i in range(60)))
    data = prepare_task(TaskSpec("user", fasta=(str(bundled_slice_fasta),), bed=str(bed), block_size=20_000),
                        tmp_path / "data")
    assert data.class_names == ["a", "b"]
    assert all(len(s) == 300 for split in SPLITS for s in data.splits[split].sequences)


BAD_CSVS = {
    "non_dna": ("sequence,label\nACGT,0\nACXT,1\n", "bad.csv line 3, field 'sequence': unexpected character 'X' at column 3"),
    "no_label_column": ("sequence,class\nACGT,0\n", "bad.csv line 1, field 'label': no 'label' column"),
    "one_class": ("sequence,label\nACGT,1\nGGCA,1\n", "bad.csv, field 'label': labels of one class only"),
    "empty": ("", "bad.csv: empty file"),
}


@pytest.mark.parametrize("case", sorted(BAD_CSVS))
def test_bad_user_csv_is_one_line_naming_file_line_and_field(tmp_path, case, capsys, pretrained_run):
    text, expected = BAD_CSVS[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TaskDataError) as error:
        prepare_task(TaskSpec("user", csv=str(path)), tmp_path / "data")
    assert expected in str(error.value)
    code = main(["finetune", "--checkpoint", str(pretrained_run), "--task", str(path),
                 "--out", str(tmp_path / "ft"), "--set", f"task.data_dir={tmp_path / 'data'}"])
    stderr = capsys.readouterr().err.strip()
    assert code == 2
    assert stderr.count("\n") == 0 and stderr.startswith("grover: error: ") and expected in stderr
    assert not (tmp_path / "ft").exists() and not (tmp_path / "data").exists()


def test_bed_without_label_column_is_one_line(tmp_path, bundled_slice_fasta):
    bed = write_gz(tmp_path / "labels.bed.gz", "chr20\t33000000\t33000300\n")
    with pytest.raises(TaskDataError, match=r"labels.bed.gz line 1, field 'label': missing the label column"):
        prepare_task(TaskSpec("user", fasta=(str(bundled_slice_fasta),), bed=str(bed)), tmp_path / "data")
