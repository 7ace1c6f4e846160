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

# (analysis, options, subfolder of the output folder)
RUNS = [("tokens", ["--windows", "12"], ""), ("tokens", ["--embedding", "input"], "input"),
        ("repeats", [], ""), ("ambiguity", ["--windows", "12"], ""), ("regions", ["--max-regions", "600"], ""),
        ("self_similarity", ["--windows", "6", "--max-occurrences", "10"], "")]


@pytest.fixture(scope="module")
def analyses(pretrained_run, bundled_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("analyses")
    for name, options, folder in RUNS:
        code = main(["analyze", name, "--checkpoint", str(pretrained_run), "--store", str(bundled_store),
                     "--out", str(out / folder), *options])
        assert code == 0
    return out


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_analysis_writes_its_plots(analyses):
    for png in ("tokens_pca.png", "token_correlations.png", "repeats.png", "ambiguity.png", "regions.png",
                "self_similarity.png"):
        assert (analyses / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (analyses / png).with_suffix(".svg").read_text().startswith("<?xml")  # the vector copy beside it
    # Axes and colour bars are named for a reader, not by the CSV's column names.
    labels = (analyses / "tokens_pca.svg").read_text()
    assert "occurrences in the store (log10)" in labels and "log10_count" not in labels
    assert "majority class of train (accuracy)" in (analyses / "regions.svg").read_text()
    # Each file was written under a temporary name and renamed: none is left behind.
    assert not [p.name for p in analyses.rglob(".*")]


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


def test_input_embedding_axes_correlate_with_frequency_as_recomputed(analyses, pretrained_run, bundled_store):
    rows = read_csv(analyses / "input" / "token_correlations.csv")
    assert list(rows[0]) == ["axis", "explained_variance", "property", "spearman_rho", "n_tokens", "embedding",
                             "layer"]
    assert {r["property"] for r in rows} == {"log10_count", "gc", "ag", "ac", "length"}
    assert {(r["embedding"], r["layer"]) for r in rows} == {("input", "")}
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


def test_contextual_token_embeddings_average_each_tokens_occurrences(pretrained_run, bundled_store):
    import grover_jax
    from grover_jax.analysis.sampling import evenly_spaced_windows
    from grover_jax.analysis.tokens import contextual_token_embeddings

    model, store = grover_jax.load(pretrained_run), open_store(bundled_store)
    mean, count = contextual_token_embeddings(model, store, "valid", n_windows=4)
    # By hand: the same 4 windows through embed_chunks (the last layer), one token's rows averaged.
    starts = evenly_spaced_windows(store, ("valid",), model.window_tokens, 4)
    windows = [store.window(int(s), model.window_tokens) for s in starts]
    hidden = model.embed_chunks(windows)
    np.testing.assert_array_equal(count, np.bincount(np.concatenate(windows), minlength=len(count)))
    id_to_token = model.tokenizer.id_to_token
    token = max(np.flatnonzero(count >= 3), key=lambda i: len(id_to_token[i]))
    vectors = np.concatenate([h[w == token] for w, h in zip(windows, hidden)]).astype(np.float64)
    np.testing.assert_allclose(mean[token], vectors.mean(axis=0), rtol=1e-6, atol=1e-7)
    assert np.isnan(mean[count == 0]).all()

    # At most 3 occurrences counted: the most frequent token's first, middle and last, in window order.
    capped, capped_count = contextual_token_embeddings(model, store, "valid", n_windows=4, max_occurrences=3)
    np.testing.assert_array_equal(capped_count, np.minimum(count, 3))
    token = int(np.argmax(count))
    vectors = np.concatenate([h[w == token] for w, h in zip(windows, hidden)]).astype(np.float64)
    n = len(vectors)
    assert n > 3
    np.testing.assert_allclose(capped[token], vectors[[0, int(np.round((n - 1) / 2)), n - 1]].mean(axis=0),
                               rtol=1e-6, atol=1e-7)

    # Another layer is that layer's states averaged the same way.
    first, _ = contextual_token_embeddings(model, store, "valid", n_windows=4, layer=0)
    states = model.layer_states_chunks(windows, layers=[0])
    vectors = np.concatenate([s[0][w == token] for w, s in zip(windows, states)]).astype(np.float64)
    np.testing.assert_allclose(first[token], vectors.mean(axis=0), rtol=1e-6, atol=1e-7)


def test_contextual_token_tables_record_what_was_averaged(analyses):
    import json

    settings = json.loads((analyses / "tokens.json").read_text())
    assert settings["embedding"] == "contextual" and settings["layer"] == settings["num_layers"] == 2
    assert (settings["split"], settings["n_windows"], settings["max_occurrences"]) == ("valid", 12, 5000)
    rows = read_csv(analyses / "token_correlations.csv")
    assert {(r["embedding"], r["layer"]) for r in rows} == {("contextual", "2")}
    tokens = read_csv(analyses / "tokens.csv")
    assert list(tokens[0])[:10] == ["token_id", "token", "count", "log10_count", "gc", "ag", "ac", "length",
                                    "averaged", "pc1"]
    assert "pc6" in tokens[0]
    assert all(1 <= int(t["averaged"]) <= int(t["count"]) for t in tokens)
    assert sum(int(t["averaged"]) for t in tokens) <= 12 * 126  # 12 windows of W = 126 tokens
    ac = {t["token"]: float(t["ac"]) for t in tokens}
    assert all(ac[t] == pytest.approx((t.count("A") + t.count("C")) / len(t), abs=1e-6) for t in ac)

    # The paper table: our rho is the one token_correlations.csv has for that axis and property,
    # the best axis the largest |rho| of that property over PC1..PC6.
    paper = read_csv(analyses / "token_paper_correlations.csv")
    rho = {(r["axis"], r["property"]): float(r["spearman_rho"]) for r in rows}
    assert [(r["axis"], r["property"], float(r["paper"])) for r in paper[:6]] == [
        ("pc1", "log10_count", 0.88), ("pc2", "gc", -0.96), ("pc3", "ag", 0.94), ("pc4", "length", 0.39),
        ("pc5", "ac", -0.81), ("pc6", "length", 0.43)]
    for r in paper[:6]:
        assert float(r["ours"]) == pytest.approx(rho[(r["axis"], r["property"])], abs=1e-5)
        best = max((f"pc{k}" for k in range(1, 7)), key=lambda a: abs(rho[(a, r["property"])]))
        assert (r["best_axis"], float(r["best_rho"])) == (best, pytest.approx(rho[(best, r["property"])], abs=1e-5))
    variance = max(float(r["explained_variance"]) for r in rows if r["axis"].startswith("pc"))
    assert (paper[6]["property"], float(paper[6]["paper"])) == ("explained_variance", 0.035)
    assert float(paper[6]["ours"]) == pytest.approx(variance, rel=1e-5)


def test_the_paper_table_puts_each_property_beside_its_axis():
    from grover_jax.analysis.tokens import paper_correlation_table

    rng = np.random.default_rng(0)
    table = {p: rng.random(50) for p in ("log10_count", "gc", "ag", "ac", "length")}
    noise = rng.random(50)
    # Axes that are monotone functions of the properties: |rho| = 1 where the paper pairs them,
    # except PC4 (noise), whose length row must point at PC6 instead.
    scores = np.stack([table["log10_count"] ** 3, -table["gc"], table["ag"], noise, 2 * table["ac"],
                       np.log(table["length"]), noise[::-1]], axis=1)
    explained = np.array([0.03, 0.02, 0.01, 0.01, 0.01, 0.005, 0.001])
    rows = paper_correlation_table(table, scores, explained)
    assert [(r["axis"], r["property"], r["paper"]) for r in rows] == [
        ("pc1", "log10_count", 0.88), ("pc2", "gc", -0.96), ("pc3", "ag", 0.94), ("pc4", "length", 0.39),
        ("pc5", "ac", -0.81), ("pc6", "length", 0.43), ("one pc (max)", "explained_variance", 0.035)]
    assert [r["ours"] for r in rows[:6]] == pytest.approx(
        [1, -1, 1, scipy_stats.spearmanr(noise, table["length"]).statistic, 1, 1])
    assert [r["best_axis"] for r in rows[:6]] == ["pc1", "pc2", "pc3", "pc6", "pc5", "pc6"]
    assert (rows[6]["ours"], rows[6]["best_axis"]) == (0.03, "pc1")


def test_self_similarity_of_three_hand_vectors_and_the_pairwise_mean():
    from grover_jax.analysis.contextual import self_similarity

    # Directions of (2, 0), (0, 3) and (1, 1): cosines 0, 1/√2, 1/√2, mean √2/3.
    units = np.array([[1.0, 0.0], [0.0, 1.0], [2**-0.5, 2**-0.5]])
    assert self_similarity(np.array([3]), units.sum(axis=0)[None]) == pytest.approx([np.sqrt(2) / 3])
    # Random vectors: the O(n) formula is the mean over all ordered pairs i ≠ j of cos(h_i, h_j).
    h = np.random.default_rng(1).normal(size=(40, 16)) + 0.3
    pairs = [h[i] @ h[j] / np.linalg.norm(h[i]) / np.linalg.norm(h[j])
             for i in range(40) for j in range(40) if i != j]
    units = h / np.linalg.norm(h, axis=1, keepdims=True)
    sums = np.stack([units.sum(axis=0), units[:1].sum(axis=0), np.zeros(16)])
    similarity = self_similarity(np.array([40, 1, 0]), sums)
    assert similarity[0] == pytest.approx(np.mean(pairs), rel=1e-12)
    assert np.isnan(similarity[1:]).all()  # one occurrence or none: no pair


def test_self_similarity_per_layer_is_recomputed_from_the_last_hidden_states(analyses, pretrained_run,
                                                                             bundled_store):
    import grover_jax
    from grover_jax.analysis.sampling import evenly_spaced_windows

    rows = read_csv(analyses / "self_similarity.csv")
    assert list(rows[0]) == ["token_id", "token", "count", "layer", "self_similarity"]
    by_token: dict[str, dict[int, float]] = {}
    for r in rows:
        by_token.setdefault(r["token_id"], {})[int(r["layer"])] = float(r["self_similarity"])
    assert all(sorted(layers) == [0, 1, 2] for layers in by_token.values())
    assert all(2 <= int(r["count"]) <= 10 for r in rows)
    assert all(-1 <= s <= 1 + 1e-9 for layers in by_token.values() for s in layers.values())

    model, store = grover_jax.load(pretrained_run), open_store(bundled_store)
    starts = evenly_spaced_windows(store, ("valid",), model.window_tokens, 6)
    windows = [store.window(int(s), model.window_tokens) for s in starts]
    seen = np.bincount(np.concatenate(windows))
    top = int(np.argmax(seen))
    assert seen[top] > 10 and int(next(r["count"] for r in rows if int(r["token_id"]) == top)) == 10  # the cap
    # One token seen 2..10 times (all counted): pairwise cosines of its last-layer vectors.
    row = max((r for r in rows if int(r["layer"]) == 2 and seen[int(r["token_id"])] <= 10),
              key=lambda r: int(r["count"]))
    token = int(row["token_id"])
    h = np.concatenate([e[w == token] for w, e in zip(windows, model.embed_chunks(windows))]).astype(np.float64)
    assert len(h) == int(row["count"])
    cosines = (h / np.linalg.norm(h, axis=1, keepdims=True)) @ (h / np.linalg.norm(h, axis=1, keepdims=True)).T
    expected = (cosines.sum() - np.trace(cosines)) / (len(h) * (len(h) - 1))
    assert float(row["self_similarity"]) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_a_layer_the_model_lacks_is_one_line(pretrained_run, bundled_store, tmp_path, capsys):
    code = main(["analyze", "tokens", "--checkpoint", str(pretrained_run), "--store", str(bundled_store),
                 "--out", str(tmp_path), "--layer", "3"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "grover: error: layer 3: the model has layers 0 (embeddings' output)..2"]
    assert not list(tmp_path.iterdir())
