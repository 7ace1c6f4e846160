"""`grover run`: the whole pipeline on one genome, each stage writing the artefact the next one reads.

    vocab/ -> store/ -> pretrain/ -> next_kmer/ -> finetune_prom300/ -> hf/

A stage whose artefact exists and was made from the same inputs is not redone, so re-running the
command after an interruption continues: the vocabulary and the store are kept when their sources,
splits and settings match; pretraining resumes from its last checkpoint (a finished run only
evaluates); next-k-mer resumes per k; fine-tuning is kept when its results.json came from the same
config and the same pretrained step; the export is kept when its grover_export.json names the same
run, step and tokenizer.
"""

from pathlib import Path

import ml_collections

from grover_jax.genome import file_sha256
from grover_jax.programs.vocabulary import (
    build_token_store,
    learn_vocabulary,
    resolve_genome,
    vocabulary_provenance,
)
from grover_jax.store import StoreError, open_store

STAGES = ("bpe", "store", "pretrain", "next-kmer", "finetune", "export")


def run_pipeline(
    workdir: str | Path, fasta: list[str] | None, split_spec: str | None, cycles: int | None = None,
    config: ml_collections.ConfigDict | None = None, stop_after: str | None = None,
) -> None:
    workdir = Path(workdir)
    paths, split_spec = resolve_genome(fasta, split_spec)
    vocab_dir, store_dir = workdir / "vocab", workdir / "store"
    if cycles is None:  # not `cycles or ...`: 0 must not turn into 600 (the CLI refuses it)
        cycles = config.bpe.cycles if config is not None else 600
    max_token_length = config.bpe.max_token_length if config is not None else 0

    provenance = vocabulary_provenance(vocab_dir)
    wanted = [file_sha256(p) for p in paths]
    if (provenance.get("cycles_requested") == cycles and provenance.get("split_spec") == split_spec
            and provenance.get("max_token_length", 0) == max_token_length
            and [s["sha256"] for s in provenance.get("sources", [])] == wanted):
        print(f"vocabulary: up to date in {vocab_dir}")
    else:
        learn_vocabulary(paths, vocab_dir, cycles, split_spec, max_token_length=max_token_length)
    tokenizer_path = vocab_dir / "tokenizer.json"
    if stop_after == "bpe":
        return

    try:
        store = open_store(store_dir)
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

    run_dir = workdir / "pretrain"
    final = pretrain(config, run_dir, store_dir)
    valid = final["valid"]
    print(f"pretraining: valid loss {valid['loss']:.4f}, masked-token accuracy {valid['accuracy']:.4f} "
          f"(always the commonest token: {valid['unigram_accuracy']:.4f}), perplexity {valid['perplexity']:.2f} "
          f"-> {run_dir}")
    if stop_after == "pretrain":
        return

    from grover_jax.configuration import load_config
    from grover_jax.programs.next_kmer import run_next_kmer

    rows = run_next_kmer(run_dir, workdir / "next_kmer", load_config("next_kmer:pipeline"), store_dir)
    print("next-k-mer accuracy on the test split (majority class / Markov baseline): "
          + ", ".join(f"k={r['k']} {r['accuracy']:.4f} ({r['majority_accuracy']:.4f} / {r['markov_accuracy']:.4f})"
                      for r in rows) + f" -> {workdir / 'next_kmer' / 'next_kmer.md'}")
    if stop_after == "next-kmer":
        return

    from grover_jax.runs import load_pretrained

    pretrained = load_pretrained(run_dir)
    if fasta is None:  # the fine-tuning tasks are built from the bundled genome's annotation
        from grover_jax.programs.finetune import finetune, finished_results

        finetune_config = load_config("finetune:pipeline")
        finetune_config.task.data_dir = str(workdir / "tasks")
        finetune_dir = workdir / "finetune_prom300"
        results = finished_results(finetune_config, run_dir, pretrained.step, finetune_dir, baselines=True,
                                   encoder_sha256=pretrained.encoder_sha256)
        if results is not None:
            print(f"fine-tuning prom300: up to date in {finetune_dir} ({_headline(results)})")
        else:
            results = finetune(finetune_config, run_dir, finetune_dir, baselines=True)
            print(f"fine-tuning prom300: -> {finetune_dir} ({_headline(results)})")
    else:
        print("fine-tuning: skipped (tasks need an annotation; run `grover finetune --task ... --annotation ...`)")
    if stop_after == "finetune":
        return

    from grover_jax.programs.export import (
        export_masked_lm,
        is_current,
        parity_line,
        read_export_record,
    )

    hf_dir = workdir / "hf"
    if is_current(hf_dir, pretrained):
        parity = read_export_record(hf_dir).get("parity")
        print(f"export: up to date in {hf_dir} (made with step {pretrained.step}; "
              f"{parity_line(parity)} when it was made)")
        return
    export = export_masked_lm(pretrained, hf_dir, overwrite=True)
    print(f"export: HuggingFace BertForMaskedLM folder with its model card (README.md) {export.out}")
    print(parity_line(export.parity, export.checked))


def _headline(results: dict) -> str:
    """'model test MCC 0.41 [0.35, 0.47]; ...' for every model of the fine-tuning results."""
    parts = []
    for model, entry in results["models"].items():
        value, (low, high) = entry["test"]["metrics"]["mcc"], entry["test"]["ci"]["mcc"]
        parts.append(f"{model} test MCC {value:.3f} [{low:.3f}, {high:.3f}]")
    return "; ".join(parts)
