"""Stages `grover bpe` and `grover store`: learn the vocabulary on a genome, tokenize the genome once."""

import json
import time
from pathlib import Path

from grover_jax import bundled
from grover_jax.configuration import ConfigError
from grover_jax.genome import (
    GenomeFormatError,
    check_split_chromosomes,
    parse_split_spec,
    read_genome,
    require_learnable_bases,
)
from grover_jax.genome.fasta import fasta_chromosomes
from grover_jax.genome.fetch import expand_fasta_paths
from grover_jax.genome.genome import BASES, NO_BASES
from grover_jax.programs.bpe_workers import check_workers, learn_on_workers
from grover_jax.store import build_sharded_store, build_store
from grover_jax.tokenizer import learn_bpe, load_tokenizer, save_vocabulary
from grover_jax.tokenizer.bpe_compact import (
    MAX_VOCABULARY,
    learn_bpe_compact,
    read_learning_chromosomes,
)


def resolve_genome(fasta: list[str] | None, split_spec: str | None) -> tuple[list[str], str]:
    """The FASTA files and split spec to use: the bundled real chr20 slice and its splits by default."""
    if not fasta:
        return [str(bundled.FASTA)], bundled.SPLIT_SPEC if split_spec is None else split_spec
    return expand_fasta_paths(fasta), split_spec or ""


def learn_vocabulary(
    fasta: list[str] | None, out_dir: str | Path, cycles: int = 600, split_spec: str | None = None,
    learn_on: str = "train", max_token_length: int = 0, progress: bool = True, engine: str = "auto",
    workers: int = 1, worker_rank: int | None = None, coordinator: str | None = None,
) -> Path:
    """Learn `cycles` GROVER cycles of BPE on the `learn_on` split ("train" keeps valid/test sequence
    unseen by the vocabulary too; "all" uses every contig) and save tokenizer.json in `out_dir`.
    `engine`: "compact" (2 bytes/base, reads one file at a time, on all cores: faster than "linked" on
    every input measured, BENCHMARKS.md), "linked" (the incremental learner, ~28 bytes/base, kept to
    cross-check), "auto" (compact, or linked past compact's 65,530 cycles); both give the same merges.
    `workers` > 1 splits the contigs over that many processes (the same merges, `bpe_workers`): all
    launched here, or with `worker_rank` and `coordinator` this host's one of a multi-host run."""
    check_workers(workers, worker_rank, coordinator, engine)
    fits_uint16 = len(BASES) + cycles < MAX_VOCABULARY
    if engine == "auto":
        engine = "compact" if fits_uint16 else "linked"
    if not fits_uint16 and (engine == "compact" or workers > 1 or worker_rank is not None):
        raise ConfigError(f"--cycles {cycles}: the compact engine (and its workers) holds at most "
                          f"{MAX_VOCABULARY - 1 - len(BASES):,} cycles in uint16 ids; use --engine linked")
    paths, split_spec = resolve_genome(fasta, split_spec)
    if workers > 1 or worker_rank is not None:
        return learn_on_workers(paths, split_spec, out_dir, cycles, learn_on, max_token_length, progress, workers,
                                worker_rank, coordinator)
    started = time.perf_counter()
    if engine == "compact":
        chromosomes, sources = read_learning_chromosomes(paths, split_spec, learn_on)
        read_seconds = time.perf_counter() - started
        result = learn_bpe_compact(chromosomes, cycles, max_token_length=max_token_length, progress=progress)
    else:
        genome = read_genome(paths, split_spec)
        sources = genome.sources
        check_split_chromosomes(parse_split_spec(split_spec), (r.chromosome for r in genome.records), paths)
        learned = genome.split_contigs(learn_on)
        require_learnable_bases(paths, split_spec, learn_on, sum(c.length for c in learned),
                                sum(c.length for c in genome.contigs))
        contigs = [genome.contig_codes(c) for c in learned]
        read_seconds = time.perf_counter() - started
        result = learn_bpe(contigs, cycles, max_token_length=max_token_length, progress=progress)
    provenance = {
        "sources": sources, "split_spec": split_spec, "learn_on": learn_on, "cycles_requested": cycles,
        "engine": engine,
        "max_token_length": max_token_length, "read_seconds": round(read_seconds, 3),
        "learn_seconds": round(time.perf_counter() - started - read_seconds, 3),
    }
    path = save_vocabulary(result, out_dir, provenance)
    if progress:
        print(f"vocabulary: {len(result.tokens)} tokens after {len(result.merges)} cycles on "
              f"{result.n_bases:,} bp, mean token {result.mean_token_length:.3f} nt -> {path}")
    return path


def vocabulary_provenance(out_dir: str | Path) -> dict:
    summary = Path(out_dir) / "bpe_summary.json"
    return json.loads(summary.read_text())["provenance"] if summary.exists() else {}


def build_token_store(
    fasta: list[str] | None, tokenizer_path: str | Path, out_dir: str | Path, split_spec: str | None = None,
    overwrite: bool = False, progress: bool = True, sharded: bool = False, workers: int = 1,
) -> Path:
    paths, split_spec = resolve_genome(fasta, split_spec)
    if sharded:
        # Each shard reads only its own file: the spec is checked against all of them first.
        chromosomes = [c for path in paths for c in fasta_chromosomes(path)]
        check_split_chromosomes(parse_split_spec(split_spec), chromosomes, paths)
        outcome = build_sharded_store(paths, tokenizer_path, out_dir, split_spec, workers=workers, progress=progress)
        if progress:
            index = json.loads((Path(out_dir) / "index.json").read_text())
            print(f"sharded token store: {index['n_tokens']:,} tokens in {len(index['shards'])} shards "
                  f"(built {len(outcome['built'])}, kept {len(outcome['kept'])} valid) -> {out_dir}")
        return Path(out_dir)
    genome = read_genome(paths, split_spec)
    check_split_chromosomes(parse_split_spec(split_spec), (r.chromosome for r in genome.records), paths)
    if not genome.contigs:
        raise GenomeFormatError(", ".join(paths), None, f"{NO_BASES}: nothing to tokenize")
    tokenizer = load_tokenizer(tokenizer_path)
    out = build_store(genome, tokenizer, out_dir, split_spec=split_spec, overwrite=overwrite, progress=progress)
    if progress:
        index = json.loads((out / "index.json").read_text())
        rate = index["n_bases"] / max(index["encode_seconds"], 1e-9) / 1e6
        splits = ", ".join(f"{k} {v['tokens']:,}" for k, v in sorted(index["splits"].items()))
        print(f"token store: {index['n_tokens']:,} tokens ({splits}) encoded at {rate:.1f} Mb/s "
              f"(and {index['compile_seconds']:.1f} s compiling the encoder) -> {out}")
    return out
