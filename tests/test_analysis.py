"""`grover analyze`: each analysis on the bundled real chr20 slice writes its plots and a CSV whose
numbers are recomputed here independently."""

import csv
import gzip

import numpy as np
import pytest
from scipy import stats as scipy_stats

from grover_jax import bundled
from grover_jax.cli import main
from grover_jax.runs import load_pretrained
from grover_jax.store import open_store
from grover_jax.tokenizer import SPECIAL_TOKENS

OPTIONS = {"tokens": [], "repeats": [], "ambiguity": ["--windows", "12"], "regions": ["--max-regions", "600"]}


@pytest.fixture(scope="module")
def analyses(pretrained_run, bundled_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("analyses")
    for name, options in OPTIONS.items():
        code = main(["analyze", name, "--checkpoint", str(pretrained_run), "--store", str(bundled_store),
                     "--out", str(out), *options])
        assert code == 0
    return out


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_analysis_writes_its_plots(analyses):
    for png in ("tokens_pca.png", "token_correlations.png", "repeats.png", "ambiguity.png", "regions.png"):
        assert (analyses / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (analyses / png).with_suffix(".svg").read_text().startswith("<?xml")  # the vector copy beside it
    # Axes and colour bars are named for a reader, not by the CSV's column names.
    labels = (analyses / "tokens_pca.svg").read_text()
    assert "occurrences in the store (log10)" in labels and "log10_count" not in labels
    assert "majority class of train (accuracy)" in (analyses / "regions.svg").read_text()
    # Each file was written under a temporary name and renamed: none is left behind.
    assert not [p.name for p in analyses.iterdir() if p.name.startswith(".")]


def test_an_output_is_replaced_whole_or_not_at_all(tmp_path):
    from grover_jax.atomic_files import csv_writer

    path = tmp_path / "table.csv"
    with csv_writer(path) as writer:
        writer.writerow(["a", "b"])
    with pytest.raises(RuntimeError), csv_writer(path) as writer:
        writer.writerow(["half", "written"])
        raise RuntimeError("interrupted")
    assert path.read_bytes() == b"a,b\r\n"  # the previous file, untouched
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_an_unknown_split_is_one_line(pretrained_run, bundled_store, tmp_path, capsys):
    code = main(["analyze", "ambiguity", "--checkpoint", str(pretrained_run), "--store", str(bundled_store),
                 "--out", str(tmp_path), "--split", "foo"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"grover: error: {bundled_store}: no split 'foo' (the store has train, valid, test)"]


@pytest.fixture(scope="module")
def chr1_store(bundled_store, bundled_genome, tmp_path_factory):
    """30 kb of real sequence filed as chr1 (a store the bundled chr20 annotation does not cover),
    tokenized with the pretrained run's tokenizer."""
    from grover_jax.programs.vocabulary import build_token_store
    from tests.conftest import write_fasta

    root = tmp_path_factory.mktemp("chr1")
    fasta = write_fasta(root / "chr1.fa", [("chr1", bundled_genome.bases("chr20", 33_000_000, 33_030_000))])
    return build_token_store([str(fasta)], bundled_store / "tokenizer.json", root / "store", progress=False)


@pytest.mark.parametrize("analysis, bed", [("repeats", "hg19_repeats"), ("regions", "tss")])
def test_the_bundled_annotation_is_refused_on_another_genome(analysis, bed, pretrained_run, chr1_store, tmp_path,
                                                              capsys):
    code = main(["analyze", analysis, "--checkpoint", str(pretrained_run), "--store", str(chr1_store),
                 "--out", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        (f"grover: error: {bundled.annotation(bed)}: no interval overlaps the store's sequence on chr1 "
         "(the BED covers chr20); give an annotation of the store's genome")]
    assert not list(tmp_path.iterdir())


def test_token_embedding_axes_correlate_with_frequency_as_recomputed(analyses, pretrained_run, bundled_store):
    rows = read_csv(analyses / "token_correlations.csv")
    assert list(rows[0]) == ["axis", "explained_variance", "property", "spearman_rho", "n_tokens"]
    assert {r["property"] for r in rows} == {"log10_count", "gc", "ag", "length"}
    assert all(np.isfinite(float(r["spearman_rho"])) and abs(float(r["spearman_rho"])) <= 1 for r in rows)
    rho = {(r["axis"], r["property"]): float(r["spearman_rho"]) for r in rows}

    # Independently: counts by np.unique over the store, PCA by eigendecomposition of the covariance.
    store = open_store(bundled_store)
    ids, counts = np.unique(np.asarray(store.tokens), return_counts=True)
    id_to_token = store.tokenizer.id_to_token
    keep = np.array([id_to_token[i] not in SPECIAL_TOKENS for i in ids])
    ids, counts = ids[keep], counts[keep]
    embedding = np.asarray(load_pretrained(pretrained_run).params["bert"]["embeddings"]["word_embeddings"]["embedding"],
                           np.float64)[ids]
    centred = embedding - embedding.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    pc1 = centred @ eigenvectors[:, -1]
    expected = scipy_stats.spearmanr(pc1, counts).statistic
    assert int(rows[0]["n_tokens"]) == len(ids)
    assert abs(rho[("pc1", "log10_count")]) == pytest.approx(abs(expected), abs=1e-6)
    gc = [(id_to_token[i].count("G") + id_to_token[i].count("C")) / len(id_to_token[i]) for i in ids]
    assert abs(rho[("pc1", "gc")]) == pytest.approx(abs(scipy_stats.spearmanr(pc1, gc).statistic), abs=1e-6)
    explained = eigenvalues[-1] / eigenvalues.sum()
    assert float(rows[0]["explained_variance"]) == pytest.approx(explained, rel=1e-4)


def test_repeat_fractions_match_a_direct_count(analyses, bundled_store):
    rows = read_csv(analyses / "repeats.csv")
    assert list(rows[0]) == ["token_id", "token", "length", "occurrences", "in_repeat", "fraction_in_repeat",
                             "enrichment"]
    store = open_store(bundled_store)
    assert sum(int(r["occurrences"]) for r in rows) == len(store)
    assert all(0.0 <= float(r["fraction_in_repeat"]) <= 1.0 for r in rows)
    # One 6+-mer, counted by brute force against the unmerged RepeatMasker rows.
    row = max((r for r in rows if int(r["length"]) >= 6), key=lambda r: int(r["occurrences"]))
    with gzip.open(bundled.annotation("hg19_repeats"), "rt") as handle:
        repeats = [tuple(map(int, line.split("\t")[1:3])) for line in handle if not line.startswith("#")]
    where = np.flatnonzero(np.asarray(store.tokens) == int(row["token_id"]))
    middles = np.asarray(store.starts)[where].astype(np.int64) + int(row["length"]) // 2
    starts, ends = np.array(repeats).T
    inside = int(((starts <= middles[:, None]) & (middles[:, None] < ends)).any(axis=1).sum())
    assert (int(row["occurrences"]), int(row["in_repeat"])) == (len(where), inside)


def test_ambiguity_is_the_variance_of_contextual_embeddings(analyses, pretrained_run, bundled_store):
    import grover_jax
    from grover_jax.analysis.sampling import evenly_spaced_windows

    rows = read_csv(analyses / "ambiguity.csv")
    assert list(rows[0]) == ["token_id", "token", "length", "occurrences", "variance", "relative_variance",
                             "mean_norm"]
    assert all(int(r["occurrences"]) >= 10 and float(r["variance"]) >= 0 and 0 <= float(r["relative_variance"]) <= 1
               for r in rows)
    # Recompute one token's variance with np.var over the same 12 windows of the valid block.
    model, store = grover_jax.load(pretrained_run), open_store(bundled_store)
    starts = evenly_spaced_windows(store, ("valid",), model.window_tokens, 12)
    windows = [store.window(int(s), model.window_tokens) for s in starts]
    row = max(rows, key=lambda r: int(r["length"]))
    vectors = np.concatenate([h[w == int(row["token_id"])] for w, h in zip(windows, model.embed_chunks(windows))])
    assert len(vectors) == int(row["occurrences"])
    assert float(row["variance"]) == pytest.approx(np.var(vectors, axis=0).mean(), rel=1e-3)


def test_region_probes_are_scored_on_held_out_regions(analyses):
    probes = read_csv(analyses / "probe.csv")
    assert [p["features"] for p in probes] == ["embedding", "4-mer frequency"]
    for probe in probes:
        assert int(probe["n_train"]) == 300 and int(probe["n_test"]) == 300
        assert 0.0 <= float(probe["accuracy"]) <= 1.0 and 0.0 <= float(probe["balanced_accuracy"]) <= 1.0
    regions = read_csv(analyses / "regions.csv")
    assert list(regions[0]) == ["chromosome", "start", "end", "split", "class", "pc1", "pc2"]
    assert {r["class"] for r in regions} <= {"promoter", "exon", "repeat", "intron", "intergenic"}
    assert {r["split"] for r in regions} == {"train", "valid", "test"}
    # A region whose middle base is in a RepeatMasker row but near no TSS or exon is a repeat.
    assert sum(r["class"] == "repeat" for r in regions) > 0.2 * len(regions)


def test_principal_components_of_a_hand_computed_plane():
    from grover_jax.analysis.statistics import principal_components

    # Points t * (-0.6, 0.8) + s * (0.8, 0.6) + an offset: t and s are centred and orthogonal, so the
    # axes are those two directions, the scores t and s, the variance fractions 90/94 and 4/94.
    t, s = np.array([-6.0, -3, 3, 6]), np.array([1.0, -1, -1, 1])
    x = np.outer(t, [-0.6, 0.8]) + np.outer(s, [0.8, 0.6]) + [5.0, -7.0]
    scores, explained = principal_components(x, 2)
    # Each axis's sign makes its largest loading positive: +0.8 on y for PC1, +0.8 on x for PC2.
    np.testing.assert_allclose(scores, np.stack([t, s], axis=1), atol=1e-12)
    np.testing.assert_allclose(explained, [90 / 94, 4 / 94])
    assert principal_components(x, 5)[0].shape == (4, 2)  # no more axes than the data has


def test_the_logistic_probe_finds_a_rare_class_in_held_out_sequence(bundled_genome):
    from grover_jax.analysis.regions import kmer_frequencies
    from grover_jax.analysis.statistics import balanced_accuracy, logistic_probe

    bases = bundled_genome.bases("chr20", 33_000_000, 33_270_000)
    windows = [bases[i : i + 300] for i in range(0, len(bases), 300)]
    gc = np.array([(w.count("G") + w.count("C")) / len(w) for w in windows])
    labels = (gc > np.quantile(gc, 0.9)).astype(int)  # the GC-richest tenth of the windows
    x = np.stack([kmer_frequencies(w, 3) for w in windows])  # GC is a linear function of these
    predicted = logistic_probe(x[:600], labels[:600], x[600:])
    # Weighted by inverse frequency, the rare class is found: a majority vote would score 0.5.
    assert labels[600:].sum() >= 5
    assert balanced_accuracy(labels[600:], predicted) > 0.9
