"""A sharded token store: one single store per FASTA file (per chromosome with `grover data fetch`'s
one-file-per-chromosome layout) under `shards/`, plus a top-level index that numbers all tokens globally.

    store/index.json      format grover-token-store-sharded: shards (name, token_offset, n_tokens,
                          source), contigs with global token offsets, splits, tokenizer sha256
    store/tokenizer.json
    store/shards/<name>/  a complete single store (tokens.npy, starts.npy, index.json, tokenizer.json)

Why: shards build in parallel processes and independently, so a re-run rebuilds only what is missing
or stale (a shard is valid when its index names the same source sha256, tokenizer and split spec), and
a reader on any host opens only the shards its windows fall in. Global token indices are those of a
single store built from the same files in the same order, so the same sampler positions give the same
windows. Each shard is written by `build_store` (temporary folder, renamed when whole) and the
top-level index is replaced atomically last.
"""

import json
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from grover_jax.genome import file_sha256, read_genome
from grover_jax.genome.fetch import fasta_stem
from grover_jax.progress import progress_bar
from grover_jax.store.build import STORE_VERSION, StoreBuildError, build_store
from grover_jax.store.reader import SHARDED_FORMAT, SHARDS, StoreError, TokenStore
from grover_jax.tokenizer.vocabulary import load_tokenizer


def shard_is_valid(shard_dir: Path, source: Path, tokenizer_sha256: str, split_spec: str,
                   source_sha256: str | None = None) -> bool:
    """A whole store built from this very file (sha256), with this tokenizer and split spec."""
    try:
        store = TokenStore(shard_dir)
    except StoreError:
        return False
    index = store.index
    sources = index.get("sources", [])
    return (
        index["tokenizer"]["sha256"] == tokenizer_sha256
        and index.get("split_spec", "") == split_spec
        and len(sources) == 1
        and sources[0]["bytes"] == source.stat().st_size
        and sources[0]["sha256"] == (source_sha256 or file_sha256(source))
    )


def _build_shard(source: str, tokenizer_path: str, shard_dir: str, split_spec: str) -> str:
    genome = read_genome(source, split_spec, keep_soft_mask=False)
    build_store(genome, load_tokenizer(tokenizer_path), shard_dir, split_spec=split_spec, overwrite=True,
                progress=False)
    return shard_dir


def _write_json_atomically(path: Path, payload: dict) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        json.dump(payload, out, indent=1)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def build_sharded_store(
    fasta_paths: list[str], tokenizer_path: str | Path, out_dir: str | Path, split_spec: str = "",
    workers: int = 1, progress: bool = True,
) -> dict:
    """Build (or complete) a sharded store of `fasta_paths`, one shard per file, `workers` processes.
    Returns {"built": [...], "kept": [...]} shard names. Workers are
    spawned processes: a script calling this with workers > 1 needs the `if __name__ == "__main__":` guard."""
    out_dir = Path(out_dir)
    tokenizer = load_tokenizer(tokenizer_path)
    if tokenizer.vocab_size > 2**16:
        raise StoreBuildError(f"{tokenizer.path}: {tokenizer.vocab_size} ids do not fit the store's uint16 tokens")
    if (out_dir / "tokens.npy").exists():
        raise StoreBuildError(f"{out_dir}: holds a single (unsharded) store; choose another --out")
    sources = [Path(p) for p in fasta_paths]
    names = [fasta_stem(p.name) for p in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise StoreBuildError(f"two FASTA files would make the same shard {duplicates[0]!r}: rename one")
    (out_dir / SHARDS).mkdir(parents=True, exist_ok=True)
    shared_tokenizer = out_dir / "tokenizer.json"
    if not shared_tokenizer.exists() or file_sha256(shared_tokenizer) != tokenizer.sha256:
        temporary = out_dir / ".tokenizer.json.tmp"
        shutil.copyfile(tokenizer.path, temporary)
        os.replace(temporary, shared_tokenizer)

    hashes = {}
    todo, kept = [], []
    for source, name in zip(sources, names):
        if not source.exists():
            raise FileNotFoundError(f"{source}: no such FASTA file")
        hashes[name] = file_sha256(source)
        shard_dir = out_dir / SHARDS / name
        if shard_is_valid(shard_dir, source, tokenizer.sha256, split_spec, hashes[name]):
            kept.append(name)
        else:
            todo.append((str(source), str(shared_tokenizer), str(shard_dir), split_spec))

    bar = progress_bar(total=len(todo), desc="shards", unit="shard", disable=not progress or not todo)
    if workers > 1 and len(todo) > 1:
        # spawn, not fork: a forked numba/threads parent is not safe to continue in a child
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(todo)), mp_context=context) as pool:
            for _ in pool.map(_build_shard, *zip(*todo)):
                bar.update(1)
    else:
        for task in todo:
            _build_shard(*task)
            bar.update(1)
    bar.close()

    shards, contigs, splits = [], [], {}
    offset = 0
    for source, name in zip(sources, names):
        shard = TokenStore(out_dir / SHARDS / name)
        if shard.index["sources"][0]["sha256"] != hashes[name]:
            raise StoreBuildError(f"{source}: changed while its shard was built; run the command again")
        shards.append({"name": name, "path": f"{SHARDS}/{name}", "token_offset": offset, "n_tokens": len(shard),
                       "n_bases": shard.index["n_bases"], "source": shard.index["sources"][0]})
        for contig in shard.contigs:
            contigs.append({**contig, "token_offset": offset + contig["token_offset"], "shard": len(shards) - 1})
        for split, entry in shard.index["splits"].items():
            total = splits.setdefault(split, {"contigs": 0, "tokens": 0, "bases": 0})
            for key in total:
                total[key] += entry[key]
        offset += len(shard)
    _write_json_atomically(out_dir / "index.json", {
        "format": SHARDED_FORMAT, "version": STORE_VERSION, "n_tokens": offset,
        "n_bases": sum(s["n_bases"] for s in shards), "vocab_size": tokenizer.vocab_size,
        "tokenizer": {"file": "tokenizer.json", "sha256": tokenizer.sha256},
        "sources": [s["source"] for s in shards], "split_spec": split_spec, "splits": splits,
        "shards": shards, "contigs": contigs,
    })
    return {"built": [Path(t[2]).name for t in todo], "kept": kept}
