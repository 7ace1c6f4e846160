"""promoter_gc: protein-coding promoters vs random genomic windows of the same GC content, the control
for prom300 (whose token-shuffled negatives a model never pretrained tells apart).

Specifications, each re-derived here from the bundled real chr20 slice and its annotation: every
negative is GC-matched to its positive, lies in one block of its positive's split, far from every
TSS and from every other negative; every positive is a protein-coding TSS window; a positive left
without a negative is counted; the construction is a function of its seed.
"""

import gzip
import itertools

import numpy as np
import pytest

from grover_jax import bundled
from grover_jax.data.tasks import construction
from grover_jax.data.tasks.builders import TaskSpec, construct, prepare_task
from grover_jax.data.tasks.construction import (
    PROMOTER_GC_MARGIN,
    PROMOTER_GC_TOLERANCE,
    cumulative_gc,
    window_gc_fraction,
)
from grover_jax.data.tasks.regions import SPLITS, block_split, read_bed
from grover_jax.genome import read_genome
from tests.conftest import shared_file, write_fasta

COMPLEMENT = {"A": "T", "C": "G", "G": "C", "T": "A"}
BLOCK = 250_000


def reverse_complement(sequence: str) -> str:
    return "".join(COMPLEMENT[b] for b in reversed(sequence))


def gc_fraction(sequence: str) -> float:
    return sum(b in "GC" for b in sequence) / len(sequence)


def pairs(examples):
    assert len(examples) % 2 == 0
    return list(zip(examples[0::2], examples[1::2], strict=True))


def eligible_promoters(genome, tss_rows, protein_coding: bool = True) -> set[tuple[str, int, int, str]]:
    """Every distinct TSS of a protein-coding gene (or, with False, of any other gene type) whose
    -249..+50 window lies in one block and is all A/C/G/T."""
    eligible = set()
    for row in tss_rows:
        if (row.extra[:1] == ("protein_coding",)) != protein_coding:
            continue
        start = row.start - 249 if row.strand == "+" else row.start - 50
        end = start + 300
        if block_split(start, end, BLOCK) is None:
            continue
        try:
            bases = genome.bases(row.chromosome, start, end)
        except KeyError:
            continue
        if len(bases) == 300 and set(bases) <= set("ACGT"):
            eligible.add((row.chromosome, start, end, row.strand))
    return eligible


@pytest.fixture(scope="module")
def tss_rows():
    return read_bed(bundled.annotation("tss"))


@pytest.fixture(scope="module")
def built():
    examples, names, dropped = construct(TaskSpec("promoter_gc"))
    return examples, names, dropped


def test_each_negative_is_gc_matched_real_sequence_in_one_block_of_its_positives_split(built, bundled_genome):
    examples, names, _ = built
    assert names == ["background_gc_matched", "promoter"]
    assert len(examples) > 100
    strands = set()
    for positive, negative in pairs(examples):
        assert (positive.label, negative.label) == (1, 0)
        assert abs(gc_fraction(negative.sequence) - gc_fraction(positive.sequence)) <= PROMOTER_GC_TOLERANCE + 1e-12
        assert negative.end - negative.start == len(negative.sequence) == 300
        assert negative.split == positive.split == block_split(negative.start, negative.end, BLOCK)
        assert negative.start // BLOCK == (negative.end - 1) // BLOCK
        genomic = bundled_genome.bases(negative.chromosome, negative.start, negative.end)
        assert set(genomic) <= set("ACGT")
        expected = genomic if negative.strand == "+" else reverse_complement(genomic)
        assert negative.sequence == expected
        strands.add(negative.strand)
    assert strands == {"+", "-"}  # strand tells nothing about the class
    assert {p.split for p, _ in pairs(examples)} == set(SPLITS)


def test_no_negative_comes_near_any_tss_or_overlaps_another_negative(built, tss_rows):
    examples, _, _ = built
    positions = sorted(r.start for r in tss_rows)  # every gene type, both strands
    negatives = sorted((n.start, n.end) for _, n in pairs(examples))
    for start, end in negatives:
        nearest = min(max(start - p, p - (end - 1), 0) for p in positions)
        # A promoter window reaches 250 bp from its TSS, so none of them is touched.
        assert nearest >= PROMOTER_GC_MARGIN
    for (_, end), (next_start, _) in itertools.pairwise(negatives):
        assert next_start >= end


def test_positives_are_the_protein_coding_tss_windows_and_a_missing_one_is_counted(built, bundled_genome, tss_rows):
    examples, _, dropped = built
    eligible = eligible_promoters(bundled_genome, tss_rows)
    made = set()
    for positive, _ in pairs(examples):
        genomic = bundled_genome.bases(positive.chromosome, positive.start, positive.end)
        assert positive.sequence == (genomic if positive.strand == "+" else reverse_complement(genomic))
        made.add((positive.chromosome, positive.start, positive.end, positive.strand))
    assert len(made) == len(examples) // 2
    assert made <= eligible
    assert len(eligible) - len(made) == dropped["no_gc_matched_background"]
    # Other gene types (lincRNA, pseudogene, ...) have usable TSS windows in the slice: none is a positive.
    assert eligible_promoters(bundled_genome, tss_rows, protein_coding=False) - eligible


def test_a_positive_without_a_background_is_dropped_and_counted(monkeypatch, bundled_genome, tss_rows):
    # A margin wider than the slice: no window is far enough from every TSS.
    monkeypatch.setattr(construction, "PROMOTER_GC_MARGIN", 10**9)
    genome = read_genome(bundled.FASTA)
    examples, unmatched = construction.promoter_gc(genome, tss_rows, BLOCK, 0)
    assert examples == []
    assert unmatched == len(eligible_promoters(bundled_genome, tss_rows)) > 0


def test_negatives_crowded_into_a_short_genome_never_overlap(monkeypatch, tmp_path, bundled_genome):
    # 30 kb of the real slice, 40 promoters at its start, any GC accepted and no margin: 40 random
    # 300 bp windows in 29 kb would overlap about 16 times if drawn independently.
    monkeypatch.setattr(construction, "PROMOTER_GC_TOLERANCE", 1.0)
    monkeypatch.setattr(construction, "PROMOTER_GC_MARGIN", 0)
    offset = 33_000_000
    fasta = write_fasta(tmp_path / "chr20_30kb.fa", [(f"chr20:{offset + 1}-{offset + 30_000}",
                                                      bundled_genome.bases("chr20", offset, offset + 30_000))])
    (tmp_path / "annotation").mkdir()
    rows = "".join(f"chr20\t{offset + 300 + 10 * i}\t{offset + 301 + 10 * i}\tG{i}\t0\t+\tprotein_coding\t2\tHAVANA\n"
                   for i in range(40))
    (tmp_path / "annotation" / "tss.bed.gz").write_bytes(gzip.compress(rows.encode()))
    examples, _, dropped = construct(TaskSpec("promoter_gc", fasta=(str(fasta),), annotation=str(tmp_path / "annotation"),
                                              block_size=1_000_000))
    negatives = sorted((n.start, n.end) for _, n in pairs(examples))
    assert len(negatives) + dropped["no_gc_matched_background"] == 40 and len(negatives) >= 30
    for (_, end), (next_start, _) in itertools.pairwise(negatives):
        assert next_start >= end


def test_the_construction_is_a_function_of_its_seed(built):
    examples, _, _ = built
    assert construct(TaskSpec("promoter_gc"))[0] == examples
    reseeded = construct(TaskSpec("promoter_gc", seed=1))[0]
    assert {(n.start, n.strand) for _, n in pairs(reseeded)} != {(n.start, n.strand) for _, n in pairs(examples)}


def test_the_dataset_is_balanced_per_split_and_reports_what_was_dropped(tmp_path):
    data = prepare_task(TaskSpec("promoter_gc"), tmp_path)
    assert data.class_names == ["background_gc_matched", "promoter"]
    assert "no_gc_matched_background" in data.report["dropped"]
    for split in SPLITS:
        counts = np.bincount(data.splits[split].labels, minlength=2)
        assert counts[0] == counts[1] > 0
        assert data.report["labels"][split] == {"0": int(counts[0]), "1": int(counts[1])}


def test_window_gc_from_the_cumulative_count_equals_a_direct_count(bundled_genome):
    # 20 kb of the slice around its assembly gap at 34.90 Mb: N is neither G nor C.
    start = 34_890_000
    text = bundled_genome.bases("chr20", start, start + 20_000)
    assert "N" in text and "G" in text
    cumulative = cumulative_gc(np.frombuffer(text.encode(), dtype=np.uint8))
    assert cumulative[-1] == text.count("G") + text.count("C")
    for width in (1, 7, 300):
        starts = np.arange(0, len(text) - width + 1, 13)
        direct = [(text[s : s + width].count("G") + text[s : s + width].count("C")) / width for s in starts]
        np.testing.assert_array_equal(window_gc_fraction(cumulative, starts, width), direct)


@pytest.mark.shared_data
def test_whole_chr20_is_gc_matched_with_few_promoters_dropped():
    fasta = shared_file("genome/hg19_chr20.fa.gz")
    annotation = shared_file("annotation/hg19/chr20/tss.bed.gz").parent
    examples, _, dropped = construct(TaskSpec("promoter_gc", fasta=(str(fasta),), annotation=str(annotation)))
    positives = len(examples) // 2
    assert positives > 400
    # The misses are the most GC-rich CpG-island promoters; 2,000 draws per promoter missed 9 % of them.
    assert dropped["no_gc_matched_background"] <= 0.03 * (positives + dropped["no_gc_matched_background"])
    for positive, negative in pairs(examples):
        assert abs(gc_fraction(negative.sequence) - gc_fraction(positive.sequence)) <= PROMOTER_GC_TOLERANCE + 1e-12
        assert negative.split == positive.split
