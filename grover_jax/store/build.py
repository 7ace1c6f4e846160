"""Build a token store: the genome tokenized once, as memory-mappable arrays.

    tokens.npy   uint16 [n_tokens]  token ids (vocabularies up to 65,536 ids)
    starts.npy   uint32 [n_tokens]  0-based chromosome coordinate of each token's first base
    index.json   contigs (chromosome, start, end, split, token_offset, n_tokens), split totals,
                 tokenizer sha256, source file checksums
    tokenizer.json  the vocabulary the ids refer to

The store is written into a temporary sibling directory and renamed into place only when complete,
index.json last: a directory at the target path is always a whole store, and an interrupted build
leaves only a `.<name>.tmp-*` directory that no reader opens.
"""

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from grover_jax.atomic_files import replace_folder, temporary_folder
from grover_jax.errors import GroverError
from grover_jax.genome.genome import Genome
from grover_jax.progress import progress_bar
from grover_jax.tokenizer.vocabulary import GenomeTokenizer

STORE_FORMAT = "grover-token-store"
STORE_VERSION = 1
MAX_COORDINATE = 2**32 - 1


class StoreBuildError(GroverError, RuntimeError):
    pass


def build_store(
    genome: Genome,
    tokenizer: GenomeTokenizer,
    out_dir: str | Path,
    split_spec: str = "",
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Encode `genome` one chromosome at a time (`GenomeTokenizer.encode_regions` on each FASTA
    record's sequence in place: a window per thread of working memory besides the tokens) and write
    the store at `out_dir`."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise StoreBuildError(f"{out_dir}: already exists (pass --overwrite to replace it)")
    if tokenizer.vocab_size > 2**16:
        raise StoreBuildError(f"{tokenizer.path}: {tokenizer.vocab_size} ids do not fit the store's uint16 tokens")
    temporary = temporary_folder(out_dir)

    compiling = time.perf_counter()
    if genome.contigs:  # numba compiles the replay at its first call in a process (about 2 s), apart
        first = genome.contigs[0]
        record = genome.record(first.chromosome, first.start)
        start = first.start - record.offset
        tokenizer.encode_regions(record.sequence, np.array([[start, start + 1]], np.int64))
    started = time.perf_counter()
    token_parts: list[np.ndarray] = []
    start_parts: list[np.ndarray] = []
    contig_rows = []
    offset = 0
    chromosomes = list(dict.fromkeys(c.chromosome for c in genome.contigs))
    bar = progress_bar(total=sum(c.length for c in genome.contigs), desc="encoding", unit="bp", unit_scale=True,
                       disable=not progress, mininterval=0.5)
    # One chromosome at a time bounds the compiled replay's working memory by the largest chromosome.
    for chromosome in chromosomes:
        contigs = [c for c in genome.contigs if c.chromosome == chromosome]
        if contigs[-1].end > MAX_COORDINATE:
            raise StoreBuildError(f"{chromosome}: coordinates past {MAX_COORDINATE:,} do not fit uint32 starts")
        # Each FASTA record's contigs are encoded where they lie in its sequence (no copy of the bases).
        contig_tokens = []
        for record in [r for r in genome.records if r.chromosome == chromosome]:
            regions = [(c.start - record.offset, c.end - record.offset) for c in contigs
                       if record.offset <= c.start < record.end]
            if regions:
                contig_tokens += tokenizer.encode_regions(record.sequence, np.array(regions, np.int64))
        # One array per chromosome, filled in place: fresh pages cost as much as the replay here.
        n_tokens = sum(len(ids) for ids, _ in contig_tokens)
        token_parts.append(np.empty(n_tokens, np.uint16))
        start_parts.append(np.empty(n_tokens, np.uint32))
        at = 0
        for contig, (ids, base_offsets) in zip(contigs, contig_tokens):
            token_parts[-1][at : at + len(ids)] = ids
            np.add(base_offsets, contig.start, out=start_parts[-1][at : at + len(ids)], casting="unsafe")
            contig_rows.append({
                "chromosome": contig.chromosome, "start": contig.start, "end": contig.end,
                "split": contig.split, "token_offset": offset + at, "n_tokens": int(len(ids)),
            })
            at += len(ids)
        offset += at
        del contig_tokens
        bar.update(sum(c.length for c in contigs))
    bar.close()
    tokens, starts = (np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros(0, dtype)
                      for parts, dtype in ((token_parts, np.uint16), (start_parts, np.uint32)))
    encoded = time.perf_counter()
    np.save(temporary / "tokens.npy", tokens)
    np.save(temporary / "starts.npy", starts)
    shutil.copyfile(tokenizer.path, temporary / "tokenizer.json")
    written = time.perf_counter()

    splits = {}
    for row in contig_rows:
        entry = splits.setdefault(row["split"], {"contigs": 0, "tokens": 0, "bases": 0})
        entry["contigs"] += 1
        entry["tokens"] += row["n_tokens"]
        entry["bases"] += row["end"] - row["start"]
    index = {
        "format": STORE_FORMAT,
        "version": STORE_VERSION,
        "n_tokens": int(len(tokens)),
        "n_bases": int(sum(r["end"] - r["start"] for r in contig_rows)),
        "vocab_size": tokenizer.vocab_size,
        "tokenizer": {"file": "tokenizer.json", "sha256": tokenizer.sha256},
        "sources": genome.sources,
        "split_spec": split_spec,
        "splits": splits,
        "contigs": contig_rows,
        "compile_seconds": round(started - compiling, 3),  # the replay's first call in this process
        "encode_seconds": round(encoded - started, 3),  # reading the bases, the replay, the arrays
        "write_seconds": round(written - encoded, 3),
    }
    with open(temporary / "index.json", "w") as handle:
        json.dump(index, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    replace_folder(temporary, out_dir)
    return out_dir
