"""Genome scale: time and peak memory of BPE learning and store building as the genome grows, and the
pretraining input pipeline's windows/s from a sharded vs a single store (issue 8).

Inputs (real hg19, ../shared/data/genome): the first 30 Mb of chr20, the whole of chr20 (59.5 Mb of
A/C/G/T), and chr20 + the 68 alt/unplaced contigs (95.5 Mb of A/C/G/T, two files). For each input, in a
fresh subprocess each:
  1. `learn_bpe` (linked-list learner, the default under 300 Mb) and `learn_bpe_compact` (whole-genome
     learner), 600 GROVER cycles, after a tiny warm-up so numba's cache load is not timed; FASTA reading
     is timed apart. Reported: wall and CPU seconds, RSS once loaded, the learning's peak (VmHWM reset
     after loading) and the process peak (ru_maxrss, loading included); the two merge lists must agree.
  2. On chr20 + extra: the store built single (`build_store`) and sharded (`build_sharded_store`, one
     shard per file) with 1 and 2 worker processes; peak = max over the process and its children.
  3. MlmBatches (GROVER-base shapes: 512 tokens, batch 64) over the train split of both stores.
Then a least-squares fit peak = a + b * bases per learner and its value at 3.1 Gb.

    python scripts/bench_genome_scale.py           # everything (about 10 minutes on 2 cores)
    python scripts/bench_genome_scale.py --quick   # 5 / 10 Mb of chr20, 100 cycles
    python scripts/bench_genome_scale.py --bpe-only   # the BPE rows and their extrapolation alone
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GENOME = REPO.parent / "shared/data/genome"
CHR20 = GENOME / "hg19_chr20.fa.gz"
EXTRA = GENOME / "hg19_extra_contigs.fa.gz"
HG19_BASES = 3.1e9
CHR20_BP = 63_025_520  # the largest file of every input here
CHR1_BP = 249_250_621  # hg19's largest chromosome


def status_bytes(field: str) -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":")) * 1024


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # VmHWM := VmRSS (Linux >= 4.0)


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def clip(arrays: list[np.ndarray], limit: int, separator: int | None = None) -> list[np.ndarray]:
    """The first `limit` bases (0: all) of a list of base arrays, or of the compact learner's token
    arrays, where `separator` entries between contigs are not bases (no per-base temporaries: the
    learner's memory is what is measured)."""
    if not limit:
        return arrays
    kept, total = [], 0
    for array in arrays:
        if total >= limit:
            break
        cut = min(limit - total, len(array))
        for position in np.flatnonzero(array == separator) if separator is not None else ():
            if position >= cut:
                break
            cut = min(cut + 1, len(array))  # a separator before the cut is not a base
        kept.append(array[:cut])
        total += cut - (int(np.count_nonzero(kept[-1] == separator)) if separator is not None else 0)
    return kept


def worker_bpe(args: argparse.Namespace) -> dict:
    from grover_jax.genome import read_genome
    from grover_jax.tokenizer import learn_bpe, save_vocabulary
    from grover_jax.tokenizer.bpe_compact import (
        chromosome_tokens,
        learn_bpe_compact,
        read_learning_chromosomes,
    )

    learn_bpe([np.zeros(100, np.uint8)], 2, progress=False)  # warm-up: load numba's caches
    # Real-looking bases, long enough that the sparse pass compiles here too (numba cannot cache it).
    warm_up = np.random.default_rng(0).integers(0, 4, 20_000).astype(np.uint8)
    learn_bpe_compact([chromosome_tokens([warm_up])], 60, progress=False)
    started = time.perf_counter()
    if args.engine == "linked":
        genome = read_genome(args.inputs, keep_soft_mask=False)
        contigs = clip([genome.contig_codes(c) for c in genome.contigs], args.limit)
        n_bases = sum(len(c) for c in contigs)
    else:
        chromosomes, _ = read_learning_chromosomes(args.inputs, "", "all")
        chromosomes = clip(chromosomes, args.limit, separator=0xFFFF)
        n_bases = int(sum(np.count_nonzero(c != 0xFFFF) for c in chromosomes))
    read_seconds = time.perf_counter() - started
    loaded, loading_peak = status_bytes("VmRSS"), status_bytes("VmHWM")
    reset_peak()
    cpu, started = cpu_seconds(), time.perf_counter()
    if args.engine == "linked":
        result = learn_bpe(contigs, args.cycles, progress=False)
    else:
        result = learn_bpe_compact(chromosomes, args.cycles, progress=False)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    learning_peak = status_bytes("VmHWM")
    if args.vocab:
        save_vocabulary(result, args.vocab)
    return {"engine": args.engine, "bases": n_bases, "read_s": read_seconds, "learn_s": seconds, "learn_cpu_s": cpu,
            "rss_loaded": loaded, "loading_peak": loading_peak, "learning_peak": learning_peak,
            "process_peak": max(loading_peak, learning_peak),  # ru_maxrss is reset with VmHWM
            "merges": [[m.left, m.right, m.count] for m in result.merges]}


def worker_store(args: argparse.Namespace) -> dict:
    from grover_jax.genome import read_genome
    from grover_jax.store import build_sharded_store, build_store
    from grover_jax.tokenizer import load_tokenizer

    cpu, started = cpu_seconds(), time.perf_counter()
    if args.sharded:
        build_sharded_store(args.inputs, args.vocab, args.out, workers=args.workers, progress=False)
    else:
        genome = read_genome(args.inputs, keep_soft_mask=False)
        build_store(genome, load_tokenizer(args.vocab), args.out, progress=False)
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"sharded": args.sharded, "workers": args.workers, "seconds": seconds,
            "cpu_s": cpu_seconds() - cpu + children.ru_utime + children.ru_stime,
            "process_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "child_peak": children.ru_maxrss * 1024}


def worker_pipeline(args: argparse.Namespace) -> dict:
    from grover_jax.data.mlm import MaskingConfig, MlmBatches
    from grover_jax.store import open_store

    rates = {}
    for name in ("single", "sharded", "single", "sharded"):  # twice, alternating: the machine is shared
        store = open_store(Path(args.out) / name)
        batches = MlmBatches(store, "train", MaskingConfig(seq_len=512), global_batch_size=64, seed=0)
        cpu, started = cpu_seconds(), time.perf_counter()
        for step in range(args.steps):
            batches.batch(step)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        best = rates.get(name, {"windows_per_s": 0.0})
        rate = {"windows_per_s": args.steps * 64 / seconds, "windows_per_cpu_s": args.steps * 64 / cpu,
                "shards_opened": len(getattr(store, "open_shards", [])), "n_windows": batches.n_windows}
        rates[name] = rate if rate["windows_per_s"] > best["windows_per_s"] else best
    return rates


def spawn(kind: str, **options) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        report = Path(handle.name)
    command = [sys.executable, __file__, "--worker", kind, "--report", str(report)]
    for key, value in options.items():
        if isinstance(value, list):
            command += [f"--{key}", *map(str, value)]
        elif value is True:
            command.append(f"--{key}")
        elif value not in (None, False):
            command += [f"--{key}", str(value)]
    subprocess.run(command, check=True)
    result = json.loads(report.read_text())
    report.unlink()
    return result


def fit(points: list[tuple[int, int]]) -> tuple[float, float]:
    """Least squares peak = a + b * bases."""
    x = np.array([p[0] for p in points], float)
    y = np.array([p[1] for p in points], float)
    b, a = np.polyfit(x, y, 1)
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cycles", type=int, default=600)
    parser.add_argument("--worker", choices=["bpe", "store", "pipeline"])
    parser.add_argument("--report")
    parser.add_argument("--engine")
    parser.add_argument("--inputs", nargs="+")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--vocab")
    parser.add_argument("--out")
    parser.add_argument("--sharded", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--bpe-only", action="store_true", help="stop after the BPE rows and their extrapolation")
    args = parser.parse_args()
    if args.worker:
        result = {"bpe": worker_bpe, "store": worker_store, "pipeline": worker_pipeline}[args.worker](args)
        Path(args.report).write_text(json.dumps(result))
        return

    cycles = 100 if args.quick else args.cycles
    inputs = [("chr20 first 5 Mb", [CHR20], 5_000_000), ("chr20 first 10 Mb", [CHR20], 10_000_000)] if args.quick \
        else [("chr20 first 30 Mb", [CHR20], 30_000_000), ("chr20", [CHR20], 0), ("chr20 + extra", [CHR20, EXTRA], 0)]
    work = Path(tempfile.mkdtemp(prefix="bench_genome_scale_"))
    print(f"{time.strftime('%a %b %d %H:%M UTC %Y', time.gmtime())}  cpus={os.cpu_count()}  "
          f"load avg before={os.getloadavg()[0]:.2f}  cycles={cycles}")
    mb = 1 / 2**20
    print(f"\n{'input':<20} {'engine':<8} {'Mb':>6} {'read s':>7} {'learn s':>8} {'CPU s':>7} {'loaded MB':>10} "
          f"{'learn peak MB':>14} {'process peak MB':>16} {'B/base':>7}  merges")
    runs = {"linked": [], "compact": []}
    for label, paths, limit in inputs:
        reports = {}
        for engine in ("linked", "compact"):
            vocab = str(work / "vocab") if (label, engine) == (inputs[-1][0], "compact") else None
            report = spawn("bpe", engine=engine, inputs=paths, limit=limit, cycles=cycles, vocab=vocab)
            reports[engine] = report
            runs[engine].append(report)
            same = "" if engine == "linked" else (
                "identical to linked" if report["merges"] == reports["linked"]["merges"] else "DIFFER from linked")
            print(f"{label:<20} {engine:<8} {report['bases'] / 1e6:6.1f} {report['read_s']:7.1f} "
                  f"{report['learn_s']:8.1f} {report['learn_cpu_s']:7.1f} {report['rss_loaded'] * mb:10.0f} "
                  f"{report['learning_peak'] * mb:14.0f} {report['process_peak'] * mb:16.0f} "
                  f"{report['process_peak'] / report['bases']:7.1f}  {len(report['merges'])} {same}")

    print("\nextrapolation to 3.1 Gb (hg19), fits over the inputs above (G: bases learned on; L: bp of the"
          " largest FASTA file, chr1 = 249.25 Mb):")
    for engine, reports in runs.items():
        a, b = fit([(r["bases"], r["learning_peak"]) for r in reports])
        largest = reports[-1]
        wall, cpu = largest["learn_s"] / largest["bases"], largest["learn_cpu_s"] / largest["bases"]
        if engine == "linked":
            # the whole genome is read first, then learned on: the learning peak is the process peak
            peak, formula = a + b * HG19_BASES, f"{a * mb:.0f} MB + {b:.2f} B x G"
        else:
            # one file at a time: worst case, the largest file is read last, on top of all other arrays
            read = max((r["loading_peak"] - r["rss_loaded"]) / CHR20_BP for r in reports)
            peak = a + b * HG19_BASES + read * CHR1_BP
            formula = f"{a * mb:.0f} MB + {b:.2f} B x G + {read:.2f} B x L"
        print(f"  {engine:<8} peak = {formula} -> {peak / 2**30:5.1f} GiB; time {wall * 1e6:.2f} wall s/Mb, "
              f"{cpu * 1e6:.2f} CPU s/Mb -> {wall * HG19_BASES / 3600:.2f} h wall, {cpu * HG19_BASES / 3600:.2f} h CPU")
    if args.bpe_only:
        return

    label, paths, _ = inputs[-1]
    print(f"\nstore of {label} with its 600-cycle vocabulary:")
    print(f"{'layout':<24} {'seconds':>8} {'CPU s':>7} {'Mb/s':>6} {'peak MB (max of processes)':>27}")
    bases = runs["compact"][-1]["bases"]
    for sharded, workers in ((False, 1), (True, 1), (True, 2)):
        name = "sharded" if sharded else "single"
        shutil.rmtree(work / name, ignore_errors=True)
        report = spawn("store", inputs=paths, vocab=str(work / "vocab" / "tokenizer.json"), out=str(work / name),
                       sharded=sharded, workers=workers)
        peak = max(report["process_peak"], report["child_peak"])
        layout = f"sharded, {workers} worker(s)" if sharded else "single"
        print(f"{layout:<24} {report['seconds']:8.1f} {report['cpu_s']:7.1f} "
              f"{bases / report['seconds'] / 1e6:6.1f} {peak * mb:27.0f}")
    rebuilt = spawn("store", inputs=paths, vocab=str(work / "vocab" / "tokenizer.json"), out=str(work / "sharded"),
                    sharded=True, workers=2)
    print(f"{'sharded, re-run (valid)':<24} {rebuilt['seconds']:8.1f} {rebuilt['cpu_s']:7.1f}")

    rates = spawn("pipeline", out=str(work), steps=10 if args.quick else 30)
    print("\nMlmBatches, train split, seq_len 512, batch 64 (best of 2 alternating runs):")
    for name, rate in rates.items():
        print(f"  {name:<8} {rate['windows_per_s']:8.0f} windows/s  {rate['windows_per_cpu_s']:8.0f} windows/CPU-s  "
              f"({rate['n_windows']:,} windows; shards opened: {rate['shards_opened']})")
    print(f"load avg after={os.getloadavg()[0]:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
