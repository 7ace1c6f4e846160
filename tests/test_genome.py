"""Genome reading: real coordinates, N-run contigs, soft-mask, splits, and one-line errors."""

import gzip
import subprocess
import sys

import numpy as np
import pytest

from grover_jax import bundled
from grover_jax.genome import (
    GenomeFormatError, SplitSpecError, canonical_chromosome_name, parse_split_spec, read_fasta, read_genome,
)
from grover_jax.genome.bed import BedRow, read_bed
from tests.conftest import shared_file, write_fasta


def test_bundled_slice_keeps_hg19_coordinates_and_splits_at_the_assembly_gap(bundled_genome):
    (record,) = bundled_genome.records
    assert (record.chromosome, record.offset, record.end) == ("chr20", 32_000_000, 37_000_000)
    # hg19 chr20 has a 50 kb gap at 34,897,085-34,947,085 (0-based): the only N run in the slice.
    train = [(c.start, c.end) for c in bundled_genome.contigs if c.split == "train"]
    assert (32_000_000, 34_897_085) in train and train[1][0] == 34_947_085
    assert set(np.unique(record.sequence[2_897_085:2_947_085]).tobytes()) == {ord("N")}


@pytest.mark.shared_data
def test_bundled_slice_matches_the_whole_chromosome_in_shared_data(bundled_genome):
    (chromosome,) = read_fasta(shared_file("genome/hg19_chr20.fa.gz"), keep_soft_mask=False)
    assert chromosome.chromosome == "chr20"
    assert bundled_genome.bases("chr20", 33_000_000, 33_001_000) == \
        chromosome.sequence[33_000_000:33_001_000].tobytes().decode()


def test_contigs_never_share_sequence_between_splits(bundled_genome):
    contigs = sorted(bundled_genome.contigs, key=lambda c: c.start)
    assert all(a.end <= b.start for a, b in zip(contigs, contigs[1:]))
    by_split = {s: sum(c.length for c in contigs if c.split == s) for s in ("train", "valid", "test")}
    assert by_split == {"train": 3_950_000, "valid": 500_000, "test": 500_000}


def test_soft_masked_bases_are_uppercased_and_kept_as_intervals(tmp_path):
    path = write_fasta(tmp_path / "mask.fa", [("chrT", "ACGTacgtNNNNaaCC")])
    genome = read_genome(path)
    assert genome.bases("chrT", 0, 16) == "ACGTACGTNNNNAACC"
    assert genome.soft_mask("chrT").tolist() == [[4, 8], [12, 14]]
    assert [(c.start, c.end) for c in genome.contigs] == [(0, 8), (12, 16)]


def test_iupac_codes_split_contigs_like_n(tmp_path):
    genome = read_genome(write_fasta(tmp_path / "iupac.fa", [("chrT", "ACGTRYACGT")]))
    assert [(c.start, c.end) for c in genome.contigs] == [(0, 4), (6, 10)]


def test_chromosome_names_are_normalised_to_ucsc():
    assert [canonical_chromosome_name(n) for n in ("20", "X", "MT", "chr20", "GL000191.1")] == \
        ["chr20", "chrX", "chrM", "chr20", "GL000191.1"]


def test_split_spec_by_chromosome_and_region():
    regions = parse_split_spec("valid=chr20:1001-2000;test=21")
    assert [(r.split, r.chromosome, r.start, r.end) for r in regions][:1] == [("valid", "chr20", 1000, 2000)]
    assert regions[1].chromosome == "chr21"
    with pytest.raises(SplitSpecError, match="overlap"):
        parse_split_spec("valid=chr20:1-100;test=chr20:50-150")
    with pytest.raises(SplitSpecError, match="expected"):
        parse_split_spec("holdout=chr20")


def _error_of(path) -> str:
    with pytest.raises(GenomeFormatError) as info:
        read_fasta(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unexpected_character_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.fa"
    path.write_text(">chr1\nACGTACGT\nACGXACGT\n")
    assert _error_of(path) == (
        f"{path} line 3: unexpected character 'X' at column 4 of record 'chr1' "
        "(allowed: A C G T N and IUPAC codes, either case)"
    )


def test_empty_record_is_an_error(tmp_path):
    path = tmp_path / "empty.fa"
    path.write_text(">chr1\nACGT\n>chr2\n>chr3\nAC\n")
    assert _error_of(path) == f"{path} line 3: record 'chr2' has no sequence"


def test_headerless_file_is_an_error(tmp_path):
    path = tmp_path / "noheader.fa"
    path.write_text("\nACGTACGT\n")
    assert _error_of(path).startswith(f"{path} line 2: no FASTA header")


def test_truncated_gzip_is_an_error_naming_the_line_reached(tmp_path):
    data = bundled.FASTA.read_bytes()
    path = tmp_path / "truncated.fa.gz"
    path.write_bytes(data[: len(data) // 2])
    message = _error_of(path)
    assert "gzip stream is truncated" in message
    line = int(message.split(" line ")[1].split(":")[0])
    assert 10_000 < line < 83_335  # half of the compressed file is well past the start, short of the end


def test_gzip_and_plain_fasta_read_the_same(tmp_path, bundled_slice_fasta):
    gz = tmp_path / "slice.fa.gz"
    gz.write_bytes(gzip.compress(bundled_slice_fasta.read_bytes()))
    assert read_fasta(gz)[0].sequence.tobytes() == read_fasta(bundled_slice_fasta)[0].sequence.tobytes()


def test_cli_reports_bad_input_in_one_line_without_traceback(tmp_path):
    path = tmp_path / "bad.fa"
    path.write_text(">chr1\nACGT\nAC-T\n")
    result = subprocess.run(
        [sys.executable, "-m", "grover_jax.cli", "bpe", "--fasta", str(path), "--cycles", "3", "--out", str(tmp_path / "v")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"grover: error: {path} line 3: unexpected character '-' at column 3 of record 'chr1' "
        "(allowed: A C G T N and IUPAC codes, either case)"
    ]
    assert not (tmp_path / "v").exists()


def test_bed_rows_read_gzip_by_content_and_a_bad_row_names_file_line_and_field(tmp_path):
    path = tmp_path / "sites.bed"  # gzipped despite its name
    path.write_bytes(gzip.compress(b"track name=sites\n20\t100\t250\tsite\t0\t-\nchrX 5 9\nchr20\t300\t300\n"))
    with pytest.raises(GenomeFormatError) as error:
        read_bed(path)
    assert str(error.value) == f"{path} line 4, field 'end': interval 300-300 is empty or negative"
    path.write_bytes(gzip.compress(b"track name=sites\n20\t100\t250\tsite\t0\t-\nchrX 5 9\n"))
    assert read_bed(path) == [BedRow("chr20", 100, 250, "site", "-", 2), BedRow("chrX", 5, 9, "", "+", 3)]
