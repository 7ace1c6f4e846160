"""`grover <stage> ...`: parse arguments, call one stage function, turn bad input into one line."""

import argparse
import importlib.metadata
import json
import sys
from collections.abc import Callable

import ml_collections

from grover_jax.analysis import ANALYSES
from grover_jax.atomic_files import discard_unfinished_folders, write_text
from grover_jax.configuration import ConfigError, load_config, validate_config
from grover_jax.errors import GroverError
from grover_jax.host_memory import keep_freed_memory

# Bad input (every GroverError) and a diverged run (pretraining names the step and the loss): one
# line, exit code 2.
USER_ERRORS: tuple[type[BaseException], ...] = (GroverError, FloatingPointError)


def _os_error_line(error: OSError) -> str:
    """`<path>: <reason>`, as the shell's own tools say it (`out/tokens.npy: No space left on device`)."""
    if error.filename is None or not error.strerror:
        return str(error)
    path = error.filename if error.filename2 is None else f"{error.filename} -> {error.filename2}"
    return f"{path}: {error.strerror}"


def _add_genome_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fasta", nargs="+", help="FASTA / FASTA.gz file(s); default: the bundled real chr20 slice")
    parser.add_argument("--splits", default=None,
                        help="split spec, e.g. 'valid=chr20:55000001-57500000;test=chr21' (default: bundled "
                             "splits with the bundled genome, else everything train)")


def _add_masked_lm_checkpoint(parser: argparse.ArgumentParser) -> None:
    """--checkpoint of a command that reads a masked LM: the shipped model unless told otherwise."""
    parser.add_argument("--checkpoint", default="grover-small-hg19-chr20",
                        help="pretraining run folder, HF BERT MLM folder or shipped model name (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grover", description="GROVER-style DNA language models in JAX")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    stages = parser.add_subparsers(dest="stage", required=True)

    config_command = stages.add_parser("config", help="configs: `grover config show NAME_OR_FILE` prints every field")
    config_actions = config_command.add_subparsers(dest="config_command", required=True)
    show = config_actions.add_parser("show", help="every field of a config and its value (what --set accepts)")
    show.add_argument("config", help="bundled config name (tiny, small, grover_base, finetune, ...) or configs/*.py")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="A.B=C")

    bpe = stages.add_parser("bpe", help="learn a BPE vocabulary in GROVER cycles -> tokenizer.json")
    _add_genome_args(bpe)
    bpe.add_argument("--cycles", type=int, default=600, help="merge cycles (GROVER: 600)")
    bpe.add_argument("--learn-on", default="train", choices=["train", "all"],
                     help="which split's sequence the pair counts run over")
    bpe.add_argument("--max-token-length", type=int, default=0, help="cap on token length in bases (0: none)")
    bpe.add_argument("--out", required=True, help="output folder for tokenizer.json and merges.tsv")
    bpe.add_argument("--engine", default="auto", choices=["auto", "linked", "compact"],
                     help="'compact' (what 'auto' picks) learns at 2 bytes/base on all cores; 'linked' gives the "
                          "same merges at ~28 bytes/base, slower, and is kept to cross-check")
    bpe.add_argument("--workers", type=int, default=1,
                     help="worker processes sharing the contigs (same merges); alone: all launched on this machine")
    bpe.add_argument("--worker-rank", type=int, default=None,
                     help="across hosts: this host's worker, 0..N-1 (worker 0 writes --out)")
    bpe.add_argument("--coordinator", default=None, help="across hosts: worker 0's HOST:PORT, the same on every host")

    store = stages.add_parser("store", help="tokenize a genome once into a memory-mapped token store")
    _add_genome_args(store)
    store.add_argument("--tokenizer", required=True, help="tokenizer.json or the folder holding it")
    store.add_argument("--out", required=True, help="store folder (written atomically)")
    store.add_argument("--overwrite", action="store_true", help="replace an existing store")
    store.add_argument("--sharded", action="store_true",
                       help="one shard per FASTA file + a top-level index; a re-run rebuilds only missing/stale shards")
    store.add_argument("--workers", type=int, default=1, help="processes building shards in parallel (--sharded)")

    data = stages.add_parser("data", help="genome data: fetch whole assemblies")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    fetch = data_commands.add_parser("fetch", help="download per-chromosome FASTA, md5-verified, resumable")
    fetch.add_argument("source", help="hg19, hg38, a URL (folder with md5sum.txt, or one file), a local folder or file")
    fetch.add_argument("--chromosomes", default=None,
                       help="comma-separated, e.g. chr1,chr2,X (any naming; default: every FASTA of the source)")
    fetch.add_argument("--out", required=True, help="output folder: one file per chromosome + manifest.json")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")

    pretrain = stages.add_parser("pretrain", help="masked-token pretraining on a token store (resumes from --workdir)")
    pretrain.add_argument("--config", default="tiny", help="configs/*.py file or bundled config name (tiny, grover_base)")
    pretrain.add_argument("--workdir", required=True, help="run folder: checkpoints, metrics.jsonl, tensorboard")
    pretrain.add_argument("--store", help="token store folder (default: the config's data.store)")
    pretrain.add_argument("--set", dest="overrides", action="append", default=[], metavar="A.B=C",
                          help="override a config field, e.g. --set train.num_steps=1000 (repeatable)")
    pretrain.add_argument("--distributed", choices=["env", "auto"], default="env",
                          help="multi-process start-up: 'env' joins a run described by JAX_COORDINATOR_ADDRESS, "
                               "JAX_NUM_PROCESSES, JAX_PROCESS_ID (if set); 'auto' lets JAX detect a TPU pod / SLURM")

    run = stages.add_parser("run", help="the whole pipeline (vocabulary, store, ...) on the bundled or given genome")
    _add_genome_args(run)
    run.add_argument("--workdir", default="runs/default")
    run.add_argument("--cycles", type=int, default=None, help="BPE cycles (default: the config's bpe.cycles, 600)")
    run.add_argument("--config", default="tiny", help="pretraining config (default: tiny)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="A.B=C")
    run.add_argument("--stop-after", choices=["bpe", "store", "pretrain", "next-kmer", "finetune", "export"],
                     default=None,
                     help="stop after this stage")

    export = stages.add_parser("export-hf", help="a run folder's checkpoint as a HuggingFace BertForMaskedLM folder, "
                                                 "or a fine-tuned one as BertForSequenceClassification")
    export.add_argument("--checkpoint", required=True,
                        help="pretraining run folder (or its checkpoints/), or a `grover finetune --out` folder")
    export.add_argument("--out", required=True, help="HF folder to write (config.json, model.safetensors, tokenizer)")
    export.add_argument("--step", default="best", help="'best' (lowest valid loss), 'latest' or a step number "
                                                       "(pretraining runs; a fine-tuning folder has its best only)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    export.add_argument("--no-check", action="store_true", help="skip the PyTorch logits parity check")

    import_hf = stages.add_parser("import-hf", help="a HuggingFace BERT MLM folder as a run folder (orbax checkpoint)")
    import_hf.add_argument("--hf", required=True, help="HF folder: config.json, model.safetensors, tokenizer.json")
    import_hf.add_argument("--out", required=True, help="run folder to write (config.json, tokenizer.json, checkpoints/)")
    import_hf.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    import_hf.add_argument("--no-check", action="store_true", help="skip the PyTorch logits parity check")

    analyze = stages.add_parser("analyze", help="representation analyses of a model on a token store (PNG + CSV)")
    analyze.add_argument("analysis", choices=ANALYSES)
    analyze.add_argument("--checkpoint", required=True, help="pretraining run folder or HF BERT folder")
    analyze.add_argument("--store", required=True, help="token store built with the model's tokenizer")
    analyze.add_argument("--out", required=True, help="output folder for the PNG and CSV files")
    analyze.add_argument("--repeats", help="repeats: RepeatMasker BED (default: the bundled hg19 rows)")
    analyze.add_argument("--annotation", help="regions: folder with tss, exons, genes, hg19_repeats .bed.gz "
                                              "(default: the bundled annotation)")
    analyze.add_argument("--split", help="tokens, ambiguity, self_similarity: split whose windows are sampled "
                                         "(default: valid)")
    analyze.add_argument("--windows", type=int, help="tokens, ambiguity, self_similarity: number of windows "
                                                     "(default: 64)")
    analyze.add_argument("--embedding", choices=("contextual", "input"),
                         help="tokens: hidden states averaged over occurrences, or the input embedding matrix "
                              "(default: contextual)")
    analyze.add_argument("--layer", type=int, help="tokens: layer of the contextual embeddings, 0 (embeddings' "
                                                   "output) to the number of layers (default: the last)")
    analyze.add_argument("--max-occurrences", type=int, help="tokens, self_similarity: occurrences counted per "
                                                             "token at most (default: 5000)")
    analyze.add_argument("--max-regions", type=int, help="regions: regions embedded (default: 4000)")
    analyze.add_argument("--region-tokens", type=int, help="regions: tokens per region (default: 32)")
    next_kmer = stages.add_parser("next-kmer", help="fine-tune to predict the k bases after a window (GROVER's task)")
    next_kmer.add_argument("--checkpoint", required=True, help="pretraining run folder (or its checkpoints/)")
    next_kmer.add_argument("--store", help="token store (default: the one the run was trained on)")
    next_kmer.add_argument("--k", type=int, nargs="+", help="k values (default: the config's, 2 3 4 5 6)")
    next_kmer.add_argument("--out", required=True, help="folder for next_kmer.json / next_kmer.md")
    next_kmer.add_argument("--config", default="next_kmer", help="configs/*.py file or bundled config name")
    next_kmer.add_argument("--set", dest="overrides", action="append", default=[], metavar="A.B=C")

    mlm_eval = stages.add_parser("mlm-eval", help="masked-token fill-in on held-out sequence, every target [MASK]ed, "
                                                  "beside the unigram and a fill-in n-gram on the same targets")
    mlm_eval.add_argument("--checkpoint", required=True,
                          help="pretraining run folder, HF BERT MLM folder, or a shipped model's name")
    mlm_eval.add_argument("--store", help="token store built with the model's tokenizer (default: the run's)")
    mlm_eval.add_argument("--split", default="test", help="split scored (the n-gram counts the train split)")
    mlm_eval.add_argument("--windows", type=int, default=256, help="windows scored per mask rate")
    mlm_eval.add_argument("--out", help="write the rows as JSON here")

    select = stages.add_parser("select-vocab", help="GROVER's vocabulary selection: BPE cycles and k-mers compared "
                                                    "by next-k-mer accuracy (resumable)")
    _add_genome_args(select)
    select.add_argument("--workdir", required=True, help="sweep folder: arms/<name>/, selection.{csv,md,png}")
    select.add_argument("--config", default="select_vocab", help="configs/*.py (e.g. configs/select_vocab.py:quick)")
    select.add_argument("--set", dest="overrides", action="append", default=[], metavar="A.B=C")

    finetune = stages.add_parser("finetune", help="fine-tune a pretrained encoder on prom300, promscan, ctcf, promoter_gc or "
                                                  "your labelled sequences; test metrics with bootstrap intervals")
    finetune.add_argument("--checkpoint", required=True, help="pretraining run folder (or its checkpoints/)")
    finetune.add_argument("--task", default=None,
                          help="prom300 | promscan | ctcf | promoter_gc | a CSV file (sequence,label[,split]); "
                               "with --bed: your FASTA + BED of labelled intervals")
    finetune.add_argument("--out", required=True, help="folder for results.{json,md}, best/params.npz")
    finetune.add_argument("--fasta", nargs="+", help="genome for the tasks (default: the bundled chr20 slice)")
    finetune.add_argument("--annotation", help="folder with tss.bed.gz / CTCF.bed.gz (default: bundled)")
    finetune.add_argument("--bed", help="BED of labelled intervals (label in column 4) on --fasta")
    finetune.add_argument("--baselines", action="store_true",
                          help="also train a k-mer logistic regression and a small CNN on the same splits")
    finetune.add_argument("--config", default="finetune", help="configs/*.py file or bundled config name")
    finetune.add_argument("--set", dest="overrides", action="append", default=[], metavar="A.B=C")

    predict = stages.add_parser("predict", help="score sequences with a fine-tuned model (TSV), or scan long "
                                                "sequences with --scan (bedGraph)")
    predict.add_argument("--checkpoint", required=True, help="a `grover finetune --out` folder")
    predict.add_argument("--fasta", nargs="+", required=True, help="sequences to score, or the genome of --bed")
    predict.add_argument("--bed", help="score (or scan) these intervals of --fasta instead of whole records")
    predict.add_argument("--out", required=True, help="output TSV, or bedGraph with --scan")
    predict.add_argument("--scan", action="store_true", help="slide a window along each sequence")
    predict.add_argument("--window", type=int, default=300, help="scan window in bp")
    predict.add_argument("--stride", type=int, default=50, help="scan stride in bp")
    predict.add_argument("--batch-size", type=int, default=64)

    embed = stages.add_parser("embed", help="mean-pooled embeddings of FASTA records or BED intervals -> .npy "
                                            "(+ .tsv of the rows) or .npz")
    _add_masked_lm_checkpoint(embed)
    embed.add_argument("--fasta", nargs="+", required=True, help="sequences to embed, or the genome of --bed")
    embed.add_argument("--bed", help="embed these intervals of --fasta (a '-' strand one as its reverse complement)")
    embed.add_argument("--out", required=True, help="X.npy (rows named in X.tsv beside it) or X.npz")
    embed.add_argument("--strand", choices=["forward", "both"], default="forward",
                       help="'both' averages each region's embedding with its reverse complement's")
    embed.add_argument("--batch-size", type=int, default=32)

    score = stages.add_parser("score-variants", help="zero-shot score log P(alt) - log P(ref) of each VCF variant "
                                                     "in a window of the genome -> TSV")
    _add_masked_lm_checkpoint(score)
    score.add_argument("--fasta", nargs="+", required=True, help="the reference genome the VCF is on")
    score.add_argument("--vcf", required=True, help="VCF or VCF.gz (CHROM POS ID REF ALT read)")
    score.add_argument("--out", required=True, help="output TSV: chrom pos id ref alt score")
    score.add_argument("--flank", type=int, default=1000, help="bases read each side of the variant")
    score.add_argument("--batch-size", type=int, default=32)

    compile_ = stages.add_parser("compile", help="compile the pretraining step ahead of time for a TPU slice "
                                                 "(no TPU needed): memory per chip, FLOPs, expected tokens/s")
    compile_.add_argument("--config", default="grover_base", help="configs/*.py file or bundled config name")
    compile_.add_argument("--topology", required=True,
                          help="TPU slice: v5e:16x16, v4:2x2x1, v5p:4x4x4 ... or an accelerator type (v5e-256, v4-8)")
    compile_.add_argument("--slices", type=int, default=1, help="slices joined over DCN (data parallel across them)")
    compile_.add_argument("--set", dest="overrides", action="append", default=[], metavar="A.B=C")
    compile_.add_argument("--vocab-size", type=int, default=0,
                          help="vocabulary size (default: the config's, else 609 = GROVER's 600 cycles + 4 bases + 5 specials)")
    compile_.add_argument("--tokenizer", help="take the vocabulary size from this tokenizer.json (or its folder)")
    compile_.add_argument("--mfu", type=float, default=0.5, help="model FLOPs utilisation assumed for tokens/s")
    return parser


# Sizes the command line passes inward, each with its least value; refused here, before any work:
# the BPE core is compiled without bounds checks, so a negative size would crash the interpreter.
_LEAST = {"cycles": 1, "max_token_length": 0, "workers": 1, "window": 1, "stride": 1, "batch_size": 1,
          "windows": 1, "max_regions": 1, "region_tokens": 1, "slices": 1, "vocab_size": 0, "flank": 0}


def _check_sizes(args: argparse.Namespace) -> None:
    for name, least in _LEAST.items():
        value = getattr(args, name, None)
        if value is not None and value < least:
            raise ConfigError(f"--{name.replace('_', '-')} {value}: must be >= {least}")
    if getattr(args, "k", None) and min(args.k) < 1:
        raise ConfigError(f"--k {' '.join(map(str, args.k))}: every k must be >= 1")


def _version() -> str:
    try:
        return importlib.metadata.version("grover-jax")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _flat_fields(config: ml_collections.ConfigDict, prefix: str = "") -> list[tuple[str, object]]:
    fields = []
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict):
            fields += _flat_fields(value, f"{prefix}{key}.")
        else:
            fields.append((f"{prefix}{key}", value))
    return fields


def _config(args: argparse.Namespace) -> ml_collections.ConfigDict:
    """The stage's config with its --set overrides, refused before any work if a value is unusable."""
    config = load_config(args.config, args.overrides)
    if getattr(args, "k", None):
        config.next_kmer.ks = tuple(args.k)
    validate_config(config)
    return config


def _convert(args: argparse.Namespace) -> None:
    """export-hf (with its model card) / import-hf, then the PyTorch logits parity check where torch
    is installed."""
    from grover_jax.interop import hf
    from grover_jax.programs.export import export_hf, parity_line
    from grover_jax.runs import import_masked_lm, load_pretrained

    if args.stage == "export-hf":
        step = int(args.step) if args.step.isdigit() else args.step
        export = export_hf(args.checkpoint, args.out, step, args.overwrite, check=not args.no_check)
        print(f"export-hf: wrote {export.out}")
        print(f"model card: {export.out / 'README.md'}")
        if not args.no_check:
            print(parity_line(export.parity))
        return
    out = import_masked_lm(args.hf, args.out, args.overwrite)
    pretrained = load_pretrained(out)
    print(f"{args.stage}: wrote {out}")
    if not args.no_check:
        print(parity_line(hf.check_parity(args.hf, pretrained.params, pretrained.model_config,
                                          pretrained.tokenizer_path)))


def _bpe(args: argparse.Namespace) -> None:
    from grover_jax.programs.vocabulary import learn_vocabulary

    learn_vocabulary(args.fasta, args.out, args.cycles, args.splits, args.learn_on, args.max_token_length,
                     engine=args.engine, workers=args.workers, worker_rank=args.worker_rank,
                     coordinator=args.coordinator)


def _store(args: argparse.Namespace) -> None:
    from grover_jax.programs.vocabulary import build_token_store

    build_token_store(args.fasta, args.tokenizer, args.out, args.splits, args.overwrite,
                      sharded=args.sharded, workers=args.workers)


def _data(args: argparse.Namespace) -> None:
    from grover_jax.genome.fetch import fetch_genome

    chromosomes = [c.strip() for c in args.chromosomes.split(",") if c.strip()] if args.chromosomes else None
    manifest = fetch_genome(args.source, args.out, chromosomes, progress=not args.quiet)
    print(f"fetched: {manifest}")


def _pretrain(args: argparse.Namespace) -> None:
    from grover_jax.programs.pretrain import pretrain

    pretrain(_config(args), args.workdir, args.store, auto_distributed=args.distributed == "auto")


def _run(args: argparse.Namespace) -> None:
    from grover_jax.programs.pipeline import run_pipeline

    config = _config(args)
    run_pipeline(args.workdir, args.fasta, args.splits, args.cycles, config, args.stop_after)


def _analyze(args: argparse.Namespace) -> None:
    from grover_jax.analysis import run_analysis

    options = {"repeats": {"repeats_bed": args.repeats}, "regions": {
        "annotation_dir": args.annotation, "max_regions": args.max_regions,
        "region_tokens": args.region_tokens}, "ambiguity": {"split": args.split, "n_windows": args.windows},
        "tokens": {"embedding": args.embedding, "layer": args.layer, "split": args.split, "n_windows": args.windows,
                   "max_occurrences": args.max_occurrences},
        "self_similarity": {"split": args.split, "n_windows": args.windows, "max_occurrences": args.max_occurrences},
    }.get(args.analysis, {})
    csv_path = run_analysis(args.analysis, args.checkpoint, args.store, args.out,
                            **{k: v for k, v in options.items() if v is not None})
    print(f"analysis {args.analysis}: {csv_path} (and PNG plots in {args.out})")


def _next_kmer(args: argparse.Namespace) -> None:
    from grover_jax.programs.next_kmer import run_next_kmer

    run_next_kmer(args.checkpoint, args.out, _config(args), args.store)


def _show_config(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.overrides)
    for name, value in _flat_fields(config):
        print(f"{name} = {value!r}")


def _mlm_eval(args: argparse.Namespace) -> None:
    from grover_jax.programs.mlm_eval import evaluate_fill_in, rows_markdown

    if args.windows < 1:
        raise ConfigError(f"--windows {args.windows}: must be >= 1")
    rows = evaluate_fill_in(args.checkpoint, args.store, args.split, n_windows=args.windows)
    print(rows_markdown(rows))
    if args.out:
        write_text(args.out, json.dumps(rows, indent=1))


def _select_vocab(args: argparse.Namespace) -> None:
    from grover_jax.programs.select_vocab import select_vocabulary

    select_vocabulary(args.workdir, _config(args), args.fasta, args.splits)


def _finetune(args: argparse.Namespace) -> None:
    from grover_jax.programs.finetune import finetune, task_overrides

    config = _config(args)
    task_overrides(config, args.task, args.fasta, args.annotation, args.bed)
    finetune(config, args.checkpoint, args.out, baselines=args.baselines)


def _predict(args: argparse.Namespace) -> None:
    from grover_jax.programs.predict import predict_regions

    out = predict_regions(args.checkpoint, args.fasta, args.bed, args.out, args.scan, args.window,
                          args.stride, args.batch_size)
    print(f"predict: {out}")


def _embed(args: argparse.Namespace) -> None:
    from grover_jax.programs.embed import embed_fasta

    written = embed_fasta(args.fasta, args.out, args.bed, args.checkpoint, args.strand, args.batch_size)
    print(f"embed: wrote {', '.join(map(str, written))}")


def _score_variants(args: argparse.Namespace) -> None:
    from grover_jax.programs.score_variants import score_vcf

    out = score_vcf(args.fasta, args.vcf, args.out, args.checkpoint, args.flank, args.batch_size)
    print(f"score-variants: wrote {out}")


def _compile(args: argparse.Namespace) -> int | None:
    from grover_jax.programs.compile import (
        CompileSetupError,
        StepDoesNotFitError,
        compile_pretraining,
    )

    vocab_size = args.vocab_size
    if args.tokenizer:
        from grover_jax.tokenizer import load_tokenizer

        vocab_size = load_tokenizer(args.tokenizer).vocab_size
    try:
        report = compile_pretraining(_config(args), args.topology, args.slices, vocab_size)
    except (CompileSetupError, StepDoesNotFitError) as error:  # the slice cannot run it: exit code 1
        print(f"grover: error: {error}", file=sys.stderr)
        return 1
    print(report.summary(args.mfu))
    return None


# One handler per stage: a new program adds its parser in build_parser and its line here.
# A handler returns None (exit code 0) or its own exit code.
STAGES: dict[str, Callable[[argparse.Namespace], int | None]] = {
    "config": _show_config,
    "bpe": _bpe,
    "store": _store,
    "data": _data,
    "pretrain": _pretrain,
    "run": _run,
    "export-hf": _convert,
    "import-hf": _convert,
    "analyze": _analyze,
    "next-kmer": _next_kmer,
    "mlm-eval": _mlm_eval,
    "select-vocab": _select_vocab,
    "finetune": _finetune,
    "predict": _predict,
    "embed": _embed,
    "score-variants": _score_variants,
    "compile": _compile,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Before JAX starts its threads: reuse freed host memory instead of page-faulting it in
    # afresh every step (host_memory.py; GROVER_JAX_KEEP_FREED_MEMORY=0 opts out).
    keep_freed_memory()
    try:
        _check_sizes(args)
        status = STAGES[args.stage](args)
    except USER_ERRORS as error:
        print(f"grover: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # not found, permission, read-only folder, disk full ...
        print(f"grover: error: {_os_error_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("grover: interrupted", file=sys.stderr)
        return 130
    finally:
        discard_unfinished_folders()
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
