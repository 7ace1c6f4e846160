"""`grover run`: the whole pipeline on one genome, each stage writing the artefact the next one reads.
A stage whose artefact exists and was made from the same inputs is not redone."""

from pathlib import Path

from grover_jax.programs.vocabulary import (
    build_token_store, learn_vocabulary, resolve_genome, vocabulary_provenance,
)
from grover_jax.genome import file_sha256
from grover_jax.store import StoreError, TokenStore


def run_pipeline(
    workdir: str | Path, fasta: list[str] | None, split_spec: str | None, cycles: int = 600,
    config=None, stop_after: str | None = None,
) -> None:
    workdir = Path(workdir)
    paths, split_spec = resolve_genome(fasta, split_spec)
    vocab_dir, store_dir = workdir / "vocab", workdir / "store"

    provenance = vocabulary_provenance(vocab_dir)
    wanted = [file_sha256(p) for p in paths]
    if (provenance.get("cycles_requested") == cycles and provenance.get("split_spec") == split_spec
            and [s["sha256"] for s in provenance.get("sources", [])] == wanted):
        print(f"vocabulary: up to date in {vocab_dir}")
    else:
        learn_vocabulary(paths, vocab_dir, cycles, split_spec)
    tokenizer_path = vocab_dir / "tokenizer.json"
    if stop_after == "bpe":
        return

    try:
        store = TokenStore(store_dir)
        current = store.index["split_spec"] == split_spec and [s["sha256"] for s in store.index["sources"]] == wanted
        from grover_jax.tokenizer import load_tokenizer

        current = current and store.tokenizer_sha256 == load_tokenizer(tokenizer_path).sha256
    except StoreError:
        current = False
    if current:
        print(f"token store: up to date in {store_dir}")
    else:
        build_token_store(paths, tokenizer_path, store_dir, split_spec, overwrite=True)
    if stop_after == "store" or config is None:
        return

    from grover_jax.programs.pretrain import pretrain

    final = pretrain(config, workdir / "pretrain", store_dir)
    valid = final["valid"]
    print(f"pretraining: valid loss {valid['loss']:.4f}, masked-token accuracy {valid['accuracy']:.4f} "
          f"(always the commonest token: {valid['unigram_accuracy']:.4f}), perplexity {valid['perplexity']:.2f} "
          f"-> {workdir / 'pretrain'}")
