"""Figures say what they draw: readable labels, the baselines in the legend, integer cycle ticks, and
an SVG beside each PNG. Matplotlib's SVG keeps every text as a `<!-- text -->` comment, read here."""

import re

from grover_jax.programs.select_vocab import selection_plot

KS = [2, 3]


def arm(name, kind, cycles=None, kmer=None, accuracy=0.3, with_ci=True):
    record = {"arm": name, "kind": kind, "cycles": cycles, "kmer": kmer,
              "next_kmer": {str(k): accuracy / k for k in KS},
              "majority": {str(k): 0.2 / k for k in KS}, "markov": {str(k): 0.25 / k for k in KS}}
    if with_ci:
        record["best_baseline_accuracy"] = {str(k): 0.25 / k for k in KS}
        record["minus_best_baseline_ci"] = {str(k): [0.01, 0.09] for k in KS}
    return record


def texts(svg_path):
    return re.findall(r"<!-- (.*?) -->", svg_path.read_text())


def test_the_selection_figure_draws_every_arm_and_both_baselines_it_names(tmp_path):
    arms = [arm("bpe50", "bpe", cycles=50), arm("bpe600", "bpe", cycles=600, accuracy=0.35),
            arm("bpe1200", "bpe", cycles=1200), arm("kmer4", "kmer", kmer=4, with_ci=False),
            arm("kmer6", "kmer", kmer=6, accuracy=0.28, with_ci=False)]
    selection_plot(arms, KS, tmp_path / "selection.png")
    assert (tmp_path / "selection.png").read_bytes()[:4] == b"\x89PNG"
    written = texts(tmp_path / "selection.svg")
    legend = [t for t in written if "(model)" in t or "(baseline)" in t]
    assert legend == ["BPE vocabulary (model); bar: best baseline + 95 % paired interval of model - best baseline",
                      "fixed 4-mer vocabulary (model)", "fixed 6-mer vocabulary (model)",
                      "Markov model of order k (baseline)", "commonest train k-mer (baseline)"]
    # The cycles axis of each panel is labelled with the cycle counts that ran, as plain integers.
    assert [t for t in written if t.isdigit()] == ["50", "600", "1200"] * len(KS)
    assert not [t for t in written if "times" in t or "^" in t]
    assert "next 2 bases (16 classes)" in written and "top-1 accuracy on the test examples" in written


def test_without_kmer_arms_or_intervals_the_legend_promises_neither(tmp_path):
    selection_plot([arm("bpe50", "bpe", cycles=50, with_ci=False), arm("bpe200", "bpe", cycles=200, with_ci=False)],
                   KS, tmp_path / "selection.png")
    written = texts(tmp_path / "selection.svg")
    assert "BPE vocabulary (model)" in written
    assert not [t for t in written if "k-mer vocabulary" in t or "-mer vocabulary" in t or "interval" in t]
