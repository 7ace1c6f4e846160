"""The pretraining program end to end on the bundled real genome: learning, exact resume, refusal."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from grover_jax.configuration import load_config
from grover_jax.programs.pretrain import pretrain
from grover_jax.programs.vocabulary import build_token_store, learn_vocabulary
from grover_jax.store import open_store
from grover_jax.train.checkpoint import CheckpointMismatchError

TINY = ["model.hidden_size=64", "model.num_layers=2", "model.num_heads=2", "model.intermediate_size=128",
        "data.seq_len=64", "train.batch_size=8", "data.eval_batches=2", "train.warmup_steps=2"]


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    """The bundled genome (hg19 chr20 slice, its train/valid/test) with a 200-cycle vocabulary."""
    root = tmp_path_factory.mktemp("pretrain")
    learn_vocabulary(None, root / "vocab", cycles=200, progress=False)
    return build_token_store(None, root / "vocab" / "tokenizer.json", root / "store", progress=False)


def _rows(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    # Wall-clock figures differ between any two runs; everything computed must not.
    return [{k: v for k, v in r.items() if k not in ("tokens_per_second", "mfu")} for r in rows]


def _command(workdir: Path, store_dir: Path, steps: int) -> list[str]:
    sets = TINY + [f"train.num_steps={steps}", "train.log_every=1", "train.eval_every=4", "train.checkpoint_every=2"]
    return [sys.executable, "-m", "grover_jax.cli", "pretrain", "--workdir", str(workdir), "--store", str(store_dir),
            *[arg for s in sets for arg in ("--set", s)]]


def test_killed_run_resumes_to_the_same_metrics_as_an_uninterrupted_one(store_dir, tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    whole = tmp_path / "whole"
    subprocess.run(_command(whole, store_dir, 12), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen(_command(killed, store_dir, 12), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoints" / "4").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    steps_done = max(r["step"] for r in _rows(killed / "metrics.jsonl"))
    assert steps_done < 12, "the run must be killed before it finishes"

    resumed = subprocess.run(_command(killed, store_dir, 12), check=True, env=env, capture_output=True, text=True)
    assert "resuming from step" in resumed.stdout
    assert _rows(killed / "metrics.jsonl") == _rows(whole / "metrics.jsonl")


def test_loss_falls_and_accuracy_beats_the_unigram_baseline_on_held_out_sequence(store_dir, tmp_path):
    config = load_config("tiny", ["train.num_steps=300", "train.eval_every=300", "train.log_every=10",
                                  "train.checkpoint_every=300", "data.eval_batches=6"])
    final = pretrain(config, tmp_path / "run", store_dir, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train_losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert train_losses[-1] < train_losses[0] - 0.5, train_losses

    # Baseline, recomputed here: always predict the most frequent train token, on the same valid targets.
    from grover_jax.data.mlm import MaskingConfig, eval_batches

    store = open_store(store_dir)
    train_tokens = np.concatenate([np.asarray(store.tokens[c["token_offset"]: c["token_offset"] + c["n_tokens"]])
                                   for c in store.split_contigs("train")])
    most_frequent = np.bincount(train_tokens).argmax()
    masking = MaskingConfig.from_config(config.data)
    hits = targets = 0
    for batch in eval_batches(store, "valid", masking, config.train.batch_size, config.data.eval_batches, seed=0):
        chosen = batch["mlm_weights"] > 0
        hits += int((batch["mlm_labels"][chosen] == most_frequent).sum())
        targets += int(chosen.sum())
    assert targets == final["valid"]["n_targets"]
    baseline = hits / targets
    assert final["valid"]["unigram_accuracy"] == pytest.approx(baseline)
    print(f"valid accuracy {final['valid']['accuracy']:.4f} vs unigram baseline {baseline:.4f}")
    assert final["valid"]["accuracy"] > baseline + 0.01, (final["valid"]["accuracy"], baseline)


def test_a_checkpoint_from_a_different_config_is_refused(store_dir, tmp_path):
    config = load_config("tiny", TINY + ["train.num_steps=4", "train.checkpoint_every=4", "train.eval_every=4"])
    pretrain(config, tmp_path / "run", store_dir, progress=False)
    changed = load_config("tiny", TINY + ["train.num_steps=4", "train.checkpoint_every=4", "train.eval_every=4",
                                          "model.num_layers=3"])
    config_file = (tmp_path / "run" / "config.json").read_text()
    with pytest.raises(CheckpointMismatchError, match="model.num_layers: checkpoint 2, now 3"):
        pretrain(changed, tmp_path / "run", store_dir, progress=False)
    # The refused run left the folder describing its checkpoints, not itself.
    assert (tmp_path / "run" / "config.json").read_text() == config_file


def test_rerunning_a_finished_run_trains_nothing_and_reports_its_evaluation(store_dir, tmp_path):
    config = load_config("tiny", TINY + ["train.num_steps=4", "train.checkpoint_every=4", "train.eval_every=4"])
    first = pretrain(config, tmp_path / "run", store_dir, progress=False)
    rows = (tmp_path / "run" / "metrics.jsonl").read_text()
    again = pretrain(config, tmp_path / "run", store_dir, progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == rows
    assert again["valid"] == first["valid"]


def test_bad_pretraining_input_is_one_line_on_the_command_line(store_dir, tmp_path):
    cases = [
        (["--set", "mesh.data=3"], "mesh"),  # 3 does not divide the devices
        (["--set", "data.eval_batches=1", "--set", "train.batch_size=100000"], "windows"),
    ]
    for extra, word in cases:
        args = ["pretrain", "--workdir", str(tmp_path / word), "--store", str(store_dir),
                *[a for s in TINY for a in ("--set", s)], "--set", "train.num_steps=3", *extra]
        process = subprocess.run([sys.executable, "-m", "grover_jax.cli", *args], capture_output=True, text=True,
                                 env={**os.environ, "JAX_PLATFORMS": "cpu"})
        lines = [line for line in process.stderr.splitlines() if line.startswith("grover: error:")]
        assert process.returncode == 2, process.stderr[-2000:]
        assert len(lines) == 1 and word in lines[0], process.stderr[-2000:]
    missing = subprocess.run([sys.executable, "-m", "grover_jax.cli", "pretrain", "--workdir", str(tmp_path / "x")],
                             capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert missing.returncode == 2 and "no token store" in missing.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_train_like_one_process_with_the_same_devices(store_dir, tmp_path):
    """`grover pretrain` in 2 processes (1 CPU device each, gloo), each feeding its half of every
    batch, gives the metrics of 1 process driving 2 devices."""
    base = {**os.environ, "JAX_PLATFORMS": "cpu"}
    one = tmp_path / "one"
    subprocess.run(_command(one, store_dir, 6), check=True, capture_output=True,
                   env={**base, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    two = tmp_path / "two"
    port = _free_port()
    processes = [
        subprocess.Popen(_command(two, store_dir, 6), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={
            **base, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(rank),
        })
        for rank in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[1][-2000:]
    expected, got = _rows(one / "metrics.jsonl"), _rows(two / "metrics.jsonl")
    assert [(r["step"], r["kind"]) for r in got] == [(r["step"], r["kind"]) for r in expected]
    for a, b in zip(expected, got):
        for key in ("loss", "accuracy", "n_targets"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (a["step"], key)
