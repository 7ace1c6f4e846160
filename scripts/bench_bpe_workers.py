"""Time `grover bpe --workers N` against the single-process compact learner on the same input.

Each row is one `learn_vocabulary` call (its own output folder): wall seconds, CPU seconds of this
process and every worker it launched, and the reading and learning seconds worker 0 recorded; the last
column says whether merges.tsv is byte-identical to the single-process one. Wall time only means
something on otherwise idle cores: workers on one machine share them.

Run from the repo root:
    python scripts/bench_bpe_workers.py                                   # the bundled slice, 600 cycles
    python scripts/bench_bpe_workers.py --fasta hg19_chr20.fa.gz --splits "" --learn-on all --workers 2 4
"""

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from grover_jax.programs.vocabulary import learn_vocabulary


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fasta", nargs="*", default=None, help="FASTA files (default: the bundled slice)")
    parser.add_argument("--splits", default=None, help="split spec (default: the bundled slice's)")
    parser.add_argument("--learn-on", default="train", choices=["train", "all"])
    parser.add_argument("--cycles", type=int, default=600)
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    args = parser.parse_args()
    print(f"{'learner':<22} {'wall s':>8} {'CPU s':>8} {'read s':>8} {'learn s':>8}  same merges")
    with tempfile.TemporaryDirectory() as scratch:
        reference = None
        for workers in [1, *args.workers]:
            out = Path(scratch) / f"workers{workers}"
            wall, cpu = time.perf_counter(), _cpu_seconds()
            learn_vocabulary(args.fasta, out, args.cycles, args.splits, args.learn_on, progress=False,
                             engine="compact", workers=workers)
            wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
            provenance = json.loads((out / "bpe_summary.json").read_text())["provenance"]
            merges = (out / "merges.tsv").read_text()
            reference = reference or merges
            label = "compact, 1 process" if workers == 1 else f"{workers} workers"
            print(f"{label:<22} {wall:>8.1f} {cpu:>8.1f} {provenance['read_seconds']:>8.1f} "
                  f"{provenance['learn_seconds']:>8.1f}  {merges == reference}", flush=True)


if __name__ == "__main__":
    main()
