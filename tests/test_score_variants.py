"""Variants in bulk: the one VCF reader (genome/vcf.py), and `grover score-variants` scoring each
variant in its genome window as `model.score_variants` does, with bad rows named by line."""

import gzip

import numpy as np
import pytest

import grover_jax
from grover_jax import bundled
from grover_jax.cli import main
from grover_jax.genome import GenomeFormatError, read_fasta
from grover_jax.genome.vcf import read_vcf

HEADER = "##fileformat=VCFv4.2\n##contig=<ID=chr20>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
SLICE_START = 35_600_000  # 0-based start of the test FASTA on chr20 (inside the bundle's valid block)


@pytest.fixture(scope="module")
def genome_slice(tmp_path_factory):
    """10 kb of real chr20 as a gzipped FASTA placed at its chromosome coordinates, and its bases."""
    bases = read_fasta(bundled.FASTA, keep_soft_mask=False)[0].sequence.tobytes().decode("ascii")
    bases = bases[SLICE_START - 32_000_000 : SLICE_START - 32_000_000 + 10_000]
    path = tmp_path_factory.mktemp("genome") / "slice.fa.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(f">chr20:{SLICE_START + 1}-{SLICE_START + 10_000}\n{bases}\n")
    return path, bases


def base_at(bases: str, position: int, length: int = 1) -> str:
    """The genome's bases at a 1-based chr20 position."""
    return bases[position - 1 - SLICE_START : position - 1 - SLICE_START + length]


def vcf_rows(bases: str) -> list[tuple[str, int, str, str, str]]:
    snv, deletion, insertion = SLICE_START + 501, SLICE_START + 4_001, SLICE_START + 9_990
    other = {"A": "G,T", "C": "A,T", "G": "A,C", "T": "C,G"}
    return [("chr20", snv, "rs1", base_at(bases, snv), other[base_at(bases, snv)]),
            ("20", deletion, ".", base_at(bases, deletion, 4), base_at(bases, deletion)),
            ("chr20", insertion, "ins", base_at(bases, insertion).lower(), base_at(bases, insertion) + "GCA")]


def write_vcf(path, rows, gzipped=False):
    text = HEADER + "".join("\t".join(map(str, row)) + "\t50\tPASS\t.\n" for row in rows)
    if gzipped:
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def test_the_reader_gives_one_variant_per_alt_allele_with_its_line(genome_slice, tmp_path):
    _, bases = genome_slice
    rows = vcf_rows(bases)
    variants = read_vcf(write_vcf(tmp_path / "v.vcf.gz", rows, gzipped=True))
    assert [(v.chromosome, v.position, v.id, v.line) for v in variants] == [
        ("chr20", rows[0][1], "rs1", 4), ("chr20", rows[0][1], "rs1", 4), ("20", rows[1][1], ".", 5),
        ("chr20", rows[2][1], "ins", 6)]
    assert [v.alt for v in variants[:2]] == rows[0][4].split(",")
    assert variants[3].ref == rows[2][3].upper()  # alleles read in either case


@pytest.mark.parametrize("row, message", [
    ("chr20\t12x\t.\tA\tG", "line 4, field 'POS': '12x' is not an integer"),
    ("chr20\t0\t.\tA\tG", "line 4, field 'POS': 0 is not a 1-based position"),
    ("chr20\t100\t.\tA\t<DEL>", "line 4, field 'ALT': allele '<DEL>' has no bases"),
    ("chr20\t100\t.\tA\tG,*", "line 4, field 'ALT': allele '*'"),
    ("chr20\t100\t.\tA", "line 4: expected at least 5 tab-separated columns"),
    ("chr20\t100\t.\tA?\tG", "line 4, field 'REF'"),
])
def test_a_bad_row_is_named_by_its_line(tmp_path, row, message):
    path = tmp_path / "bad.vcf"
    path.write_text(HEADER + row + "\n")
    with pytest.raises(GenomeFormatError, match=message.replace("*", r"\*").replace("?", r"\?")):
        read_vcf(path)


def test_a_vcf_without_variants_or_with_a_truncated_stream_is_refused(tmp_path):
    (tmp_path / "empty.vcf").write_text(HEADER)
    with pytest.raises(GenomeFormatError, match="no variant rows"):
        read_vcf(tmp_path / "empty.vcf")
    whole = gzip.compress((HEADER + "chr20\t100\t.\tA\tG\n" * 2000).encode())
    (tmp_path / "cut.vcf.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(GenomeFormatError, match="truncated"):
        read_vcf(tmp_path / "cut.vcf.gz")


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_score_variants_writes_each_variants_score_in_its_window(genome_slice, tmp_path, capsys):
    fasta, bases = genome_slice
    vcf, out = write_vcf(tmp_path / "variants.vcf", vcf_rows(bases)), tmp_path / "scores.tsv"
    code, stdout, _ = run(["score-variants", "--fasta", str(fasta), "--vcf", str(vcf), "--out", str(out),
                           "--flank", "80", "--batch-size", "4"], capsys)
    assert code == 0 and f"wrote {out}" in stdout
    lines = [line.split("\t") for line in out.read_text().splitlines()]
    assert lines[0] == ["chrom", "pos", "id", "ref", "alt", "score"]
    assert [row[:5] for row in lines[1:]] == [[v.chromosome, str(v.position), v.id, v.ref, v.alt]
                                              for v in read_vcf(vcf)]
    # Each score independently: variant_score on the window of 80 bases each side, cut at the slice's end.
    model = grover_jax.load("grover-small-hg19-chr20")
    expected = []
    for variant in read_vcf(vcf):
        start = variant.position - 1 - SLICE_START
        low, high = max(0, start - 80), min(len(bases), start + len(variant.ref) + 80)
        expected.append(model.variant_score(bases[low:high], start - low, variant.ref, variant.alt))
    np.testing.assert_allclose([float(row[5]) for row in lines[1:]], expected, atol=2e-4)
    tuples = [tuple(v[:4]) for v in read_vcf(vcf)]  # the same from Python, as plain tuples
    np.testing.assert_allclose(model.score_variants(fasta, tuples, flank=80), expected, atol=2e-4)


@pytest.mark.parametrize("case, message", [
    ("wrong_ref", "variants.vcf line 5: REF {ref} does not match the genome at chr20:{pos} ({genome})"),
    ("other_chromosome", "variants.vcf line 6: chr21:{pos} is not in the genome"),
    ("bad_row", "variants.vcf line 4, field 'POS'"),
    ("missing_folder", "does not exist"),
])
def test_bad_input_is_one_line_naming_the_vcf_line_and_writes_nothing(genome_slice, tmp_path, capsys, case,
                                                                      message):
    fasta, bases = genome_slice
    rows = vcf_rows(bases)
    pos = rows[1][1]
    wrong = "A" if base_at(bases, pos) != "A" else "C"
    if case == "wrong_ref":
        rows[1] = ("chr20", pos, ".", wrong, "G")
    elif case == "other_chromosome":
        rows[2] = ("chr21", pos, ".", "A", "G")
    elif case == "bad_row":
        rows[0] = ("chr20", "x", ".", "A", "G")
    vcf = write_vcf(tmp_path / "variants.vcf", rows)
    out = tmp_path / ("nowhere/scores.tsv" if case == "missing_folder" else "scores.tsv")
    code, _, err = run(["score-variants", "--fasta", str(fasta), "--vcf", str(vcf), "--out", str(out)], capsys)
    lines = err.splitlines()
    expected = message.format(ref=wrong, pos=pos, genome=base_at(bases, pos))
    assert code == 2 and len(lines) == 1 and lines[0].startswith("grover: error: ") and expected in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["variants.vcf"]

