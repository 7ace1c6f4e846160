"""`grover pretrain`: masked-token pretraining of the BERT on a token store, sharded over a device
mesh, one process or many, resuming exactly from its last checkpoint.

Re-running the same command after a kill continues from the last checkpoint: parameters, Adam
moments and step come back bit for bit, the input pipeline is a function of the step, dropout keys
are folded from the step, and metrics.jsonl is cut back to the checkpoint so that the finished file
equals an uninterrupted run's.
"""

import json
import os
import time
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import optax
from flax.training.train_state import TrainState
from jax.sharding import Mesh

from grover_jax.atomic_files import write_bytes
from grover_jax.configuration import ConfigError
from grover_jax.data.mlm import MaskingConfig, MlmBatches, eval_batches
from grover_jax.model import make_model
from grover_jax.parallel import initialize_distributed, make_mesh, shard_batch
from grover_jax.parallel.chips import peak_bf16_flops
from grover_jax.progress import progress_bar
from grover_jax.store import TokenStore, open_store
from grover_jax.train import (
    Checkpointer,
    abstract_train_state,
    compile_eval_step,
    compile_train_step,
    create_train_state,
    make_optimizer,
    mlm_head_positions,
    model_flops_per_token,
    train_state_sharding,
)


def peak_flops_per_device(config: ml_collections.ConfigDict) -> float | None:
    """For MFU: `train.peak_flops`, else the chip's dense bf16 peak (None: a chip not in the table)."""
    if config.train.get("peak_flops", 0):
        return float(config.train.peak_flops)
    return peak_bf16_flops(jax.devices()[0].device_kind)


class MetricsLog:
    """metrics.jsonl (process 0 only) and TensorBoard. On resume the file is cut back to the
    restored step, rewritten atomically, so a resumed run's file equals an uninterrupted one."""

    def __init__(self, workdir: Path, resume_step: int, enabled: bool):
        self.enabled = enabled
        self.path = workdir / "metrics.jsonl"
        self.writer = None
        if not enabled:
            return
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if _logged_step(line) <= resume_step]
            temporary = self.path.with_suffix(".jsonl.tmp")
            temporary.write_text("".join(line + "\n" for line in kept))
            os.replace(temporary, self.path)
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(workdir / "tensorboard"), purge_step=resume_step + 1)

    def write(self, step: int, kind: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"step": step, "kind": kind, **values}) + "\n")
        for name, value in values.items():
            if value is not None and np.isfinite(value):
                self.writer.add_scalar(f"{kind}/{name}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _logged_step(line: str) -> float:
    """The step of a metrics.jsonl line; a line torn by a kill mid-write counts as after any step."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


def most_frequent_train_token(store: TokenStore, max_tokens: int = 10_000_000) -> int:
    """The unigram baseline's answer: the commonest token of the train split (counted on an even
    sample of at most `max_tokens`, so a whole genome costs no more than chr20)."""
    n_train = sum(c["n_tokens"] for c in store.split_contigs("train"))
    stride = max(1, n_train // max_tokens)
    counts = np.zeros(store.vocab_size, np.int64)
    for contig in store.split_contigs("train"):
        first = contig["token_offset"]
        counts += np.bincount(store.tokens[first : first + contig["n_tokens"] : stride], minlength=store.vocab_size)
    return int(counts.argmax())


def evaluate(eval_fn, params, store: TokenStore, masking: MaskingConfig, config, mesh, baseline_token: int,
             split: str = "valid") -> dict:
    """Loss, masked-token accuracy and perplexity over the split's fixed evaluation batches, beside
    the accuracy of always answering the commonest train token on the same targets."""
    totals = {"loss_sum": 0.0, "n_targets": 0.0, "n_correct": 0.0}
    baseline_hits = 0
    rows = _process_rows(config.train.batch_size)
    for batch in eval_batches(store, split, masking, config.train.batch_size, config.data.eval_batches, seed=0):
        sums = jax.device_get(eval_fn(params, shard_batch({k: v[rows] for k, v in batch.items()}, mesh)))
        for key in totals:
            totals[key] += float(sums[key])
        baseline_hits += int(((batch["mlm_labels"] == baseline_token) & (batch["mlm_weights"] > 0)).sum())
    n = max(totals["n_targets"], 1.0)
    loss = totals["loss_sum"] / n
    return {"loss": loss, "accuracy": totals["n_correct"] / n, "perplexity": float(np.exp(loss)),
            "n_targets": totals["n_targets"], "unigram_accuracy": baseline_hits / n}


def _process_rows(global_batch: int) -> slice:
    n, index = jax.process_count(), jax.process_index()
    if global_batch % n:
        raise ConfigError(f"train.batch_size={global_batch} does not split over {n} processes")
    per_process = global_batch // n
    return slice(index * per_process, (index + 1) * per_process)


def pretraining_program(config: ml_collections.ConfigDict, vocab_size: int, devices: list | None = None
                        ) -> tuple[Mesh, nn.Module, optax.GradientTransformation, TrainState]:
    """(mesh, model, optimizer, train-state shardings) of a pretraining run over `devices` (default:
    all). `grover pretrain` trains with them; `grover compile` compiles the same step for the
    devices of a TPU topology."""
    mesh = make_mesh(config.mesh, devices)
    model = make_model(config.model, vocab_size)
    optimizer = make_optimizer(config.train)
    return mesh, model, optimizer, train_state_sharding(model, optimizer, mesh)


def pretrain(config: ml_collections.ConfigDict, workdir: str | Path, store_path: str | Path | None = None,
             progress: bool = True, auto_distributed: bool = False) -> dict[str, Any]:
    """Train to `config.train.num_steps` (resuming from `workdir/checkpoints`); returns the final metrics."""
    if not jax.distributed.is_initialized():  # a caller (tests, notebooks) may have joined already
        initialize_distributed(auto_detect=auto_distributed)
    workdir = Path(workdir)
    if not (store_path or config.data.store):
        raise ConfigError("no token store: pass --store STORE (or set data.store); `grover store` builds one")
    store = open_store(store_path or config.data.store)
    config = ml_collections.ConfigDict(config.to_dict())
    # Recorded absolute, so the run folder's config.json names its store from any folder
    # (`grover next-kmer --checkpoint /abs/run` run elsewhere).
    config.data.store = str(store.path.absolute())
    config.model.vocab_size = store.vocab_size
    is_main = jax.process_index() == 0

    n_valid_windows = len(store.window_starts("valid", config.data.seq_len - 2))
    if n_valid_windows < config.train.batch_size:
        raise ConfigError(f"{store.path}: the valid split has {n_valid_windows} windows of data.seq_len="
                          f"{config.data.seq_len}, fewer than one batch (train.batch_size={config.train.batch_size}): "
                          "nothing to evaluate on (give the genome a valid split, e.g. --splits 'valid=chr8;test=chr9')")
    mesh, model, optimizer, state_sharding = pretraining_program(config, store.vocab_size)
    checkpoints = Checkpointer(workdir.absolute() / "checkpoints", config, store.tokenizer_sha256)
    step = 0
    if checkpoints.latest_step() is not None:
        # Restore straight into the sharded layout: no freshly initialised copy alongside.
        # (A checkpoint of another run is refused here, before this run's files replace its own.)
        state, data_state = checkpoints.restore(abstract_train_state(model, optimizer, mesh))
        step = int(data_state["step"])
        if is_main:
            print(f"resuming from step {step} ({workdir / 'checkpoints'})")
            differences = checkpoints.resume_differences(checkpoints.latest_step())
            if differences:
                print(f"note: this resume is not bit-identical to an uninterrupted run: {'; '.join(differences)}")
    else:
        state, _ = create_train_state(model, optimizer, mesh, config.seed)
    if is_main:
        write_bytes(workdir / "config.json", config.to_json_best_effort(indent=1).encode())
        write_bytes(workdir / "tokenizer.json", store.tokenizer.path.read_bytes())
    train_step = compile_train_step(config.train, config.model, mesh, state_sharding, config.data)
    eval_fn = compile_eval_step(model.apply, mesh, state_sharding.params)
    log = MetricsLog(workdir, step, is_main)

    masking = MaskingConfig.from_config(config.data)
    train_batches = MlmBatches(store, "train", masking, config.train.batch_size, config.seed)
    rows = _process_rows(config.train.batch_size)
    base_rng = jax.random.PRNGKey(config.seed)
    flops_per_token = model_flops_per_token(
        config.model, store.vocab_size, config.data.seq_len,
        mlm_head_positions(config.train, config.data),
    )
    peak = peak_flops_per_device(config)
    tokens_per_step = config.train.batch_size * config.data.seq_len
    num_steps = config.train.num_steps
    baseline_token = most_frequent_train_token(store)

    bar = progress_bar(total=num_steps, initial=step, desc="pretrain", unit="step", disable=not (progress and is_main))
    last = {}
    interval_start, interval_steps = time.perf_counter(), 0
    while step < num_steps:
        batch = shard_batch(train_batches.batch(step, rows), mesh)
        state, metrics = train_step(state, batch, base_rng)
        step += 1
        interval_steps += 1
        if step % config.train.log_every == 0 or step == num_steps:
            values = {k: float(v) for k, v in jax.device_get(metrics).items()}
            if not np.isfinite(values["loss"]):
                raise FloatingPointError(f"step {step}: loss is {values['loss']} (lower train.learning_rate?)")
            seconds = time.perf_counter() - interval_start
            tokens_per_second = interval_steps * tokens_per_step / seconds
            values["tokens_per_second"] = tokens_per_second
            values["mfu"] = None if peak is None else tokens_per_second * flops_per_token / (peak * jax.device_count())
            log.write(step, "train", values)
            bar.set_postfix_str(f"loss {values['loss']:.3f} acc {values['accuracy']:.3f} {tokens_per_second:,.0f} tok/s",
                                refresh=False)
            last["train"] = values
            interval_start, interval_steps = time.perf_counter(), 0
        valid_loss = None
        if step % config.train.eval_every == 0 or step == num_steps:
            last["valid"] = evaluate(eval_fn, state.params, store, masking, config, mesh, baseline_token)
            valid_loss = last["valid"]["loss"]
            log.write(step, "valid", last["valid"])
            if is_main and progress:
                bar.write(f"step {step}: valid loss {valid_loss:.4f} accuracy {last['valid']['accuracy']:.4f} "
                          f"(unigram baseline {last['valid']['unigram_accuracy']:.4f}) "
                          f"perplexity {last['valid']['perplexity']:.2f}")
            interval_start = time.perf_counter()  # evaluation time is not training throughput
        if step % config.train.checkpoint_every == 0 or step == num_steps:
            checkpoints.save(step, state, {"step": step, "seed": config.seed}, valid_loss=valid_loss)
        bar.update(1)
    bar.close()
    if "valid" not in last:  # nothing left to train (a finished run re-run): report where it stands
        last["valid"] = evaluate(eval_fn, state.params, store, masking, config, mesh, baseline_token)
    checkpoints.close()
    log.close()
    return last

