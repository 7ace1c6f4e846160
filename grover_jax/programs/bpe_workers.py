"""`grover bpe --workers N`: the vocabulary's exact cycles with the genome split over N processes.

Engine: jax.distributed with gloo CPU collectives. JAX is already a dependency (so no extra to
install and the single-process learners are untouched), its coordinator starts the processes' rendez-
vous from one host:port on one machine or many, and `grover pretrain` already runs on it
(parallel.initialize_distributed). A cycle's exchange is one all-gather of 2V + 1 int64 per worker
(~10 KB at 600 cycles): measured 2.3 ms of CPU per all-gather between two local processes (25 ms of
wall on cores busy with another job, which is waiting for a core, not work). Ray or Dask would bring a
scheduler and a new dependency for what is, here, one fixed-size sum per cycle.

Measured as scripts/bench_bpe_workers.py does (600 cycles, merges identical; 2 cores already loaded by
another job, so wall times are not speeds): the bundled 3.95 Mb, 1 process 1.6 CPU-s against 11.1 for
2 workers (JAX start-up and the reading twice dominate at this size); hg19 chr20 (59.5 Mb), 20.3 CPU-s
against 35.2. The workers buy memory and passes split over hosts, not CPU on one small machine.

Each worker parses every FASTA file (so it makes the same checks and the same contig assignment,
`ContigShares`) but keeps only its share as 2-byte tokens: the learning state and each cycle's
passes are split, the reading is not. Worker 0 writes the vocabulary. On one machine
(`worker_rank=None`) this process launches the N workers on a free localhost port and waits; across
hosts every host runs its rank itself with the same coordinator host:port (docs/TRAINING.md).
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grover_jax
from grover_jax.errors import GroverError


class BpeWorkersError(GroverError):
    """A `--workers` setting no run can use, or a worker that failed."""


def check_workers(workers: int, worker_rank: int | None, coordinator: str | None, engine: str) -> None:
    if workers < 1:
        raise BpeWorkersError(f"--workers {workers}: must be >= 1")
    if engine not in ("auto", "compact") and (workers > 1 or worker_rank is not None):
        raise BpeWorkersError(f"--engine {engine} runs in one process; workers learn with the compact engine")
    if worker_rank is None:
        if coordinator is not None:
            raise BpeWorkersError("--coordinator needs --worker-rank (this host's rank, 0..N-1)")
        return
    if not 0 <= worker_rank < workers:
        raise BpeWorkersError(f"--worker-rank {worker_rank}: must be in 0..{workers - 1} for --workers {workers}")
    if coordinator is None or ":" not in coordinator:
        raise BpeWorkersError("--worker-rank needs --coordinator HOST:PORT (worker 0's host, the same on every host)")


def learn_on_workers(
    paths: list[str], split_spec: str, out_dir: str | Path, cycles: int, learn_on: str, max_token_length: int,
    progress: bool, workers: int, worker_rank: int | None = None, coordinator: str | None = None,
    threads: int | None = None,
) -> Path:
    """Learn the vocabulary on `workers` processes; returns tokenizer.json's path (written by worker 0).
    `worker_rank` None: launch all of them here on localhost; else be that rank of a run whose
    worker 0 listens at `coordinator`."""
    check_workers(workers, worker_rank, coordinator, "compact")
    out_dir = Path(out_dir)
    if worker_rank is not None:
        work(paths, split_spec, str(out_dir), cycles, learn_on, max_token_length, progress, workers, worker_rank,
             coordinator, threads)
        return out_dir / "tokenizer.json"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        coordinator = f"127.0.0.1:{probe.getsockname()[1]}"
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    with tempfile.TemporaryDirectory(prefix="grover-bpe-workers-") as scratch, contextlib.ExitStack() as logs:
        launched = []
        for rank in range(workers):
            job = {"paths": paths, "split_spec": split_spec, "out_dir": str(out_dir), "cycles": cycles,
                   "learn_on": learn_on, "max_token_length": max_token_length, "progress": progress and rank == 0,
                   "workers": workers, "worker_rank": rank, "coordinator": coordinator, "threads": threads}
            # Worker 0 shows its progress on this terminal; the others' output is kept for a failure.
            log = None if rank == 0 else logs.enter_context(open(Path(scratch) / f"log{rank}.txt", "w"))
            command = [sys.executable, "-m", "grover_jax.programs.bpe_workers", json.dumps(job),
                       str(Path(scratch) / f"error{rank}.txt")]
            launched.append(subprocess.Popen(command, stdout=log, stderr=log, env=_child_environment()))
        try:
            _wait(launched, Path(scratch))
        finally:
            for process in launched:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    return out_dir / "tokenizer.json"


def _child_environment() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(grover_jax.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _wait(launched: list[subprocess.Popen], scratch: Path) -> None:
    """Until every worker has exited. The first failure (an error file, or a worker gone with a
    non-zero code) is raised as one line; the caller then stops the others, which would otherwise
    wait forever in the next cycle's sum."""
    while True:
        codes = [process.poll() for process in launched]
        reported = [rank for rank in range(len(launched)) if (scratch / f"error{rank}.txt").exists()]
        if reported or any(code not in (None, 0) for code in codes):
            time.sleep(1.0)  # the same bad input fails every worker: give worker 0 time to say it too
            reported = [rank for rank in range(len(launched)) if (scratch / f"error{rank}.txt").exists()]
            rank = reported[0] if reported else next(r for r, code in enumerate(codes) if code not in (None, 0))
            raise BpeWorkersError(f"BPE worker {rank} of {len(launched)}: {_failure(rank, launched[rank], scratch)}")
        if all(code == 0 for code in codes):
            return
        time.sleep(0.2)


def _failure(rank: int, process: subprocess.Popen, scratch: Path) -> str:
    error_file = scratch / f"error{rank}.txt"
    if error_file.exists():
        return (error_file.read_text().strip().splitlines() or ["(no message)"])[0]
    log = scratch / f"log{rank}.txt"
    lines = log.read_text().strip().splitlines() if log.exists() else []
    return lines[-1] if lines else f"exited with code {process.poll()}"


def work(
    paths: list[str], split_spec: str, out_dir: str, cycles: int, learn_on: str, max_token_length: int,
    progress: bool, workers: int, worker_rank: int, coordinator: str | None, threads: int | None,
) -> None:
    """One worker: join the run, read this rank's share, learn, and (worker 0) save the vocabulary."""
    import jax

    from grover_jax.parallel import initialize_distributed
    from grover_jax.parallel.collectives import sum_over_processes
    from grover_jax.tokenizer import save_vocabulary
    from grover_jax.tokenizer.bpe_compact import read_learning_chromosomes
    from grover_jax.tokenizer.bpe_distributed import ContigShares, learn_bpe_shared

    jax.config.update("jax_platforms", "cpu")  # BPE counts on the host; leave any accelerator alone
    joined = initialize_distributed(coordinator, workers, worker_rank) if workers > 1 else False
    started = time.perf_counter()
    chromosomes, sources = read_learning_chromosomes(paths, split_spec, learn_on,
                                                      keep_contigs=ContigShares(workers, worker_rank))
    read_seconds = time.perf_counter() - started
    result = learn_bpe_shared(chromosomes, cycles, sum_over_processes if joined else lambda x: x,
                              max_token_length, progress, threads)
    learn_seconds = time.perf_counter() - started - read_seconds
    if joined:  # only after a success: a shutdown waits for every worker
        jax.distributed.shutdown()
    if worker_rank != 0:
        return
    provenance = {
        "sources": sources, "split_spec": split_spec, "learn_on": learn_on, "cycles_requested": cycles,
        "engine": "compact", "workers": workers, "max_token_length": max_token_length,
        "read_seconds": round(read_seconds, 3), "learn_seconds": round(learn_seconds, 3),
    }
    path = save_vocabulary(result, out_dir, provenance)
    if progress:
        print(f"vocabulary: {len(result.tokens)} tokens after {len(result.merges)} cycles on "
              f"{result.n_bases:,} bp over {workers} workers, mean token {result.mean_token_length:.3f} nt "
              f"-> {path}")


def _main(job_json: str, error_file: str) -> None:
    """A launched worker: a failure's one line goes to `error_file`, where the launcher looks for it
    (a worker that fails may then hang in JAX's exit handshake with the others; the launcher ends it)."""
    try:
        work(**json.loads(job_json))
    except GroverError as error:
        Path(error_file).write_text(str(error))
        sys.exit(2)
    except Exception as error:
        Path(error_file).write_text(f"{type(error).__name__}: {error}")
        raise


if __name__ == "__main__":
    _main(*sys.argv[1:])
