"""Benchmark BPE learning in GROVER cycles against HF `tokenizers`' BpeTrainer; the store encode.

On one real chromosome (default ../shared/data/genome/hg19_chr20.fa.gz, relative to the repo root):
  1. ours: `learn_bpe` for --cycles cycles over all contigs, in a fresh subprocess; a tiny warm-up
     call first (timed separately) so numba's JIT / cache load is not counted; FASTA reading is not.
     Then the 2-byte learner (`learn_bpe_compact`, `grover bpe`'s engine) on 1 and 2 threads
     (--compact-threads), each in its own subprocess, its merges checked against `learn_bpe`'s.
     Where the CPU compacts vectors (AVX-512 VBMI2, `tokenizer/vector_ops.py`), the 2-byte learner on 2
     threads once more with the memmove pass that other CPUs take (and the replay, in 4).
  2. HF: `BpeTrainer` on the same contigs cut into 1 kb chunks (each chunk one "word", its best
     case), in a fresh subprocess, on as many threads as it likes (RAYON_NUM_THREADS is reported).
  Each worker reports wall and CPU seconds, its RSS once its input is loaded, the peak RSS of the
  learning alone (VmHWM reset after loading) and the process's overall peak (loading included).
  3. A table of time, memory and merges, the HF/ours speed ratio, and how far the two merge lists
     agree; as a control, our learner on HF's exact input (the 1 kb chunks) should match HF exactly.
  4. The store's encode rate (`build_store` of the whole input with the learned vocabulary, three
     builds: the first in a process also pays for fresh memory pages; encoding and writing apart),
     the windowed replay alone (three runs; and three with the memmove pass), and the Rust
     tokenizer's rate on one ~5 Mb stretch, checking that both give identical ids there.

Run from the repo root:
    python scripts/bench_bpe.py            # whole chromosome, 600 cycles (about two minutes)
    python scripts/bench_bpe.py --quick    # first 5 Mb, 200 cycles
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from grover_jax.genome import Genome, read_genome
from grover_jax.store.build import build_store
from grover_jax.tokenizer import bpe_compact, bpe_replay
from grover_jax.tokenizer.bpe import learn_bpe
from grover_jax.tokenizer.bpe_compact import chromosome_tokens, learn_bpe_compact
from grover_jax.tokenizer.vector_ops import VECTOR_COMPRESS
from grover_jax.tokenizer.vocabulary import load_tokenizer, save_vocabulary

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FASTA = REPO.parent / "shared/data/genome/hg19_chr20.fa.gz"
QUICK_BASES, QUICK_CYCLES = 5_000_000, 200
CHUNK = 1_000  # HF trainer's "word" length
COMPARE_BASES = 5_000_000  # the stretch encoded by both tokenizers
T = TypeVar("T")


def load_genome(fasta: Path, limit: int) -> Genome:
    """The chromosome's contigs, clipped to its first `limit` bases when `limit` > 0."""
    genome = read_genome(fasta, keep_soft_mask=False)
    if limit:
        genome.contigs = [dataclasses.replace(c, end=min(c.end, limit))
                          for c in genome.contigs if c.start < limit]
    return genome


def memory_mb(field: str) -> float:
    """A /proc/self/status field: VmRSS (resident now) or VmHWM (peak since the last reset)."""
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":")) / 1024


def loaded_memory() -> dict:
    """RSS with the inputs loaded and the peak so far; then resets the peak (VmHWM, Linux >= 4.0;
    ru_maxrss follows it) so that from here on it measures only the learning."""
    memory = {"rss_loaded": memory_mb("VmRSS"), "peak_loading": memory_mb("VmHWM")}
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    return memory


def timed(function: Callable[[], T]) -> tuple[T, dict]:
    """Call `function` (the learning, inputs already loaded): its result, its time and memory."""
    memory = loaded_memory()
    started, cpu = time.perf_counter(), time.process_time()
    result = function()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    learning = memory_mb("VmHWM")
    return result, {**memory, "seconds": seconds, "cpu_seconds": cpu, "peak_learning": learning,
                    "peak_rss": max(learning, memory["peak_loading"])}


def run_ours(genome: Genome, cycles: int, vocab_dir: Path) -> dict:
    codes = [genome.contig_codes(c) for c in genome.contigs]
    started = time.perf_counter()
    learn_bpe([codes[0][:10_000]], 5, progress=False)
    warmup = time.perf_counter() - started
    result, report = timed(lambda: learn_bpe(codes, cycles, progress=False))
    save_vocabulary(result, vocab_dir)
    return {**report, "warmup": warmup, "merges": [[m.left, m.right] for m in result.merges],
            "counts": [m.count for m in result.merges],
            "learned_tokens": len(result.tokens), "mean_token_length": result.mean_token_length}


def run_compact(genome: Genome, cycles: int, threads: int) -> dict:
    """The 2-byte learner on the chromosome as one uint16 array (contigs separated)."""
    codes = [genome.contig_codes(c) for c in genome.contigs]

    def learn(tokens: list, cycles: int):
        return learn_bpe_compact(tokens, cycles, progress=False, workers=threads)

    started = time.perf_counter()
    learn([chromosome_tokens([codes[0][:20_000]])], 60)  # long enough to compile the sparse pass too
    warmup = time.perf_counter() - started
    tokens = [chromosome_tokens(codes)]
    del codes
    result, report = timed(lambda: learn(tokens, cycles))
    return {**report, "warmup": warmup, "merges": [[m.left, m.right] for m in result.merges],
            "counts": [m.count for m in result.merges]}


def run_hf(genome: Genome, cycles: int) -> dict:
    from tokenizers import Tokenizer, models, trainers

    chunks = []
    for contig in genome.contigs:
        sequence = genome.bases(contig.chromosome, contig.start, contig.end)
        chunks += [sequence[i : i + CHUNK] for i in range(0, len(sequence), CHUNK)]
    tokenizer = Tokenizer(models.BPE())  # no pre-tokenizer: each chunk is one word
    trainer = trainers.BpeTrainer(vocab_size=4 + cycles, initial_alphabet=list("ACGT"),
                                  show_progress=False, limit_alphabet=4, special_tokens=[])
    _, report = timed(lambda: tokenizer.train_from_iterator(chunks, trainer, length=len(chunks)))
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    return {**report, "n_chunks": len(chunks),
            "merges": [m.split(" ") if isinstance(m, str) else list(m) for m in merges]}


def use_pass(vector_compress: bool) -> None:
    """Vector compaction (where the CPU has it), or the pass CPUs without it take: memmove, and dense
    passes for common pairs."""
    bpe_compact.VECTOR_COMPRESS = bpe_replay.VECTOR_COMPRESS = vector_compress
    bpe_compact.SPARSE_SPACING = 0 if vector_compress else 64


def report_file(work: Path, name: str, threads: int | None, memmove: bool) -> Path:
    return work / f"{name}{'' if threads is None else f'-{threads}'}{'-memmove' * memmove}.json"


def spawn_worker(name: str, args: argparse.Namespace, work: Path, memmove: bool = False) -> dict:
    command = [sys.executable, __file__, "--fasta", str(args.fasta), "--cycles", str(args.cycles),
               "--limit", str(args.limit), "--worker", name, "--work", str(work)] + ["--memmove"] * memmove
    if args.threads_child is not None:
        command += ["--threads-child", str(args.threads_child)]
    subprocess.run(command, check=True)
    return json.loads(report_file(work, name, args.threads_child, memmove).read_text())


def worker_main(args: argparse.Namespace) -> None:
    if args.memmove:
        use_pass(vector_compress=False)
    genome = load_genome(args.fasta, args.limit)
    work = Path(args.work)
    if args.worker == "ours":
        report = run_ours(genome, args.cycles, work / "vocab")
    elif args.worker == "compact":
        report = run_compact(genome, args.cycles, args.threads_child)
    else:
        report = run_hf(genome, args.cycles)
    report_file(work, args.worker, args.threads_child, args.memmove).write_text(json.dumps(report))


def agreement(ours: list[list[str]], hf: list[list[str]]) -> str:
    """Same merge at the same rank, same merges as a set, and the first differing rank."""
    n = min(len(ours), len(hf))
    ours_n, hf_n = [tuple(m) for m in ours[:n]], [tuple(m) for m in hf[:n]]
    same_rank = sum(a == b for a, b in zip(ours_n, hf_n))
    first = next((i + 1 for i, (a, b) in enumerate(zip(ours_n, hf_n)) if a != b), None)
    return (f"first {n} merges: same merge at same rank {same_rank}/{n}, same set "
            f"{len(set(ours_n) & set(hf_n))}/{n}, first difference at rank {first or 'none'}")


def learn_on_chunks(genome: Genome, cycles: int) -> list[list[str]]:
    """Control: our learner on exactly HF's input (1 kb chunks as separate contigs), not timed."""
    codes = [genome.contig_codes(c) for c in genome.contigs]
    chunks = [c[i : i + CHUNK] for c in codes for i in range(0, len(c), CHUNK)]
    return [[m.left, m.right] for m in learn_bpe(chunks, cycles, progress=False).merges]


def print_learning(ours: dict, lean: dict[str, dict], hf: dict, genome: Genome, cycles: int,
                   vocab_dir: Path) -> None:
    print(f"\n{'contender':<34} {'seconds':>8} {'CPU s':>6} {'RSS loaded MB':>14} "
          f"{'peak learning MB':>17} {'process peak MB':>16} {'merges':>7}")
    rows = [("ours: learn_bpe (1 thread)", ours), *lean.items(),
            (f"HF BpeTrainer ({hf['n_chunks']:,} x 1 kb words)", hf)]
    for name, r in rows:
        same = "" if r is ours or r is hf else (
            "  same merges and counts as learn_bpe" if (r["merges"], r["counts"]) == (ours["merges"], ours["counts"])
            else "  DIFFERENT merges from learn_bpe")
        print(f"{name:<34} {r['seconds']:>8.1f} {r['cpu_seconds']:>6.1f} {r['rss_loaded']:>14.0f} "
              f"{r['peak_learning']:>17.0f} {r['peak_rss']:>16.0f} {len(r['merges']):>7}{same}")
    for name, r in rows[:-1]:
        print(f"speed ratio HF/{name}: {hf['seconds'] / r['seconds']:.1f}x wall, "
              f"{hf['cpu_seconds'] / r['cpu_seconds']:.1f}x CPU (numba warm-up, not counted: {r['warmup']:.1f} s)")
    print(f"ours (whole contigs) vs HF, {agreement(ours['merges'], hf['merges'])}")
    control = learn_on_chunks(genome, cycles)
    print(f"ours on HF's 1 kb chunks vs HF, {agreement(control, hf['merges'])}")
    vocab_size = json.loads((vocab_dir / "bpe_summary.json").read_text())["vocab_size"]
    print(f"mean token length after {len(ours['merges'])} cycles: "
          f"{ours['mean_token_length']:.3f} nt; vocabulary: {ours['learned_tokens']} tokens "
          f"(bases + merged strings), {vocab_size} with the special tokens\n")


def replay_rates(tokenizer, codes: list[np.ndarray], mb: float) -> str:
    """Three timed replays of the whole input, as Mb/s."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        tokenizer.encode_contigs(codes)
        times.append(time.perf_counter() - started)
    return ", ".join(f"{mb / t:.1f}" for t in times) + " Mb/s"


def print_store_rates(genome: Genome, vocab_dir: Path, work: Path) -> None:
    tokenizer = load_tokenizer(vocab_dir)
    # numba warm-up for the replay alone below (build_store compiles its own entry before timing it)
    tokenizer.encode_contigs([genome.contig_codes(genome.contigs[0])[:10_000]])
    for build in range(3):  # the first build in a process also pays for fresh memory pages
        store = build_store(genome, tokenizer, work / "store", progress=False, overwrite=build > 0)
        index = json.loads((store / "index.json").read_text())
        mb, seconds, write = index["n_bases"] / 1e6, index["encode_seconds"], index["write_seconds"]
        print(f"store encode {build + 1} (windowed replay, whole input): {mb:.1f} Mb in {seconds:.2f} s = "
              f"{mb / seconds:.2f} Mb/s ({index['n_tokens']:,} tokens); writing the arrays another {write:.2f} s: "
              f"{mb / (seconds + write):.2f} Mb/s in all")
    codes = [genome.contig_codes(c) for c in genome.contigs]
    print("windowed replay alone, whole input, 3 runs: " + replay_rates(tokenizer, codes, mb))
    if VECTOR_COMPRESS:
        use_pass(vector_compress=False)
        tokenizer.encode_contigs([codes[0][:10_000]])  # its own compile
        print("the same with the memmove pass (CPUs without vector compaction): " + replay_rates(tokenizer, codes, mb))
        use_pass(vector_compress=True)
    longest = max(genome.contigs, key=lambda c: c.length)
    stretch = dataclasses.replace(longest, end=min(longest.end, longest.start + COMPARE_BASES))
    sequence = genome.bases(stretch.chromosome, stretch.start, stretch.end)
    started = time.perf_counter()
    ours_ids = tokenizer.encode_contigs([genome.contig_codes(stretch)])[0][0]
    ours_seconds = time.perf_counter() - started
    started = time.perf_counter()
    hf_ids = tokenizer.hf.encode(sequence, add_special_tokens=False).ids
    hf_seconds = time.perf_counter() - started
    mb = stretch.length / 1e6
    print(f"one stretch {stretch.chromosome}:{stretch.start + 1:,}-{stretch.end:,} ({mb:.1f} Mb): "
          f"compiled replay {mb / ours_seconds:.2f} Mb/s, "
          f"HF Rust encode {mb / hf_seconds:.2f} Mb/s; "
          f"identical ids: {ours_ids.tolist() == hf_ids} ({len(hf_ids):,} tokens)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fasta", type=Path, default=DEFAULT_FASTA)
    parser.add_argument("--cycles", type=int, default=600)
    parser.add_argument("--limit", type=int, default=0,
                        help="use only the first LIMIT bases (0: all)")
    parser.add_argument("--quick", action="store_true",
                        help=f"first {QUICK_BASES:,} bases, {QUICK_CYCLES} cycles")
    parser.add_argument("--compact-threads", type=int, nargs="*", default=[1, 2],
                        help="thread counts to run the 2-byte learner on (none: skip it)")
    parser.add_argument("--worker", choices=("ours", "compact", "hf"), help=argparse.SUPPRESS)
    parser.add_argument("--threads-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--memmove", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    if not args.fasta.exists():
        print(f"{args.fasta} not found: this benchmark needs the shared genome data in "
              "../shared/data (or pass --fasta); nothing measured.")
        return
    if args.quick:
        args.limit, args.cycles = QUICK_BASES, QUICK_CYCLES
    print(f"{args.fasta}  cycles={args.cycles}  limit={args.limit or 'whole chromosome'}  "
          f"cpus={os.cpu_count()}  RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'unset')}"
          f"  load avg before={os.getloadavg()[0]:.2f}  vector compaction (AVX-512 VBMI2): "
          f"{'yes' if VECTOR_COMPRESS else 'no'}")
    with tempfile.TemporaryDirectory(prefix="bench_bpe_") as temporary:
        work = Path(temporary)
        ours = spawn_worker("ours", args, work)
        lean = {}
        for threads in args.compact_threads:
            args.threads_child = threads
            lean[f"compact ({threads} thread{'s' * (threads > 1)})"] = spawn_worker("compact", args, work)
        if VECTOR_COMPRESS and 2 in args.compact_threads:
            args.threads_child = 2
            lean["compact (2 threads, memmove pass)"] = spawn_worker("compact", args, work, memmove=True)
        args.threads_child = None
        hf = spawn_worker("hf", args, work)
        genome = load_genome(args.fasta, args.limit)
        print_learning(ours, lean, hf, genome, args.cycles, work / "vocab")
        print_store_rates(genome, work / "vocab", work)
    print(f"load avg after={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
