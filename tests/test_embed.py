"""Embeddings of regions: both strands averaged on request, and `grover embed` over FASTA records or
BED intervals of the bundled real chr20 slice, with one stderr line for each bad input."""

import gzip

import numpy as np
import pytest

from grover_jax import bundled
from grover_jax.cli import main
from tests.conftest import write_fasta

PAIRS = {"A": "T", "C": "G", "G": "C", "T": "A", "N": "N"}


def other_strand(sequence: str) -> str:
    return "".join(PAIRS[base] for base in reversed(sequence))


def test_both_strands_is_the_mean_of_the_sequence_and_its_reverse_complement(shipped_model, chr20_bases):
    sequences = [chr20_bases[1_000_000:1_000_300], chr20_bases[2_000_000:2_000_090] + "NN" + chr20_bases[2_000_100:2_000_140]]
    forward = shipped_model.embed(sequences, pooling="mean")
    reverse = shipped_model.embed([other_strand(s) for s in sequences], pooling="mean")
    both = shipped_model.embed(sequences, pooling="mean", strand="both")
    np.testing.assert_allclose(both, (forward + reverse) / 2, atol=2e-5)
    assert np.abs(forward - reverse).max() > 1e-3  # the model is strand-specific: the option does something
    np.testing.assert_allclose(shipped_model.embed(sequences[0], pooling="mean", strand="both"), both[0], atol=2e-5)
    with pytest.raises(ValueError, match="pooling='mean'"):
        shipped_model.embed(sequences, strand="both")


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_embed_writes_one_row_per_bed_interval_and_names_them(shipped_model, chr20_bases, tmp_path, capsys):
    # 0-based chr20 coordinates inside the bundled slice (chr20:32,000,001-37,000,000).
    bed = tmp_path / "regions.bed.gz"
    with gzip.open(bed, "wt") as handle:
        handle.write("track name=test\n"
                     "chr20\t33000000\t33000400\tfirst\t0\t+\n"
                     "20\t34000000\t34000250\tsecond\t0\t-\n"
                     "chr20\t35600000\t35600180\n")
    out = tmp_path / "emb.npy"
    code, _, _ = run(["embed", "--fasta", str(bundled.FASTA), "--bed", str(bed), "--out", str(out),
                      "--batch-size", "4"], capsys)
    assert code == 0
    vectors = np.load(out)
    assert vectors.shape == (3, shipped_model.hidden_size) and vectors.dtype == np.float32
    expected = shipped_model.embed([chr20_bases[1_000_000:1_000_400], other_strand(chr20_bases[2_000_000:2_000_250]),
                            chr20_bases[3_600_000:3_600_180]], pooling="mean")
    np.testing.assert_allclose(vectors, expected, atol=2e-5)
    rows = [line.split("\t") for line in (tmp_path / "emb.tsv").read_text().splitlines()]
    assert rows == [["name", "chrom", "start", "end", "strand"],
                    ["first", "chr20", "33000000", "33000400", "+"],
                    ["second", "chr20", "34000000", "34000250", "-"],
                    ["chr20:35600001-35600180", "chr20", "35600000", "35600180", "+"]]

    npz = tmp_path / "emb.npz"
    assert run(["embed", "--fasta", str(bundled.FASTA), "--bed", str(bed), "--out", str(npz), "--strand", "both"],
               capsys)[0] == 0
    saved = np.load(npz)
    assert list(saved["name"]) == ["first", "second", "chr20:35600001-35600180"]
    assert list(saved["start"]) == [33000000, 34000000, 35600000]
    np.testing.assert_allclose(saved["embeddings"][0], shipped_model.embed(chr20_bases[1_000_000:1_000_400], "mean", "both"),
                               atol=2e-5)


def test_embed_of_fasta_records_has_one_row_each(shipped_model, chr20_bases, tmp_path, capsys):
    fasta = write_fasta(tmp_path / "records.fa", [("promoter_like some description", chr20_bases[10_000:10_350]),
                                                  ("chr20:32050001-32050200", chr20_bases[50_000:50_200]),
                                                  ("gap", "N" * 80)])
    out = tmp_path / "emb.npy"
    code, _, err = run(["embed", "--fasta", str(fasta), "--out", str(out)], capsys)
    assert code == 0
    vectors = np.load(out)
    assert vectors.shape == (3, shipped_model.hidden_size)
    np.testing.assert_allclose(vectors[:2], shipped_model.embed([chr20_bases[10_000:10_350], chr20_bases[50_000:50_200]], "mean"),
                               atol=2e-5)
    assert np.isnan(vectors[2]).all()
    assert "1 of 3 regions have no A, C, G or T base" in err
    names = [line.split("\t")[:4] for line in (tmp_path / "emb.tsv").read_text().splitlines()[1:]]
    assert names == [["promoter_like", "promoter_like", "0", "350"], ["chr20:32050001-32050200", "chr20",
                                                                      "32050000", "32050200"], ["gap", "gap", "0", "80"]]


@pytest.mark.parametrize("case, message", [
    ("bed_chromosome", "regions.bed line 2, field 'chrom': chr21:101-200 is not in"),
    ("bed_outside", "regions.bed line 1, field 'chrom': chr20:1,001-1,200 is not in"),
    ("empty_fasta", "empty.fa line 1: file is empty"),
    ("missing_folder", "does not exist"),
    ("suffix", "name it .npy"),
    ("bad_bed_row", "regions.bed line 1, field 'start'"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, case, message):
    fasta = write_fasta(tmp_path / "small.fa", [("chr20", "ACGT" * 100)])
    bed = tmp_path / "regions.bed"
    bed.write_text({"bed_chromosome": "chr20\t0\t100\nchr21\t100\t200\n", "bed_outside": "chr20\t1000\t1200\n",
                    "bad_bed_row": "chr20\tten\t100\n"}.get(case, "chr20\t0\t100\n"))
    if case == "empty_fasta":
        fasta = tmp_path / "empty.fa"
        fasta.write_text("")
    out = {"missing_folder": tmp_path / "nowhere" / "emb.npy", "suffix": tmp_path / "emb.csv"}.get(
        case, tmp_path / "emb.npy")
    code, _, err = run(["embed", "--fasta", str(fasta), "--bed", str(bed), "--out", str(out)], capsys)
    lines = err.splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("grover: error: ") and message in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["small.fa", "regions.bed"]
                                                                + (["empty.fa"] if case == "empty_fasta" else []))
