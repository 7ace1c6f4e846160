"""Regenerate RESULTS.md's generated sections, CSVs and PNGs from scratch, part by part.

    python scripts/reproduce.py --scale laptop                       # bundled 5 Mb slice, <= 30 min on 2 cores
    python scripts/reproduce.py --scale chromosome --fasta hg19_chr20.fa.gz   # whole chr20, ~2.5 h
    python scripts/reproduce.py --scale chromosome --fasta ... --only mlm     # one part

The chromosome's FASTA comes from `grover data fetch hg19 --chromosomes chr20 --out genome/`.
Parts, in order (each depends only on earlier ones):
    sanity     the tiny encoder must fill in tandem copies of real sequence; nothing else runs if not
    pilot      (chromosome) shapes of configs/small.py trained for the same CPU time, compared on
               held-out fill-in accuracy
    pretrain   the scale's model: `tiny` on the bundled slice, `small` on chr20 (resumes exactly)
    mlm        fill-in on the test split, every target [MASK]ed, at 2.2 % and 15 %, beside the
               unigram and the fill-in n-gram on the same targets, paired bootstrap intervals
    seeds      (laptop) pretraining and the 15 % fill-in again with seeds 1 and 2, on the same targets
    next_kmer  GROVER's next-k-mer task (k = 2..6) on held-out sequence beside the majority class and an
               order-10 Markov model on the same examples, paired bootstrap intervals
    ship       (chromosome) the best checkpoint as an HF folder, float16, with its model card; with
               --ship it replaces the package's grover_jax/resources/models/grover-small-hg19-chr20
    representations  GROVER's token analyses: each token's contextual embedding (last layer) averaged
               over its occurrences in evenly spaced valid windows, its principal components' Spearman
               rho with frequency, GC, AG, AC and length beside the paper's, and per-layer
               self-similarity; the same encoder with random weights as the control
    downstream (chromosome) what pretraining adds: the shipped model fine-tuned beside the same
               encoder not pretrained, 4-/6-mer logistic regressions and the CNN, over seeds and
               fractions of the training labels, paired bootstrap intervals, on chr20 tasks (needs
               --annotation; a task whose input is not given is skipped, and the section says so)
    gue        (chromosome) the same comparison on GUE tasks (needs --gue)
A part whose result.json exists is read back, not redone (pretraining resumes where it stopped), so
re-running the command after an interruption continues. Everything lands in --workdir; RESULTS.md's
sections between `<!-- reproduce:<scale>:<part> -->` markers are rewritten, the rest is kept.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from grover_jax import api, bundled
from grover_jax.analysis.self_similarity import analyze_self_similarity
from grover_jax.analysis.tokens import analyze_tokens
from grover_jax.atomic_files import atomic_output, save_figure, write_text
from grover_jax.configuration import load_config
from grover_jax.evaluation.bootstrap import paired_bootstrap
from grover_jax.evaluation.fill_in import FillInNgram, fill_in_set, score_model
from grover_jax.interop import hf
from grover_jax.interop.model_card import masked_lm_card, read_config, write_card
from grover_jax.programs.copy_sanity import GATE_MIN_TOP1, GATE_STEPS, run_copy_sanity
from grover_jax.programs.mlm_eval import evaluate_fill_in, masked_lm_logits_fn, rows_markdown
from grover_jax.programs.next_kmer import results_markdown, run_next_kmer
from grover_jax.programs.pretrain import pretrain
from grover_jax.programs.pretraining_effect import compare, markdown_header, markdown_rows
from grover_jax.programs.vocabulary import build_token_store, learn_vocabulary
from grover_jax.runs import load_pretrained
from grover_jax.store import StoreError, open_store

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("sanity", "pilot", "pretrain", "mlm", "seeds", "ship", "next_kmer", "representations", "downstream", "gue")
# The chromosome-scale model, shipped inside the package (bundled.MODELS).
SHIPPED_NAME = "grover-small-hg19-chr20"

# The sanity gate (the same for every real scale): steps of the tiny encoder on tandem copies, and the
# held-out fill-in top-1 it must reach.
SANITY = {"sanity_steps": GATE_STEPS, "sanity_min_top1": GATE_MIN_TOP1}
# The chromosome pilot: configs/small.py shape -> steps, chosen so that each takes about the same CPU
# time; the first is the recipe's and the others are compared with it on the same targets.
PILOT = {"4x256": 150, "6x384": 50}
# What pretraining adds (programs/pretraining_effect.py): tasks, their label fractions (1.0 alone
# where absent), seeds, and the budget every arm gets (optimizer steps, valid evaluations). A `gue:`
# task is a GUE folder (train/dev/test CSVs) under --gue; the others are built from the genome.
DOWNSTREAM = {"tasks": ("promoter_gc", "prom300", "ctcf", "promscan"), "fractions": {"promoter_gc": (0.01, 0.1, 1.0)},
              "seeds": (0, 1, 2), "steps": 60, "evaluations": 6}
# The GUE tasks (prom_300_* and tf_* of DNABERT-2's benchmark), tf_4 also at 1 % and 10 % of its labels,
# with the budget of the chr20 tasks; each arm takes one to three minutes on 2 cores.
GUE = {"tasks": ("gue:tf_4", "gue:tf_0", "gue:tf_1", "gue:tf_2", "gue:tf_3", "gue:prom_300_tata",
                 "gue:prom_300_notata", "gue:prom_300_all"),
       "fractions": {"gue:tf_4": (0.01, 0.1, 1.0)}, "seeds": (0, 1, 2), "steps": 60, "evaluations": 6}
SCALES = {
    "laptop": {"config": "tiny", "steps": None, "pilot": None, "mlm_windows": 512, **SANITY, "seeds": (1, 2),
               "next_kmer": {"examples": (16_000, 1_000, 4_000), "steps": 300, "ks": (2, 3, 4, 5, 6)},
               "downstream": None, "gue": None},
    "chromosome": {"config": "small", "steps": None, "pilot": PILOT, "mlm_windows": 512, "seeds": (),
                   **SANITY,
                   # GROVER: 500,000 examples of 50 nt; at least 100,000 train and 20,000 test here.
                   "next_kmer": {"examples": (100_000, 5_000, 20_000), "steps": 400, "ks": (2, 3, 4, 5, 6)},
                   "downstream": DOWNSTREAM, "gue": GUE},
    # A few-minute end-to-end run of every part, for the tests (its numbers mean nothing). Its gate
    # is 0: twenty steps learn nothing, and the gate's rule is tested by itself.
    "smoke": {"config": "tiny", "steps": 20, "seeds": (1,), "pilot": dict.fromkeys(PILOT, 2), "mlm_windows": 16,
              "sanity_steps": 20, "sanity_min_top1": 0.0,
              "next_kmer": {"examples": (512, 64, 128), "steps": 4, "ks": (2,)},
              "downstream": {"tasks": ("promoter_gc",), "fractions": {"promoter_gc": (0.5, 1.0)}, "seeds": (0, 1),
                             "steps": 4, "evaluations": 2},
              "gue": {"tasks": ("gue:smoke",), "fractions": {}, "seeds": (0,), "steps": 2, "evaluations": 1}},
}


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count()}


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=False).stdout.strip()
        return head + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def provenance(command: str, seeds: list[int]) -> dict:
    return {"commit": commit(), "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            **machine(), "seeds": seeds, "command": command}


def provenance_line(p: dict) -> str:
    return (f"commit `{p['commit']}`, {p['date']}, {p['cpu']} ({p['cores']} cores), seeds {p['seeds']}, "
            f"seconds {p.get('seconds', 0):,.0f}; command: `{p['command']}`")


class Reproduction:
    def __init__(self, scale: str, workdir: Path, fasta: str | None, command: str, annotation: str | None = None,
                 gue: str | None = None):
        self.scale, self.settings = scale, SCALES[scale]
        self.root, self.workdir, self.fasta, self.command = workdir, workdir / scale, fasta, command
        self.annotation, self.gue = annotation, gue
        self.workdir.mkdir(parents=True, exist_ok=True)

    # --- data -------------------------------------------------------------------------------------
    def genome(self) -> tuple[list[str] | None, str]:
        if self.scale == "chromosome":
            return [self.fasta], load_config("small").genome.splits
        return None, bundled.SPLIT_SPEC

    def store(self) -> Path:
        store_dir = self.workdir / "store"
        try:
            open_store(store_dir)
            return store_dir
        except StoreError:
            pass
        fasta, splits = self.genome()
        learn_vocabulary(fasta, self.workdir / "vocab", 600, splits, progress=False)
        return build_token_store(fasta, self.workdir / "vocab" / "tokenizer.json", store_dir, splits,
                                 overwrite=True, progress=False)

    def pretrain_config(self, shape: str | None = None):
        name = self.settings["config"] + (f":{shape}" if shape else "")
        config = load_config(name)
        if self.settings["steps"]:
            config.train.num_steps = self.settings["steps"]
            config.train.warmup_steps = min(config.train.warmup_steps, config.train.num_steps // 10)
            config.train.eval_every = config.train.checkpoint_every = config.train.num_steps
        return name, config

    # --- parts ------------------------------------------------------------------------------------
    def run(self, part: str) -> dict:
        out = self.part_dir(part) / "result.json"
        if out.exists():
            return json.loads(out.read_text())
        started = time.time()
        result = getattr(self, f"part_{part}")()
        if result is None:
            return {}
        result["provenance"] = provenance(self.command, result.pop("seeds", [0]))
        result["provenance"]["seconds"] = time.time() - started
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, json.dumps(result, indent=1))
        return result

    def part_dir(self, part: str) -> Path:
        # One sanity gate serves the laptop and chromosome scales (the same tiny encoder and data).
        return self.root / part if marker(self.scale, part) == part else self.workdir / part

    def part_sanity(self) -> dict:
        result = run_copy_sanity(self.part_dir("sanity") / "run", num_steps=self.settings["sanity_steps"])
        result["min_top1"] = self.settings["sanity_min_top1"]
        result["passed"] = result["model_top1"] >= result["min_top1"]
        return result

    def part_pilot(self) -> dict | None:
        shapes = self.settings["pilot"]
        if not shapes:
            return None
        store = self.store()
        # Same windows and targets for every shape: 254-token windows of valid, 15 %.
        fill = fill_in_set(open_store(store), "valid", 256, 0.15, self.settings["mlm_windows"])
        rows = [{"shape": "fill-in n-gram (train counts)",
                 **{f"valid_{k}": v for k, v in FillInNgram(open_store(store), "train").score(fill).summary().items()}}]
        correct = {}
        for shape, steps in shapes.items():
            config = load_config(f"small:{shape}")
            config.train.num_steps = steps
            config.train.warmup_steps = max(1, steps // 10)
            config.train.eval_every = config.train.checkpoint_every = steps
            run_dir = self.workdir / "pilot" / shape
            started = time.time()
            pretrain(config, run_dir, store, progress=False)
            seconds = time.time() - started
            scores = score_model(masked_lm_logits_fn(load_pretrained(run_dir, "latest")), fill)
            correct[shape] = scores.top1
            tokens = steps * config.train.batch_size * config.data.seq_len
            rows.append({"shape": shape, "layers": config.model.num_layers, "hidden": config.model.hidden_size,
                         "seq_len": config.data.seq_len, "batch": config.train.batch_size,
                         "learning_rate": config.train.learning_rate, "steps": steps, "tokens": tokens,
                         "train_seconds": seconds, **{f"valid_{k}": v for k, v in scores.summary().items()}})
        # Each shape against the first (the recipe's), on the same targets, resampled by window.
        first = next(iter(correct))
        comparisons = [{"a": first, "b": shape, **paired_bootstrap(correct[first], top1, groups=fill.target_row)}
                       for shape, top1 in correct.items() if shape != first]
        return {"rows": rows, "comparisons": comparisons}

    def part_pretrain(self) -> dict:
        name, config = self.pretrain_config()
        run_dir = self.workdir / "pretrain"
        started = time.time()
        final = pretrain(config, run_dir, self.store(), progress=False)
        store = open_store(self.workdir / "store")
        n_train = sum(c["n_tokens"] for c in store.split_contigs("train"))
        tokens = config.train.num_steps * config.train.batch_size * config.data.seq_len
        plot_curves(run_dir / "metrics.jsonl", self.workdir / "pretrain_curves.png", f"{name} on {self.scale}")
        return {"config": name, "steps": config.train.num_steps, "tokens_seen": tokens,
                "train_tokens": n_train, "epochs": tokens / n_train, "valid_80_10_10": final["valid"],
                "seconds_this_call": time.time() - started, "seeds": [config.seed]}

    def part_ship(self) -> dict | None:
        if self.scale == "laptop":
            return None
        pretrained = load_pretrained(self.workdir / "pretrain")
        out = self.workdir / "ship" / SHIPPED_NAME
        hf.export_masked_lm(pretrained.params, pretrained.model_config, pretrained.tokenizer_path, out,
                            overwrite=True)
        tensors = load_file(out / hf.MODEL_FILE)
        # float16 halves the package's share; loading casts back to float32 (interop/hf.py).
        with atomic_output(out / hf.MODEL_FILE) as temporary:
            save_file({k: v.astype(np.float16) for k, v in tensors.items()}, temporary, metadata={"format": "pt"})
        pretrain_result = json.loads((self.workdir / "pretrain" / "result.json").read_text())
        mlm_result = json.loads((self.workdir / "mlm" / "result.json").read_text())
        card = masked_lm_card(
            SHIPPED_NAME, read_config(out),
            training=section(self.scale, "pretrain", pretrain_result).split("![")[0].strip()
            + f"\n\nGenome: hg19 chr20, regions held out: `{load_config('small').genome.splits}`; the rest train.",
            held_out=("Test regions, every target [MASK]ed (no two adjacent), beside a fill-in n-gram "
                      "counted on the train regions, on the same targets:\n\n" + section(self.scale, "mlm", mlm_result)),
            how_made=f"`{self.command}` at commit `{commit()}` (pretraining step {pretrained.step}).")
        write_card(out, card)
        size = sum(f.stat().st_size for f in out.iterdir())
        return {"folder": str(out), "bytes": size, "step": pretrained.step}

    def part_next_kmer(self) -> dict:
        config = load_config("next_kmer")
        nk = config.next_kmer
        nk.n_train, nk.n_valid, nk.n_test = self.settings["next_kmer"]["examples"]
        nk.ks = self.settings["next_kmer"]["ks"]
        config.train.num_steps = self.settings["next_kmer"]["steps"]
        config.train.warmup_steps = max(1, config.train.num_steps // 10)
        config.train.eval_every = max(1, config.train.num_steps // 2)
        rows = run_next_kmer(self.workdir / "pretrain", self.workdir / "next_kmer", config,
                             self.workdir / "store", progress=False)
        return {"rows": rows, "seeds": [config.seed]}

    def part_seeds(self) -> dict | None:
        """The scale's pretraining and 15 % fill-in again with other seeds (initialisation, data order
        and masking), on the same test targets as the `mlm` part's seed."""
        if not self.settings["seeds"]:
            return None
        first = json.loads((self.part_dir("mlm") / "result.json").read_text())
        rows = [{"seed": first["provenance"]["seeds"][0],
                 **next(r for r in first["rows"] if r["mask_rate"] == 0.15)}]
        for seed in self.settings["seeds"]:
            _, config = self.pretrain_config()
            config.seed = seed
            run_dir = self.workdir / "seeds" / str(seed)
            pretrain(config, run_dir, self.store(), progress=False)
            (row,) = evaluate_fill_in(run_dir, self.workdir / "store", "test", mask_rates=(0.15,),
                                      n_windows=self.settings["mlm_windows"])
            rows.append({"seed": seed, **row})
        return {"rows": rows, "seeds": [r["seed"] for r in rows]}

    def downstream_task(self, task: str, config) -> str | None:
        """`config.task` set for `task`; the reason it cannot run here, or None."""
        if task.startswith("gue:"):
            if not self.gue:
                return "no --gue folder given"
            try:
                config.task.name, config.task.csv = "user", str(gue_csv(Path(self.gue) / task[4:], self.workdir / "gue"))
            except (FileNotFoundError, ValueError) as error:
                return str(error)
            return None
        if self.scale == "chromosome" and not self.annotation:
            return "no --annotation folder given (chr20 tss.bed.gz, CTCF.bed.gz)"
        config.task.name = task
        config.task.fasta = self.fasta or ""
        config.task.annotation = self.annotation or ""
        return None

    def part_downstream(self, part: str = "downstream") -> dict | None:
        settings = self.settings[part]
        if not settings:
            return None
        # The chromosome scale fine-tunes the model that ships with the package; the others their own.
        checkpoint = SHIPPED_NAME if self.scale == "chromosome" else self.workdir / "pretrain"
        tasks, skipped = {}, {}
        for task in settings["tasks"]:
            config = load_config("finetune")
            reason = self.downstream_task(task, config)
            if reason:
                skipped[task] = reason
                continue
            tasks[task] = compare(config, checkpoint, self.workdir / part / task.replace(":", "_"),
                                  settings["seeds"], settings["fractions"].get(task, (1.0,)), settings["steps"],
                                  settings["evaluations"])
        plot_label_efficiency(tasks, self.workdir / f"{part}_label_efficiency.png")
        return {"tasks": tasks, "skipped": skipped, "checkpoint": str(checkpoint), "seeds": list(settings["seeds"])}

    def part_gue(self) -> dict | None:
        return self.part_downstream("gue")

    def part_representations(self) -> dict:
        checkpoint = bundled.MODELS[SHIPPED_NAME] if self.scale == "chromosome" else self.workdir / "pretrain"
        trained = api.load(checkpoint)
        store = open_store(self.store())
        if trained.tokenizer.sha256 != store.tokenizer_sha256:
            raise SystemExit(f"{checkpoint} and {store.path} use different tokenizers")
        windows = self.settings["mlm_windows"]
        models = {"trained": trained, "random weights": untrained_copy(trained, seed=0)}
        result = {"checkpoint": str(checkpoint), "windows": windows, "models": {}}
        for name, model in models.items():
            out = self.workdir / "representations" / name.replace(" ", "_")
            out.mkdir(parents=True, exist_ok=True)
            analyze_tokens(model, store, out, n_windows=windows)
            analyze_self_similarity(model, store, out, n_windows=windows)
            with open(out / "token_paper_correlations.csv") as handle:
                paper_rows = list(csv.DictReader(handle))
            similarity = np.loadtxt(out / "self_similarity.csv", delimiter=",", skiprows=1, usecols=(3, 4))
            layers = np.unique(similarity[:, 0]).astype(int)
            by_token = similarity[:, 1].reshape(-1, len(layers))  # one row per token, layers in order
            # Does context move a token's vectors apart with depth? Each token's last layer minus its
            # embeddings' output, the median over tokens with a bootstrap interval over tokens.
            change = by_token[:, -1] - by_token[:, 0]
            draws = np.random.default_rng(0).integers(0, len(change), (1000, len(change)))
            medians = np.median(change[draws], axis=1)
            result["models"][name] = {
                "paper_rows": paper_rows,
                "self_similarity_median": [float(np.median(by_token[:, i])) for i in range(len(layers))],
                "self_similarity_change": {"median": float(np.median(change)),
                                           "low": float(np.percentile(medians, 2.5)),
                                           "high": float(np.percentile(medians, 97.5)),
                                           "falling_share": float(np.mean(change < 0))},
                "tokens": len(by_token)}
        return result

    def part_mlm(self) -> dict:
        rows = evaluate_fill_in(self.workdir / "pretrain", self.workdir / "store", "test",
                                n_windows=self.settings["mlm_windows"])
        return {"rows": rows}


def untrained_copy(model, seed: int):
    """The same encoder and tokenizer with freshly initialised weights: the control for what the
    representation analyses would find without any training."""
    import jax
    from flax import linen as nn

    from grover_jax.model import BertForMaskedLM

    ids = np.zeros((1, 8), np.int32)
    params = nn.unbox(BertForMaskedLM(model.model_config).init(jax.random.key(seed), ids, ids)["params"])
    return api.GroverModel(model.model_config, model.tokenizer, mlm_params=params, batch_size=model.batch_size)


def representations_markdown(result: dict, beside: dict | None) -> str:
    """Our rho on the paper's axis and on the best-matching axis (first six PCs), for the trained
    model and the random-weights control (and, at chromosome scale, the laptop's tiny model)."""
    columns = {f"{name}": entry for name, entry in result["models"].items()}
    if beside:
        columns["tiny model (laptop scale)"] = beside["models"]["trained"]
    header = ["| paper axis ~ property | GROVER (paper) |"
              + "".join(f" {name}: same axis / best axis |" for name in columns),
              "|---|---|" + "---|" * len(columns)]
    rows = []
    for index, paper_row in enumerate(next(iter(columns.values()))["paper_rows"]):
        cells = []
        for entry in columns.values():
            row = entry["paper_rows"][index]
            if row["property"] == "explained_variance":
                cells.append(f"{float(row['ours']):.1%} ({row['best_axis']})")
            else:
                cells.append(f"{float(row['ours']):+.2f} / {row['best_axis']} {float(row['best_rho']):+.2f}")
        label = ("largest variance share of one PC" if paper_row["property"] == "explained_variance"
                 else f"{paper_row['axis'].upper()} ~ {paper_row['property']}")
        paper = float(paper_row["paper"])
        rows.append(f"| {label} | {paper:.1%} |" if paper_row["property"] == "explained_variance"
                    else f"| {label} | {paper:+.2f} |")
        rows[-1] += "".join(f" {cell} |" for cell in cells)
    n_layers = max(len(entry["self_similarity_median"]) for entry in columns.values())
    similarity = ["", ("Self-similarity (median over tokens of the mean cosine between a token's occurrences), "
                       "by layer (0: the embeddings' output; a smaller model has fewer layers):"), "",
                  "| model | tokens | " + " | ".join(f"layer {i}" for i in range(n_layers))
                  + " | last − layer 0, median over tokens [95 % CI] | tokens falling |",
                  "|---|---|" + "---|" * (n_layers + 2)]
    for name, entry in columns.items():
        c = entry["self_similarity_change"]
        values = [f"{v:.3f}" for v in entry["self_similarity_median"]]
        values += [""] * (n_layers - len(values))
        similarity.append(f"| {name} | {entry['tokens']} | " + " | ".join(values)
                          + f" | {c['median']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}] | {c['falling_share']:.0%} |")
    return "\n".join(header + rows + similarity) + "\n"


# GUE ships prom_300_all and prom_300_notata with dev and test files only; there, dev is cut into train
# and valid: a seeded cut within each label (this share to valid), so test stays GUE's own.
GUE_DEV_CUT = {"valid_share": 0.2, "seed": 0}


def gue_csv(folder: Path, out: Path) -> Path:
    """One `sequence,label,split` CSV from a GUE task folder's train / dev / test CSVs (dev is the
    valid split; where there is no train file, dev is cut into train and valid by GUE_DEV_CUT);
    FileNotFoundError where dev or test is missing, ValueError naming a file without those columns."""
    import gzip

    def find(stem: str) -> Path | None:
        return next((p for p in (folder / f"{stem}.csv.gz", folder / f"{stem}.csv") if p.exists()), None)

    def rows(path: Path) -> list[tuple[str, str]]:
        with (gzip.open(path, "rt") if path.suffix == ".gz" else open(path)) as source:
            reader = csv.DictReader(source)
            missing = {"sequence", "label"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path}: no {' or '.join(sorted(missing))} column in its header line")
            return [(row["sequence"], row["label"]) for row in reader]

    paths = {stem: find(stem) for stem in ("train", "dev", "test")}
    for stem in ("dev", "test"):
        if paths[stem] is None:
            raise FileNotFoundError(f"{folder} has no {stem}.csv(.gz)")
    target = out / f"{folder.name}.csv"
    if target.exists():
        return target
    splits = {"valid": rows(paths["dev"]), "test": rows(paths["test"])}
    if paths["train"] is not None:
        splits["train"] = rows(paths["train"])
    else:
        splits["train"], splits["valid"] = dev_cut(splits["valid"], **GUE_DEV_CUT)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(target) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sequence", "label", "split"])
        for split in ("train", "valid", "test"):
            writer.writerows((sequence, label, split) for sequence, label in splits[split])
    return target


def dev_cut(dev: list[tuple[str, str]], valid_share: float, seed: int) -> tuple[list, list]:
    """(train, valid) rows of `dev`: within each label a seeded `valid_share` of the rows to valid, so
    both keep dev's class balance; rows keep their file order."""
    rng = np.random.default_rng(seed)
    to_valid = np.zeros(len(dev), dtype=bool)
    labels = np.array([label for _, label in dev])
    for label in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == label)
        to_valid[rng.permutation(members)[:round(valid_share * len(members))]] = True
    return ([row for row, v in zip(dev, to_valid) if not v], [row for row, v in zip(dev, to_valid) if v])


# --- figures and markdown -------------------------------------------------------------------------


def plot_label_efficiency(tasks: dict, out: Path) -> None:
    """Test MCC (mean over seeds, bars: min to max) against the fraction of training labels, one panel
    per task that has more than one fraction."""
    curves = {task: result for task, result in tasks.items() if len(result["fractions"]) > 1}
    if not curves:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, panels = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4.2), squeeze=False)
    for panel, (task, result) in zip(panels[0], curves.items()):
        fractions = [float(f) for f in result["fractions"]]
        for arm in next(iter(result["fractions"].values()))["mcc"]:
            values = [np.array(entry["mcc"][arm]) for entry in result["fractions"].values()]
            means = np.array([v.mean() for v in values])
            spread = np.array([[m - v.min() for m, v in zip(means, values)], [v.max() - m for m, v in zip(means, values)]])
            panel.errorbar(fractions, means, yerr=spread, marker="o", capsize=3, label=arm)
        panel.set(xscale="log", xlabel="fraction of the training labels (log scale)", ylabel="test MCC",
                  title=f"{task}: {len(result['seeds'])} seeds (bars: min to max)")
        panel.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, out)


def plot_curves(metrics_path: Path, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for kind, style in (("train", "-"), ("valid", "o-")):
        steps = [d["step"] for d in lines if d["kind"] == kind]
        loss_axis.plot(steps, [d["loss"] for d in lines if d["kind"] == kind], style, label=kind)
        accuracy_axis.plot(steps, [d["accuracy"] for d in lines if d["kind"] == kind], style, label=kind)
    loss_axis.set(xlabel="step", ylabel="masked-token cross-entropy (nats)", title="loss")
    accuracy_axis.set(xlabel="step", ylabel="top-1 at targets (80/10/10 rule)", title="masked-token accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_output(out.with_suffix(".svg")) as temporary:
        figure.savefig(temporary)
    save_figure(figure, out)


def section(scale: str, part: str, result: dict, root: Path | None = None) -> str:
    p = result.get("provenance", {})
    head = f"Reproduced by: {provenance_line(p)}\n\n" if p else ""
    if part == "sanity":
        verdict = "passed" if result["passed"] else "FAILED"
        return head + (
            f"Tandem copies of real sequence (held-out order), 15 % targets all [MASK]ed: the tiny encoder "
            f"fills in **{result['model_top1']:.3f}** of {result['n_targets']} targets (gate: ≥ {result['min_top1']}, "
            f"{verdict}); the fill-in n-gram {result['ngram_top1']:.3f}.\n")
    if part == "pilot":
        lines = ["| shape | layers × width | window | batch | lr | steps | tokens seen | train s | valid fill-in top-1 (15 %) | top-10 | perplexity |",
                 "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in result["rows"]:
            if "layers" not in r:
                lines.append(f"| {r['shape']} | | | | | | | | {r['valid_top1']:.4f} | {r['valid_top10']:.4f} | |")
                continue
            lines.append(f"| {r['shape']} | {r['layers']} × {r['hidden']} | {r['seq_len']} | {r['batch']} | "
                         f"{r['learning_rate']:g} | {r['steps']:,} | {r['tokens']:,} | {r['train_seconds']:,.0f} | "
                         f"{r['valid_top1']:.4f} | {r['valid_top10']:.4f} | {r['valid_perplexity']:.1f} |")
        for c in result.get("comparisons", []):
            lines.append("")
            lines.append(f"{c['a']} − {c['b']}, valid fill-in top-1: {c['difference']:+.4f} "
                         f"[{c['low']:+.4f}, {c['high']:+.4f}] (95 %, paired bootstrap over windows)")
        return head + "\n".join(lines) + "\n"
    if part == "pretrain":
        v = result["valid_80_10_10"]
        return head + (
            f"`{result['config']}`: {result['steps']:,} steps, {result['tokens_seen']:,} tokens seen "
            f"({result['epochs']:.2f} epochs of the {result['train_tokens']:,} train tokens). Valid at the end, "
            f"with BERT's 80/10/10 rule (a tenth of targets visible, so not a fill-in score): loss {v['loss']:.3f}, "
            f"accuracy {v['accuracy']:.4f}, perplexity {v['perplexity']:.1f}.\n\n"
            f"![pretraining curves](docs/results/{scale}_pretrain_curves.png)\n")
    if part == "next_kmer":
        return head + results_markdown(result["rows"], "Next-k-mer accuracy on the test split").split("\n", 2)[2]
    if part == "ship":
        return head + f"{SHIPPED_NAME}: HF folder of step {result['step']:,}, {result['bytes'] / 1e6:.1f} MB.\n"
    if part == "mlm":
        return head + rows_markdown(result["rows"]) + "\n"
    if part == "representations":
        beside = None
        laptop = root / "laptop" / "representations" / "result.json" if root else None
        if scale == "chromosome" and laptop and laptop.exists():
            beside = json.loads(laptop.read_text())
        return head + (f"Tokens' last-layer embeddings averaged over their occurrences in {result['windows']} "
                       "evenly spaced windows of the valid split (at most 5,000 occurrences each); "
                       "principal components of those averages; Spearman's rho with token properties "
                       "(PCA signs are arbitrary: compare magnitudes). The same encoder with random weights "
                       "is the control.\n\n") + representations_markdown(result, beside)
    if part in ("downstream", "gue"):
        lines = []
        for task, task_result in result["tasks"].items():
            lines += ([""] if lines else []) + markdown_header(task_result) + markdown_rows(task, task_result)
        lines += [f"\nNot run: {task} ({reason})." for task, reason in result["skipped"].items()]
        if any(len(r["fractions"]) > 1 for r in result["tasks"].values()):
            lines.append(f"\n![label efficiency](docs/results/{scale}_{part}_label_efficiency.png)")
        return head + "\n".join(lines) + "\n"
    if part == "seeds":
        lines = ["| seed | model top-1 | n-gram top-1 | model − n-gram [95 % CI] | model perplexity |",
                 "|---|---|---|---|---|"]
        for r in result["rows"]:
            lines.append(f"| {r['seed']} | {r['model_top1']:.4f} | {r['ngram_top1']:.4f} | "
                         f"{r['model_minus_ngram_top1']:+.4f} [{r['model_minus_ngram_top1_low']:+.4f}, "
                         f"{r['model_minus_ngram_top1_high']:+.4f}] | {r['model_perplexity']:.1f} |")
        top1 = np.array([r["model_top1"] for r in result["rows"]])
        lines.append(f"\nModel top-1 over {len(top1)} seeds: mean {top1.mean():.4f}, standard deviation "
                     f"{top1.std(ddof=1):.4f}, range {top1.min():.4f} to {top1.max():.4f}.")
        return head + "\n".join(lines) + "\n"
    raise ValueError(part)


# Paper scale is not run here: GROVER's BERT-base on hg19 for 200k steps of 64 x 512 tokens (6.6 B tokens).
PAPER_SCALE_ROW = (
    "| paper | hg19, 3.1 Gb | `grover_base` (12 × 768, 87 M parameters), 200k steps × 64 × 512 tokens | "
    "`grover run --fasta hg19/ --splits ... --config grover_base` | estimated, not run: 40 min on a TPU v5e-16 at "
    "50 % MFU (`grover compile`, BENCHMARKS.md); about 3 h on one H100 at 40 % MFU (0.57 GFLOP per token); "
    "years on 2 CPU cores | GROVER reports top-1 21 % and perplexity 72 (its own masking; not reproduced) |")


# What a user types for each scale (each section below the table names the command that actually ran).
SCALE_COMMANDS = {"laptop": "python scripts/reproduce.py --scale laptop",
                  "chromosome": "python scripts/reproduce.py --scale chromosome --fasta hg19_chr20.fa.gz"}


def part_seconds(root: Path, scale: str) -> float:
    """Wall seconds of every finished part of a scale, the shared sanity gate included."""
    results = [root / "sanity" / "result.json"] + [root / scale / part / "result.json" for part in PARTS]
    return sum(json.loads(r.read_text())["provenance"]["seconds"] for r in results if r.exists())


def scales_table(root: Path) -> str:
    """The opening table of RESULTS.md from the finished parts' results (a scale not yet run is said so)."""
    lines = [("| scale | data | model and budget | command | time (measured) | fill-in top-1 on test, 15 % "
              "(model / n-gram / unigram) |"), "|---|---|---|---|---|---|"]
    for scale, data in (("laptop", "bundled hg19 chr20:32-37 Mb"), ("chromosome", "hg19 chr20, 59.5 Mb")):
        try:
            pretrain_result = json.loads((root / scale / "pretrain" / "result.json").read_text())
            mlm_result = json.loads((root / scale / "mlm" / "result.json").read_text())
        except (OSError, ValueError):
            lines.append(f"| {scale} | {data} | | | not yet run | |")
            continue
        row = next(r for r in mlm_result["rows"] if r["mask_rate"] == 0.15)
        seconds = pretrain_result["provenance"]["seconds"]
        spread = "(one seed)"
        try:
            top1 = np.array([r["model_top1"] for r in json.loads((root / scale / "seeds" / "result.json").read_text())["rows"]])
            spread = f"(model over {len(top1)} seeds: {top1.mean():.4f} ± {top1.std(ddof=1):.4f} sd)"
        except (OSError, ValueError):
            pass
        lines.append(
            f"| {scale} | {data} | `{pretrain_result['config']}`, {pretrain_result['steps']:,} steps, "
            f"{pretrain_result['tokens_seen'] / 1e6:.1f} M tokens ({pretrain_result['epochs']:.2f} epochs) | "
            f"`{SCALE_COMMANDS[scale]}` | pretraining {seconds / 60:.0f} min, every part "
            f"{part_seconds(root, scale) / 60:.0f} min, on "
            f"{pretrain_result['provenance']['cpu']} ({pretrain_result['provenance']['cores']} cores) | "
            f"{row['model_top1']:.3f} / {row['ngram_top1']:.3f} / {row['unigram_top1']:.3f} {spread} |")
    return "\n".join(lines + [PAPER_SCALE_ROW]) + "\n"


def marker(scale: str, part: str) -> str:
    return part if (part == "sanity" and scale != "smoke") or scale == "all" else f"{scale}:{part}"


def write_results_md(path: Path, scale: str, part: str, text: str) -> None:
    name = marker(scale, part)
    begin, end = f"<!-- reproduce:{name} -->", f"<!-- /reproduce:{name} -->"
    current = path.read_text() if path.exists() else "# Results\n"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in current and end in current:
        before, rest = current.split(begin, 1)
        current = before + block + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + f"\n\n### {name}\n\n{block}\n"
    write_text(path, current)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="laptop")
    parser.add_argument("--fasta", help="chromosome scale: hg19 chr20 FASTA (grover data fetch hg19 --chromosomes chr20)")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only this part (repeatable)")
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "reproduce"))
    parser.add_argument("--results", default=str(ROOT / "RESULTS.md"), help="the Markdown file to update")
    parser.add_argument("--annotation", help="chromosome downstream: folder with chr20 tss.bed.gz and CTCF.bed.gz")
    parser.add_argument("--gue", help="downstream: folder of GUE task folders (prom_300_tata/, tf_4/, ...)")
    parser.add_argument("--ship", action="store_true",
                        help="chromosome: put the exported model into the package (a new version of the recipe)")
    args = parser.parse_args(argv)
    if args.scale == "chromosome" and not args.fasta:
        parser.error("--scale chromosome needs --fasta (hg19 chr20: grover data fetch hg19 --chromosomes chr20)")
    command = "python scripts/reproduce.py " + " ".join(sys.argv[1:] if argv is None else argv)
    reproduction = Reproduction(args.scale, Path(args.workdir), args.fasta, command, args.annotation, args.gue)
    figures = Path(args.results).parent / "docs" / "results"
    for part in args.only or PARTS:
        result = reproduction.run(part)
        if not result:
            continue
        write_results_md(Path(args.results), args.scale, part,
                         section(args.scale, part, result, Path(args.workdir)))
        if part == "sanity" and not result["passed"]:
            print(f"sanity: the encoder filled in {result['model_top1']:.3f} of tandem copies (< {result['min_top1']}): "
                  "something is broken; no experiment runs", file=sys.stderr)
            return 1
        if part == "pretrain":
            figures.mkdir(parents=True, exist_ok=True)
            source = reproduction.workdir / "pretrain_curves.png"
            (figures / f"{args.scale}_pretrain_curves.png").write_bytes(source.read_bytes())
        curve = reproduction.workdir / f"{part}_label_efficiency.png"
        if part in ("downstream", "gue") and curve.exists():
            figures.mkdir(parents=True, exist_ok=True)
            (figures / f"{args.scale}_{part}_label_efficiency.png").write_bytes(curve.read_bytes())
        if part == "ship" and args.ship and args.scale == "chromosome":
            target = bundled.MODELS[SHIPPED_NAME]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(result["folder"], target)
            for path in target.iterdir():  # package files are world-readable
                path.chmod(0o644)
            print(f"shipped {SHIPPED_NAME} -> {target}")
        print(f"{args.scale}: {part} done")
    if args.scale != "smoke":
        write_results_md(Path(args.results), "all", "scales", scales_table(Path(args.workdir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
