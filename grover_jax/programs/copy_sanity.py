"""The sanity check every masked-LM experiment waits for: real sequence in tandem copies.

Real bases from a genome are cut into `n_units` units of `unit_bases`, and each unit is written
`copies` times in a row. The train record holds these repeated units in `train_orders` shuffled
orders, the valid record in one more: its windows are new, while every masked token is spelled out
by its neighbours (the same position in the neighbouring copies, and the unit's own context), and
where a window starts says nothing. Targets are [MASK]ed, never adjacent. A working encoder fills
in almost every target after a short training; one that cannot has a bug in its data, masking,
attention or optimiser, and no experiment with it means anything.
"""

from pathlib import Path

import ml_collections
import numpy as np

from grover_jax import bundled
from grover_jax.configuration import load_config
from grover_jax.evaluation.fill_in import FillInNgram, fill_in_set, score_model
from grover_jax.genome.fasta import read_fasta
from grover_jax.genome.genome import acgt_runs
from grover_jax.programs.mlm_eval import masked_lm_logits_fn
from grover_jax.programs.pretrain import pretrain
from grover_jax.programs.vocabulary import build_token_store, learn_vocabulary
from grover_jax.runs import load_pretrained
from grover_jax.store import open_store

SPLIT_SPEC = "valid=copies_valid"
# The gate: steps of the tiny encoder, and the held-out fill-in top-1 it must reach. Past ~2,000 steps
# the train record is filled in at > 0.9 (a content lookup into the neighbouring copy, which takes
# the encoder a while to find), so 3,000 steps leave a margin at a third of the laptop budget.
GATE_STEPS = 3000
GATE_MIN_TOP1 = 0.9


def write_tandem_copies(fasta_out: str | Path, source: str | Path = bundled.FASTA, unit_bases: int = 40,
                        copies: int = 8, n_units: int = 64, train_orders: int = 4, seed: int = 0) -> Path:
    """A FASTA of two records, `copies_train` and `copies_valid`: consecutive real units of the
    source's first ACGT runs, each repeated `copies` times, in `train_orders` shuffled orders one
    after another (train) and in one other shuffled order (valid)."""
    units: list[bytes] = []
    for record in read_fasta(source):
        for start, end in acgt_runs(record.sequence):
            for unit_start in range(int(start), int(end) - unit_bases + 1, unit_bases):
                if len(units) < n_units:
                    units.append(record.sequence[unit_start: unit_start + unit_bases].tobytes())
    if len(units) < n_units:
        raise ValueError(f"{source}: fewer than {n_units} units of {unit_bases} ACGT bases")
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(n_units) for _ in range(train_orders + 1)]
    fasta_out = Path(fasta_out)
    with open(fasta_out, "w") as handle:
        for name, chosen in (("copies_train", orders[:-1]), ("copies_valid", orders[-1:])):
            sequence = b"".join(units[i] * copies for order in chosen for i in order).decode()
            handle.write(f">{name}\n")
            handle.writelines(sequence[i: i + 60] + "\n" for i in range(0, len(sequence), 60))
    return fasta_out


def sanity_config(num_steps: int) -> ml_collections.ConfigDict:
    """The tiny encoder, as `grover run` trains it, for `num_steps` steps on the tandem copies."""
    config = load_config("tiny")
    config.data.seq_len = config.model.max_position_embeddings = 64  # ~8 copies of a unit in view
    config.train.num_steps = num_steps
    config.train.learning_rate = 2e-3
    config.train.warmup_steps = num_steps // 10
    config.train.eval_every = config.train.checkpoint_every = num_steps
    config.data.eval_batches = 4
    return config


def run_copy_sanity(workdir: str | Path, num_steps: int = 600, cycles: int = 100, progress: bool = False
                    ) -> dict[str, float]:
    """Train the tiny encoder on tandem copies of real sequence and score fill-in on the units in a held-out order.

    Returns the model's and the fill-in n-gram's top-1 with every target [MASK]ed (15 %)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    fasta = write_tandem_copies(workdir / "tandem_copies.fa")
    learn_vocabulary(None, workdir / "vocab", cycles, progress=progress)  # a real vocabulary, real genome
    build_token_store([str(fasta)], workdir / "vocab" / "tokenizer.json", workdir / "store", SPLIT_SPEC,
                      overwrite=True, progress=progress)
    config = sanity_config(num_steps)
    pretrain(config, workdir / "pretrain", workdir / "store", progress=progress)
    store = open_store(workdir / "store")
    fill = fill_in_set(store, "valid", config.data.seq_len, 0.15, n_windows=64)
    model = score_model(masked_lm_logits_fn(load_pretrained(workdir / "pretrain", "latest")), fill)
    ngram = FillInNgram(store, "train").score(fill)
    return {"model_top1": model.summary()["top1"], "ngram_top1": ngram.summary()["top1"],
            "n_targets": len(fill.target_row), "mean_nll": float(-np.mean(model.log_prob))}
