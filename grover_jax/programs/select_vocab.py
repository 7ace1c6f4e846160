"""`grover select-vocab`: learn vocabularies, pretrain one model per vocabulary, compare next-k-mer.

Each arm (a BPE cycle count, or a fixed k-mer tokenization) lives in <workdir>/arms/<name>/ with
its vocab/, store/, pretrain/ and next_kmer/; an arm is finished when arm.json exists, and a
finished arm is read back, not recomputed. Interrupted arms resume stage by stage (vocabulary and
store are rebuilt only if absent, pretraining resumes from its checkpoint, next-k-mer keeps its
finished ks). The sweep writes selection.csv, selection.md and selection.png (and .svg) and names
the best arm.
"""

import csv
import io
import json
import time
from pathlib import Path

import ml_collections
import numpy as np

from grover_jax.atomic_files import save_figure, write_text
from grover_jax.configuration import load_config
from grover_jax.programs.next_kmer import run_next_kmer
from grover_jax.programs.vocabulary import build_token_store, learn_vocabulary, resolve_genome
from grover_jax.store import open_store
from grover_jax.tokenizer.kmer import save_kmer_vocabulary

ARM_FILE = "arm.json"


def arm_names(sweep: ml_collections.ConfigDict) -> list[str]:
    return [f"bpe{c}" for c in sweep.cycles] + [f"kmer{k}" for k in sweep.kmers]


def _run_arm(name: str, arm_dir: Path, fasta, split_spec, config: ml_collections.ConfigDict, progress: bool) -> dict:
    from grover_jax.programs.pretrain import pretrain  # the sweep drives pretraining; next-k-mer stays separate

    started = time.perf_counter()
    vocab = arm_dir / "vocab" / "tokenizer.json"
    if not vocab.exists():
        if name.startswith("bpe"):
            learn_vocabulary(fasta, arm_dir / "vocab", int(name[3:]), split_spec, progress=False)
        else:
            save_kmer_vocabulary(int(name[4:]), arm_dir / "vocab")
    store_dir = arm_dir / "store"
    if not (store_dir / "index.json").exists():
        build_token_store(fasta, vocab, store_dir, split_spec, overwrite=store_dir.exists(), progress=False)
    store = open_store(store_dir)

    pretrain_config = load_config(config.sweep.pretrain_config, list(config.sweep.pretrain_overrides))
    pretrain_config.seed = config.seed
    if progress:
        print(f"[{name}] pretraining ({pretrain_config.train.num_steps} steps, vocabulary of {store.vocab_size})")
    pretrain(pretrain_config, arm_dir / "pretrain", store_dir, progress=progress)
    valid = _last_valid_metrics(arm_dir / "pretrain" / "metrics.jsonl")

    rows = run_next_kmer(arm_dir / "pretrain", arm_dir / "next_kmer", config, store_dir, progress=progress)
    n_bases = sum(c["end"] - c["start"] for c in store.split_contigs("train"))
    n_tokens = sum(c["n_tokens"] for c in store.split_contigs("train"))
    return {
        "arm": name,
        "kind": "bpe" if name.startswith("bpe") else "kmer",
        "cycles": int(name[3:]) if name.startswith("bpe") else None,
        "kmer": int(name[4:]) if name.startswith("kmer") else None,
        "vocab_size": store.vocab_size,
        "mean_token_length": n_bases / max(n_tokens, 1),
        "mlm_valid_accuracy": valid.get("accuracy"),
        "mlm_valid_perplexity": valid.get("perplexity"),
        "next_kmer": {str(r["k"]): r["accuracy"] for r in rows},
        "majority": {str(r["k"]): r["majority_accuracy"] for r in rows},
        "markov": {str(r["k"]): r["markov_accuracy"] for r in rows},
        "best_baseline_accuracy": {str(r["k"]): max(r["majority_accuracy"], r["markov_accuracy"]) for r in rows},
        "minus_best_baseline_ci": {str(r["k"]): r["model_minus_best_baseline_ci"] for r in rows},
        "seconds": round(time.perf_counter() - started, 1),
    }


def _last_valid_metrics(metrics_path: Path) -> dict:
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines()] if metrics_path.exists() else []
    valid = [r for r in rows if r.get("kind") == "valid"]
    return valid[-1] if valid else {}


def selection_score(arm: dict, ks: list[int]) -> float:
    return float(np.mean([arm["next_kmer"][str(k)] for k in ks]))


def selection_csv(arms: list[dict], ks: list[int]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["arm", "kind", "cycles", "kmer", "vocab_size", "mean_token_length", "mlm_valid_accuracy",
                     "mlm_valid_perplexity", *[f"next_{k}mer_accuracy" for k in ks], "mean_accuracy",
                     *[f"majority_{k}mer" for k in ks], *[f"markov_{k}mer" for k in ks]])
    for arm in arms:
        writer.writerow([arm["arm"], arm["kind"], arm["cycles"] or "", arm["kmer"] or "", arm["vocab_size"],
                         f"{arm['mean_token_length']:.3f}", _fmt(arm["mlm_valid_accuracy"]),
                         _fmt(arm["mlm_valid_perplexity"]), *[f"{arm['next_kmer'][str(k)]:.4f}" for k in ks],
                         f"{selection_score(arm, ks):.4f}", *[f"{arm['majority'][str(k)]:.4f}" for k in ks],
                         *[f"{arm['markov'][str(k)]:.4f}" for k in ks]])
    return out.getvalue()


def _fmt(value) -> str:
    return "" if value is None else f"{value:.4f}"


def selection_markdown(arms: list[dict], ks: list[int], best: str) -> str:
    header = ["arm", "vocab", "mean nt/token", "MLM valid acc", *[f"next-{k}-mer" for k in ks], "mean"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm in arms:
        mark = " **(best)**" if arm["arm"] == best else ""
        lines.append("| " + " | ".join([arm["arm"] + mark, str(arm["vocab_size"]), f"{arm['mean_token_length']:.2f}",
                                        _fmt(arm["mlm_valid_accuracy"]),
                                        *[f"{arm['next_kmer'][str(k)]:.4f}" for k in ks],
                                        f"{selection_score(arm, ks):.4f}"]) + " |")
    reference = arms[0]
    lines.append("| majority class (same examples) | | | | "
                 + " | ".join(f"{reference['majority'][str(k)]:.4f}" for k in ks) + " | |")
    lines.append("| Markov, order k (same examples) | | | | "
                 + " | ".join(f"{reference['markov'][str(k)]:.4f}" for k in ks) + " | |")
    return "\n".join(lines) + "\n"


def selection_plot(arms: list[dict], ks: list[int], path: Path) -> None:
    """One panel per k: test accuracy of each BPE arm against its cycle count, each fixed k-mer arm
    as a dotted line, and the two count baselines on the same examples (the same for every arm);
    bars, where the arms recorded them, are the paired 95 % interval of model − best baseline,
    drawn from the best baseline (a bar clear of the baseline is a difference)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    bpe = sorted((a for a in arms if a["kind"] == "bpe"), key=lambda a: a["cycles"])
    kmers = sorted((a for a in arms if a["kind"] == "kmer"), key=lambda a: a["kmer"])
    reference = arms[0]
    figure, panels = plt.subplots(1, len(ks), figsize=(3.3 * len(ks) + 0.6, 3.9), squeeze=False)
    for panel, k in zip(panels[0], ks):
        key = str(k)
        if bpe:
            cycles = [a["cycles"] for a in bpe]
            panel.plot(cycles, [a["next_kmer"][key] for a in bpe], "o-", color="C0", label="BPE vocabulary (model)")
            with_ci = [a for a in bpe if key in a.get("minus_best_baseline_ci", {})]
            for arm in with_ci:
                base = arm["best_baseline_accuracy"][key]
                low, high = arm["minus_best_baseline_ci"][key]
                panel.plot([arm["cycles"]] * 2, [base + low, base + high], color="C0", linewidth=1, alpha=0.6)
            panel.set_xscale("log")
            panel.set_xticks(cycles, [str(c) for c in cycles])  # the cycle counts run, as integers
            panel.xaxis.set_minor_locator(NullLocator())
            panel.set_xlim(min(cycles) / 1.5, max(cycles) * 1.5)
        for index, arm in enumerate(kmers):
            panel.axhline(arm["next_kmer"][key], color=f"C{index + 1}", linestyle=":", linewidth=1.5,
                          label=f"fixed {arm['kmer']}-mer vocabulary (model)")
        panel.axhline(reference["markov"][key], color="grey", linestyle="--", linewidth=1.2,
                      label="Markov model of order k (baseline)")
        panel.axhline(reference["majority"][key], color="black", linestyle="-.", linewidth=1,
                      label="commonest train k-mer (baseline)")
        panel.set_ylim(bottom=max(0.0, panel.get_ylim()[0]))  # an interval's tail below 0 is not an accuracy
        panel.set_title(f"next {k} bases ({4**k:,} classes)")
        panel.set_xlabel("BPE cycles (vocabulary size - 9)")
    panels[0][0].set_ylabel("top-1 accuracy on the test examples")
    handles, labels = panels[0][0].get_legend_handles_labels()
    if any("minus_best_baseline_ci" in a for a in bpe):
        labels = [label + ("; bar: best baseline + 95 % paired interval of model - best baseline"
                           if label.startswith("BPE") else "") for label in labels]
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    figure.suptitle("Vocabulary selection: next-k-mer prediction after the same pretraining budget")
    figure.tight_layout(rect=(0, 0.07 + 0.035 * ((len(labels) + 1) // 2), 1, 1))
    save_figure(figure, path)


def select_vocabulary(workdir: str | Path, config: ml_collections.ConfigDict, fasta: list[str] | None = None,
                      split_spec: str | None = None, progress: bool = True) -> dict:
    """Run (or resume) every arm; returns {"best": name, "arms": [...]} and writes the table and plot."""
    workdir = Path(workdir)
    fasta_paths, split_spec = resolve_genome(fasta, split_spec)
    arms = []
    for name in arm_names(config.sweep):
        arm_dir = workdir / "arms" / name
        arm_file = arm_dir / ARM_FILE
        if arm_file.exists():
            if progress:
                print(f"[{name}] finished earlier: {arm_file}")
            arms.append(json.loads(arm_file.read_text()))
            continue
        arm_dir.mkdir(parents=True, exist_ok=True)
        arm = _run_arm(name, arm_dir, fasta_paths, split_spec, config, progress)
        write_text(arm_file, json.dumps(arm, indent=1))
        arms.append(arm)
    ks = list(config.next_kmer.ks)
    best = max(arms, key=lambda a: selection_score(a, ks))["arm"]
    for name, text in [("selection.csv", selection_csv(arms, ks)), ("selection.md", selection_markdown(arms, ks, best))]:
        write_text(workdir / name, text)
    selection_plot(arms, ks, workdir / "selection.png")
    if progress:
        print(selection_markdown(arms, ks, best))
        print(f"best vocabulary: {best} -> {workdir / 'selection.md'}")
    return {"best": best, "arms": arms}
