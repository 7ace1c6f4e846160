"""`grover <stage> ...`: parse arguments, call one stage function, turn bad input into one line."""

import argparse
import sys

from grover_jax.genome import GenomeFormatError, SplitSpecError
from grover_jax.store import StoreBuildError, StoreError
from grover_jax.tokenizer import TokenizerFileError

USER_ERRORS: tuple[type[BaseException], ...] = (
    GenomeFormatError, SplitSpecError, TokenizerFileError, StoreError, StoreBuildError,
    FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
)


def _add_genome_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fasta", nargs="+", help="FASTA / FASTA.gz file(s); default: the bundled real chr20 slice")
    parser.add_argument("--splits", default=None,
                        help="split spec, e.g. 'valid=chr20:55000001-57500000;test=chr21' (default: bundled "
                             "splits with the bundled genome, else everything train)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grover", description="GROVER-style DNA language models in JAX")
    stages = parser.add_subparsers(dest="stage", required=True)

    bpe = stages.add_parser("bpe", help="learn a BPE vocabulary in GROVER cycles -> tokenizer.json")
    _add_genome_args(bpe)
    bpe.add_argument("--cycles", type=int, default=600, help="merge cycles (GROVER: 600)")
    bpe.add_argument("--learn-on", default="train", choices=["train", "all"],
                     help="which split's sequence the pair counts run over")
    bpe.add_argument("--max-token-length", type=int, default=0, help="cap on token length in bases (0: none)")
    bpe.add_argument("--out", required=True, help="output folder for tokenizer.json and merges.tsv")

    store = stages.add_parser("store", help="tokenize a genome once into a memory-mapped token store")
    _add_genome_args(store)
    store.add_argument("--tokenizer", required=True, help="tokenizer.json or the folder holding it")
    store.add_argument("--out", required=True, help="store folder (written atomically)")
    store.add_argument("--overwrite", action="store_true", help="replace an existing store")

    run = stages.add_parser("run", help="the whole pipeline (vocabulary, store, ...) on the bundled or given genome")
    _add_genome_args(run)
    run.add_argument("--workdir", default="runs/default")
    run.add_argument("--cycles", type=int, default=600)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.stage == "bpe":
            from grover_jax.programs.vocabulary import learn_vocabulary

            learn_vocabulary(args.fasta, args.out, args.cycles, args.splits, args.learn_on, args.max_token_length)
        elif args.stage == "store":
            from grover_jax.programs.vocabulary import build_token_store

            build_token_store(args.fasta, args.tokenizer, args.out, args.splits, args.overwrite)
        elif args.stage == "run":
            from grover_jax.programs.pipeline import run_pipeline

            run_pipeline(args.workdir, args.fasta, args.splits, args.cycles)
    except USER_ERRORS as error:
        print(f"grover: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("grover: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
