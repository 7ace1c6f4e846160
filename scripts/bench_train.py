"""Pretraining throughput: this project's jitted, sharded train step vs HF `transformers`
BertForMaskedLM in PyTorch, same shapes, same optimizer, same batches, in the same run.

    python scripts/bench_train.py                      # CPU: 4 layers x 256 wide, 512 tokens, dropout 0.1
    python scripts/bench_train.py --preset base --device gpu --dtype bfloat16   # GROVER-base on a GPU

Both sides: AdamW (b1 0.9, b2 0.98, eps 1e-6, wd 0.01), linear warm-up then decay, clipping at 1.0,
masked-token cross-entropy, dropout as configured. Batches are real windows of the bundled hg19 chr20
token store. MFU = model FLOPs/token x tokens/s / peak; on a CPU the "peak" is the float32 matmul
rate measured here (there is no data-sheet number), on a GPU the bf16 data-sheet peak.

Timing: both sides set up and warmed up, one untimed alternation, then `--rounds` alternating rounds
of steps, the order flipping every round; each side's time is its median round. A shared VM's speed
drifts by several per cent over a minute, which a side-after-side measurement would charge to one
side; the per-round ratios are printed too.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

PRESETS = {
    "cpu": ["model.num_layers=4", "model.hidden_size=256", "model.num_heads=4", "model.intermediate_size=1024"],
    "base": [],  # configs/grover_base.py as is: 12 layers, 768 wide, 12 heads
}


def build_batches(seq_len: int, batch_size: int, n_batches: int, mask_rate: float) -> tuple[list[dict], int]:
    from grover_jax.data.mlm import MaskingConfig, MlmBatches
    from grover_jax.programs.vocabulary import build_token_store, learn_vocabulary
    from grover_jax.store import open_store

    root = Path(tempfile.mkdtemp(prefix="bench_train_"))
    learn_vocabulary(None, root / "vocab", cycles=600, progress=False)
    store = open_store(build_token_store(None, root / "vocab" / "tokenizer.json", root / "store", progress=False))
    masking = MaskingConfig(seq_len=seq_len, mask_rate=mask_rate, full_window_fraction=1.0)
    source = MlmBatches(store, "train", masking, batch_size, seed=0)
    return [source.batch(step) for step in range(n_batches)], store.vocab_size


def measured_matmul_flops(n: int = 2048, repeats: int = 10) -> float:
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        matmul(a).block_until_ready()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def timed(run_step, sync, n_batches: int):
    """`run(steps) -> seconds` for a side that is set up and warmed up."""
    position = [0]

    def run(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            run_step(position[0] % n_batches)
            position[0] += 1
        sync()
        return time.perf_counter() - start

    return run


def setup_jax(config, batches: list[dict], vocab_size: int, warmup: int):
    import jax

    from grover_jax.parallel import shard_batch
    from grover_jax.programs.pretrain import pretraining_program
    from grover_jax.train import compile_train_step, create_train_state

    # `grover pretrain`'s own mesh, model, optimizer and step.
    mesh, model, optimizer, sharding = pretraining_program(config, vocab_size)
    state, _ = create_train_state(model, optimizer, mesh, config.seed)
    step_fn = compile_train_step(config.train, config.model, mesh, sharding, config.data)
    rng = jax.random.PRNGKey(0)
    device_batches = [shard_batch(b, mesh) for b in batches]
    carry = {"state": state, "metrics": None}

    def run_step(i: int) -> None:
        carry["state"], carry["metrics"] = step_fn(carry["state"], device_batches[i], rng)

    run = timed(run_step, lambda: jax.block_until_ready((carry["state"], carry["metrics"])), len(batches))
    run(warmup)
    return run


def setup_torch(config, batches: list[dict], vocab_size: int, warmup: int, device: str, bf16: bool):
    import torch
    from transformers import BertConfig, BertForMaskedLM

    m, t = config.model, config.train
    hf_config = BertConfig(
        vocab_size=vocab_size, hidden_size=m.hidden_size, num_hidden_layers=m.num_layers,
        num_attention_heads=m.num_heads, intermediate_size=m.intermediate_size, hidden_act="gelu",
        hidden_dropout_prob=m.hidden_dropout, attention_probs_dropout_prob=m.attention_dropout,
        max_position_embeddings=m.max_position_embeddings, layer_norm_eps=m.layer_norm_eps,
        attn_implementation="sdpa",
    )
    model = BertForMaskedLM(hf_config).to(device).train()
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=t.learning_rate, betas=(t.b1, t.b2), eps=t.eps)
    # The JAX side's schedule (train/optimizer.py): linear warm-up from 0, then linear decay to 0 at
    # num_steps. LambdaLR's factor at scheduler step s applies to update s, like optax's
    # count, which starts at 0: both sides use the same rate at every update.
    def rate_factor(step: int) -> float:
        if step < t.warmup_steps:
            return step / t.warmup_steps
        return max(0.0, (t.num_steps - step) / (t.num_steps - t.warmup_steps))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate_factor)
    device_batches = []
    for b in batches:
        labels = np.where(b["mlm_weights"] > 0, b["mlm_labels"], -100)
        device_batches.append({
            "input_ids": torch.from_numpy(b["input_ids"]).long().to(device),
            "attention_mask": torch.from_numpy(b["attention_mask"]).long().to(device),
            "labels": torch.from_numpy(labels).long().to(device),
        })

    def run_step(i: int) -> None:
        batch = device_batches[i]
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    run = timed(run_step, sync, len(batches))
    run(warmup)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per side")
    parser.add_argument("--rounds", type=int, default=8,
                        help="the timed steps alternate between the sides in this many rounds; "
                             "each side's time is the median round's (a shared VM's speed drifts)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--mask-rate", type=float, default=0.15)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="A.B=C")
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc malloc as it is (default: both sides run with `grover`'s "
                             "host-memory setting, grover_jax/host_memory.py)")
    args = parser.parse_args()
    if args.device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # Process-wide and before either framework starts its threads, so both sides share it.
    from grover_jax.host_memory import keep_freed_memory

    heap_reuse = False if args.system_malloc else keep_freed_memory()

    import jax
    import torch

    from grover_jax.configuration import load_config
    from grover_jax.programs.pretrain import peak_flops_per_device
    from grover_jax.train import mlm_head_positions, model_flops_per_token

    overrides = PRESETS[args.preset] + [
        f"data.seq_len={args.seq_len}", f"model.max_position_embeddings={max(512, args.seq_len)}",
        f"train.batch_size={args.batch_size}", f"model.compute_dtype={args.dtype}", "train.warmup_steps=10",
        f"data.mask_rate={args.mask_rate}",
        "train.num_steps=1000", f"model.hidden_dropout={args.dropout}", f"model.attention_dropout={args.dropout}",
        "mesh.data=-1", "mesh.fsdp=1", *args.overrides,
    ]
    config = load_config("grover_base", overrides)
    batches, vocab_size = build_batches(args.seq_len, args.batch_size, 4, args.mask_rate)
    if args.rounds < 1 or args.steps % args.rounds:
        parser.error(f"--steps {args.steps} is not a whole number of --rounds {args.rounds}")
    rounds, steps_per_round = args.rounds, args.steps // args.rounds
    tokens = steps_per_round * args.batch_size * args.seq_len
    # Each side's own work: HF runs the MLM head at every position, this step at the
    # mlm_head_positions gathered ones (the loss is the same).
    head_positions = mlm_head_positions(config.train, config.data)
    jax_flops_per_token = model_flops_per_token(config.model, vocab_size, args.seq_len, head_positions)
    torch_flops_per_token = model_flops_per_token(config.model, vocab_size, args.seq_len)

    torch.set_num_threads(os.cpu_count() or 1)
    run_jax = setup_jax(config, batches, vocab_size, args.warmup)
    torch_device = "cuda" if args.device == "gpu" else "cpu"
    run_torch = setup_torch(config, batches, vocab_size, args.warmup, torch_device,
                            bf16=args.dtype == "bfloat16")
    # One untimed alternation first: each side's first round after the other's start-up runs
    # ~30 % slow however long its own warm-up (the shared heap and thread pools settle). The
    # order flips every round, so whatever one side leaves behind falls on both alike.
    round_seconds = []
    for i in range(rounds + 1):
        if i % 2:
            torch_round = run_torch(steps_per_round)
            jax_round = run_jax(steps_per_round)
        else:
            jax_round = run_jax(steps_per_round)
            torch_round = run_torch(steps_per_round)
        round_seconds.append((jax_round, torch_round))
    round_seconds = round_seconds[1:]
    jax_seconds = float(np.median([j for j, _ in round_seconds]))
    torch_seconds = float(np.median([t for _, t in round_seconds]))
    round_ratios = [t / j for j, t in round_seconds]
    if args.device == "cpu":
        peak, peak_source = measured_matmul_flops(), "measured f32 matmul"
    else:
        peak, peak_source = peak_flops_per_device(config), "data-sheet bf16 peak"

    m = config.model
    print(f"\nmodel: {m.num_layers} layers x {m.hidden_size} wide, {m.num_heads} heads, FFN {m.intermediate_size}, "
          f"vocab {vocab_size}; batch {args.batch_size} x {args.seq_len} tokens; {args.dtype}; dropout {args.dropout}; "
          f"{rounds} alternating rounds of {steps_per_round} timed steps per side after {args.warmup} "
          f"warm-up steps and one untimed round (median round); device {jax.devices()[0].device_kind}; "
          f"host malloc: {'freed memory kept (both sides)' if heap_reuse else 'glibc default'}")
    where = f"{head_positions} gathered positions per row" if head_positions else f"all {args.seq_len} positions"
    print(f"MLM head: grover-jax on {where}, HF on all {args.seq_len}")
    print(f"{'program':<34}{'s/step':>10}{'tokens/s':>12}{'MFU':>8}")
    sides = (("grover-jax (jit, Flax)", jax_seconds, jax_flops_per_token),
             ("HF BertForMaskedLM (PyTorch)", torch_seconds, torch_flops_per_token))
    for name, seconds, flops_per_token in sides:
        rate = tokens / seconds
        mfu = f"{rate * flops_per_token / peak:.1%}" if peak else "n/a"
        print(f"{name:<34}{seconds / steps_per_round:>10.4f}{rate:>12,.0f}{mfu:>8}")
    print(f"ratio grover-jax / PyTorch tokens/s: {torch_seconds / jax_seconds:.2f}x  "
          f"(MFU against {peak_source}: {peak / 1e9:,.0f} GFLOP/s; MFLOP/token: grover-jax "
          f"{jax_flops_per_token / 1e6:.1f}, HF {torch_flops_per_token / 1e6:.1f})")
    print(f"ratio per round (median {np.median(round_ratios):.2f}x): "
          + ", ".join(f"{r:.2f}x" for r in round_ratios))


if __name__ == "__main__":
    main()
