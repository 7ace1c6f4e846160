"""TPU readiness table (BENCHMARKS.md): `grover compile` of GROVER-base and a 3.5× larger BERT for
v4-8, v5e-16, v5e-256, v5p-128 and 2 × v5e-256, on this CPU, with libtpu.

    python scripts/tpu_readiness.py [--results runs/tpu_readiness.jsonl] [--models base,large]

Each compile runs in a fresh process and its result is appended to --results, so an interrupted
run resumes where it stopped and the table can be printed from whatever has finished
(`--table-only`). Per case: the paper's batch (64 × 512 tokens) and a large batch (4096), each
with the recommended mesh.

Largest global batch that fits (no accumulation), a documented shortcut instead of a binary search
of compiles (a fitting compile of BERT-base takes minutes on 2 shared cores, an out-of-memory one
about one): per-chip HBM is linear in the per-chip batch b, total(b) = fixed + b × per_sequence,
with per_sequence from two compiles of the same mesh (a fitting one and a larger batch, whose
out-of-memory error states the temporaries it would need: 1024 sequences per chip). The answer is
rounded down to a multiple of the batch shards; XLA's rematerialisation can sometimes squeeze in a
little more. A batch that does not fit runs with `train.grad_accum_steps` = batch / that estimate.
"""

import argparse
import concurrent.futures
import dataclasses
import json
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GiB = 1024**3
MFU = 0.5
PAPER_BATCH, LARGE_BATCH = 64, 4096

# GROVER-base as published, with bf16 matmuls (f32 parameters, norms and loss): what one runs on a TPU.
MODELS = {
    "base": ("grover_base", ["model.compute_dtype=bfloat16"]),
    # BERT-large's shape: 24 layers, 1024 wide, 16 heads, 4096 FFN = 3.5× GROVER-base's parameters.
    "large": ("grover_base", ["model.compute_dtype=bfloat16", "model.num_layers=24", "model.hidden_size=1024",
                              "model.num_heads=16", "model.intermediate_size=4096"]),
}


@dataclasses.dataclass(frozen=True)
class Slice:
    label: str
    topology: str
    slices: int
    mesh: tuple[str, ...]  # recommended `--set mesh.*` for the paper batch
    large_mesh: tuple[str, ...]  # ... and for large batches
    why: str

    @property
    def chips(self) -> int:
        return math.prod(int(n) for n in self.topology.split(":")[1].split("x")) * self.slices


FSDP = ("mesh.data=1", "mesh.fsdp=-1", "mesh.tensor=1")
SLICES = [
    Slice("v4-8", "v4:2x2x1", 1, FSDP, FSDP,
          "one host: fsdp over its 4 chips shards weights and Adam moments 4 ways, leaving HBM to activations"),
    Slice("v5e-16", "v5e:4x4", 1, FSDP, FSDP,
          "16 GiB chips: fsdp over all 16 keeps the state at 1/16 per chip; ICI all-gathers of an 86 M model are cheap"),
    Slice("v5p-128", "v5p:4x4x4", 1, FSDP, FSDP,
          "64 chips, batch 64 = one sequence per chip under fsdp=64"),
    Slice("v5e-256", "v5e:16x16", 1, ("mesh.data=1", "mesh.fsdp=64", "mesh.tensor=4"), FSDP,
          "batch 64 < 256 chips: tensor=4 (12 heads, FFN 3072 divide by 4) so 64 batch shards suffice; "
          "large batches: fsdp=256"),
    Slice("2 × v5e-256", "v5e:16x16", 2, ("mesh.data=1", "mesh.fsdp=64", "mesh.tensor=4"), FSDP,
          "data across the 2 slices (DCN: one gradient all-reduce per step), fsdp within each; "
          "batch 64 cannot split over 128 shards (tensor=8 does not divide 12 heads)"),
]


def compile_case(config_name: str, overrides: list[str], topology: str, slices: int) -> dict:
    """One `grover compile` in this (fresh) process → a JSON-able record."""
    sys.path.insert(0, str(REPO))
    from grover_jax.configuration import load_config
    from grover_jax.programs.compile import (
        CompileSetupError,
        StepDoesNotFitError,
        compile_pretraining,
    )

    start = time.perf_counter()
    record = {}
    try:
        report = compile_pretraining(load_config(config_name, overrides), topology, slices)
        record = {"status": "fits", **{k: getattr(report, k) for k in (
            "params", "optimizer_state", "batch", "temporaries", "program", "total", "xla_flops_per_chip",
            "model_flops")}, "mesh": report.mesh_shape, "hbm": report.topology.chip.hbm_bytes,
                  "tokens_per_second": report.tokens_per_second(MFU), "num_chips": report.num_chips}
    except StepDoesNotFitError as error:
        record = {"status": "oom", "needed": error.needed_bytes, "available": error.available_bytes,
                  "what": error.what, "message": str(error)}
    except CompileSetupError as error:
        record = {"status": "invalid", "message": str(error)}
    except Exception as error:  # noqa: BLE001 - recorded in the table, the next case still runs
        record = {"status": "invalid", "message": f"{type(error).__name__}: {str(error).splitlines()[0]}"}
    record["seconds"] = time.perf_counter() - start
    return record


def run_case(results: Path, key: str, config_name: str, overrides: list[str], topology: str, slices: int) -> dict:
    done = load_results(results)
    if key in done:
        return done[key]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        record = pool.submit(compile_case, config_name, overrides, topology, slices).result()
    record.update(key=key, overrides=overrides, topology=topology, slices=slices)
    with open(results, "a") as handle:
        handle.write(json.dumps(record) + "\n")
    print(f"{key}: {record['status']} ({record['seconds']:.0f} s)", file=sys.stderr, flush=True)
    return record


def load_results(results: Path) -> dict[str, dict]:
    if not results.exists():
        return {}
    return {r["key"]: r for r in map(json.loads, filter(str.strip, results.read_text().splitlines()))}


def cases(models: list[str]):
    """(key, config, overrides, topology, slices), cheapest and most telling first: compile time
    grows with the per-chip batch, and an out-of-memory probe stops before code generation. The
    paper's batch and the probes of every model come before any model's large batch."""
    def case(model: str, batch: int, target: Slice, mesh: tuple[str, ...]):
        config_name, model_overrides = MODELS[model]
        overrides = [*model_overrides, *mesh, f"train.batch_size={batch}"]
        return f"{model}|{target.label}|{batch}|1", config_name, overrides, target.topology, target.slices

    widest_first = sorted(SLICES, key=lambda t: -t.chips)
    for model in models:
        yield from (case(model, probe_batch(t), t, t.large_mesh) for t in SLICES)
        yield from (case(model, PAPER_BATCH, t, t.mesh) for t in widest_first)
    for model in models:  # narrowest first: those that do not fit fail fast
        yield from (case(model, LARGE_BATCH, t, t.large_mesh) for t in reversed(widest_first))


def probe_batch(target: Slice) -> int:
    """1024 sequences per chip: beyond any chip's HBM for these models, so the compile fails fast."""
    return 1024 * target.chips


def largest_batch(results: dict[str, dict], model: str, target: Slice) -> tuple[int, str] | None:
    """(largest global batch fitting in one step, how it was estimated), from total(b) = fixed +
    b × per_sequence through the largest fitting compile with the probe's mesh and the probe's
    out-of-memory report ("2-point"); without such a compile, through the probe alone with no fixed
    part ("1-point", conservative: it charges the fixed bytes to every sequence)."""
    probe = results.get(f"{model}|{target.label}|{probe_batch(target)}|1", {})
    if probe.get("status") != "oom" or not probe.get("what"):
        return None
    shards = target.chips  # the probe's mesh, fsdp over every chip, is the large-batch mesh
    b2 = probe_batch(target) / shards
    same_mesh = [(batch, results.get(f"{model}|{target.label}|{batch}|1", {})) for batch in (LARGE_BATCH, PAPER_BATCH)]
    same_mesh = [(batch, record) for batch, record in same_mesh
                 if record.get("status") == "fits" and record["overrides"][:-1] == probe["overrides"][:-1]]
    if not same_mesh:
        return max(int(probe["available"] / (probe["needed"] / b2)), 0) * shards, "1-point"
    batch, record = same_mesh[0]
    b1 = batch / shards
    per_sequence = (probe["needed"] - record["temporaries"]) / (b2 - b1)
    return max(int(b1 + (probe["available"] - record["total"]) / per_sequence), 0) * shards, "2-point"


def tokens_per_second(model: str, target: Slice) -> float:
    """At 50 % MFU: the model's FLOPs per token do not depend on the batch (the same formula as
    `grover compile` and `grover pretrain`'s MFU)."""
    sys.path.insert(0, str(REPO))
    from grover_jax.configuration import load_config
    from grover_jax.programs.compile import DEFAULT_VOCAB_SIZE, parse_topology
    from grover_jax.train import model_flops_per_token

    config = load_config(*MODELS[model])
    flops_per_token = model_flops_per_token(config.model, DEFAULT_VOCAB_SIZE, config.data.seq_len)
    return MFU * parse_topology(target.topology).chip.peak_bf16_flops * target.chips / flops_per_token


def table(models: list[str], results: dict[str, dict]) -> str:
    header = ("| model | slice | mesh data×fsdp×tensor | batch | fits | HBM per chip (of) | XLA FLOPs/step per chip "
              "| tokens/s at 50 % MFU | largest 1-step batch, fsdp over all chips (est.) | compile s |")
    lines = [header, "|---|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        for target in SLICES:
            estimate = largest_batch(results, model, target)
            for batch in (PAPER_BATCH, LARGE_BATCH):
                record = results.get(f"{model}|{target.label}|{batch}|1")
                cells = ["", "not compiled", "", "", f"{tokens_per_second(model, target):,.0f}"]
                if record is None and estimate:
                    verdict = "yes" if batch <= estimate[0] else f"no (grad_accum ≥ {math.ceil(batch / estimate[0])})"
                    cells = ["", f"{verdict} (est., not compiled)", "", "", f"{tokens_per_second(model, target):,.0f}"]
                if record and record["status"] == "fits":
                    mesh = "×".join(str(record["mesh"][a]) for a in ("data", "fsdp", "tensor"))
                    cells = [mesh, "yes", f"{record['total'] / GiB:.2f} GiB ({record['hbm'] / GiB:.0f})",
                             f"{record['xla_flops_per_chip']:.3g}", f"{record['tokens_per_second']:,.0f}"]
                elif record and record["status"] == "oom":
                    accumulate = f" (grad_accum ≥ {math.ceil(batch / estimate[0])})" if estimate and estimate[0] else ""
                    alone = f" for {record['what']}" if record["what"] else ""
                    needs = f"needs {record['needed'] / GiB:.1f} GiB{alone} ({record['available'] / GiB:.2f})"
                    cells = ["", "no" + accumulate, needs, "", ""]
                elif record:
                    cells = ["", "no: " + record["message"].split(" (")[0], "", "", ""]
                est = f"≈ {estimate[0]:,} ({estimate[1]})" if estimate and batch == PAPER_BATCH else ""
                seconds = f"{record['seconds']:.0f}" if record else ""
                lines.append(f"| {model} | {target.label} | {cells[0]} | {batch} | {cells[1]} | {cells[2]} "
                             f"| {cells[3]} | {cells[4]} | {est} | {seconds} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=REPO / "runs" / "tpu_readiness.jsonl")
    parser.add_argument("--models", default="base,large")
    parser.add_argument("--table-only", action="store_true", help="print the table from --results, compile nothing")
    args = parser.parse_args()
    models = args.models.split(",")
    args.results.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if not args.table_only:
        for key, config_name, overrides, topology, slices in cases(models):
            run_case(args.results, key, config_name, overrides, topology, slices)
    print(table(models, load_results(args.results)))


if __name__ == "__main__":
    main()
