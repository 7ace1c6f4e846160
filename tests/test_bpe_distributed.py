"""BPE cycles with the genome split over worker processes give the single-process vocabulary exactly."""

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from grover_jax import bundled
from grover_jax.cli import main
from grover_jax.genome import read_genome
from grover_jax.genome.genome import BASE_CODE
from grover_jax.programs.bpe_workers import BpeWorkersError
from grover_jax.programs.vocabulary import learn_vocabulary
from grover_jax.tokenizer.bpe_compact import chromosome_tokens, learn_bpe_compact
from grover_jax.tokenizer.bpe_distributed import ContigShares, learn_bpe_shared
from tests.conftest import shared_file, write_fasta
from tests.test_bpe import reference_bpe

REPO = Path(__file__).resolve().parents[1]


def _codes(text: str) -> np.ndarray:
    return BASE_CODE[np.frombuffer(text.encode(), np.uint8)]


def _merge_rows(folder) -> list[tuple[str, str, int]]:
    rows = (folder / "merges.tsv").read_text().splitlines()[1:]
    return [(r.split("\t")[1], r.split("\t")[2], int(r.split("\t")[5])) for r in rows]


def test_two_worker_processes_learn_the_single_process_vocabulary_of_the_bundled_slice(tmp_path):
    """200 cycles on the bundled chr20 slice's train split (3 contigs, 3.95 Mb): worker 0 holds the
    2.9 Mb contig, worker 1 the other two; tokenizer.json, merges.tsv and the token counts match the
    single-process compact learner's."""
    genome = read_genome(bundled.FASTA, bundled.SPLIT_SPEC)
    lengths = [c.length for c in genome.split_contigs("train")]
    assert [sum(l for l, k in zip(lengths, ContigShares(2, rank)(lengths)) if k) for rank in (0, 1)] == [
        2_897_085, 1_052_915]
    learn_vocabulary(None, tmp_path / "one", cycles=200, engine="compact", progress=False)
    learn_vocabulary(None, tmp_path / "two", cycles=200, workers=2, progress=False)
    for name in ("tokenizer.json", "merges.tsv"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()
    one, two = (json.loads((tmp_path / d / "bpe_summary.json").read_text()) for d in ("one", "two"))
    assert two["provenance"]["workers"] == 2 and two["token_counts"] == one["token_counts"]
    assert two["n_bases"] == one["n_bases"] == 3_950_000


@pytest.mark.shared_data
@pytest.mark.slow  # several JAX processes; the default suite keeps the two-worker equivalence
def test_two_workers_on_two_files_hold_contigs_of_both_chromosomes_and_learn_the_same_600_cycles(tmp_path):
    """The chr22 window's two contigs then the bundled chr20 slice's three train contigs: the shares
    carry over from file to file (worker 0: chr22 0.51 Mb + chr20 1.05 Mb, worker 1: chr22 0.39 Mb +
    chr20 2.90 Mb), and GROVER's 600 cycles give the single-process tokenizer.json and merges.tsv."""
    files = [str(shared_file("genome/hg19_chr22_20-21Mb.fa.gz")), str(bundled.FASTA)]
    shares = [ContigShares(2, rank) for rank in (0, 1)]
    file_lengths = [[509_431, 390_569], [2_897_085, 552_915, 500_000]]
    kept = [[[n for n, k in zip(lengths, share(lengths)) if k] for lengths in file_lengths] for share in shares]
    assert kept == [[[509_431], [552_915, 500_000]], [[390_569], [2_897_085]]]
    learn_vocabulary(files, tmp_path / "one", cycles=600, split_spec=bundled.SPLIT_SPEC, engine="compact",
                     progress=False)
    learn_vocabulary(files, tmp_path / "two", cycles=600, split_spec=bundled.SPLIT_SPEC, workers=2, progress=False)
    for name in ("tokenizer.json", "merges.tsv"):
        assert (tmp_path / "one" / name).read_text() == (tmp_path / "two" / name).read_text()


@pytest.mark.slow  # several JAX processes; the default suite keeps the two-worker equivalence
def test_two_hosts_commands_follow_the_tie_rule_across_workers(tmp_path, bundled_genome):
    """The documented multi-host command, both ranks on localhost: real 1.5 kb stretches and runs as
    separate records, split over 2 workers; 150 cycles, more than 20 of them ties, whose counts sum
    the two workers' pairs; merges and counts equal the pure-Python reference's."""
    contigs = [bundled_genome.bases("chr20", s, s + 1500) for s in (33_000_000, 35_000_000, 36_200_000)]
    contigs += ["A" * 4, "A" * 5, "T" * 17, "ACACACACA", "AAAAGAAAAAGAAAAAAG"]
    expected, ties = reference_bpe(contigs, 150)
    assert ties > 20
    shares = [ContigShares(2, rank)([len(c) for c in contigs]) for rank in (0, 1)]
    assert all(any(s) for s in shares) and not any(a and b for a, b in zip(*shares))
    fasta = write_fasta(tmp_path / "ties.fa", [(f"contig{i}", c) for i, c in enumerate(contigs)])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        coordinator = f"127.0.0.1:{probe.getsockname()[1]}"
    command = [sys.executable, "-m", "grover_jax.cli", "bpe", "--fasta", str(fasta), "--out", str(tmp_path / "two"),
               "--cycles", "150", "--learn-on", "all", "--workers", "2", "--coordinator", coordinator]
    hosts = [subprocess.Popen([*command, "--worker-rank", str(rank)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    try:
        outputs = [host.communicate(timeout=240)[0] for host in hosts]
    finally:
        for host in hosts:
            host.kill()
    assert [host.returncode for host in hosts] == [0, 0], outputs
    assert _merge_rows(tmp_path / "two") == expected


def test_bad_worker_count_is_one_line_from_the_cli(tmp_path, capsys):
    assert main(["bpe", "--out", str(tmp_path / "out"), "--workers", "0"]) == 2
    assert capsys.readouterr().err == "grover: error: --workers 0: must be >= 1\n"


@pytest.mark.parametrize("engine_args", [["--engine", "compact"], ["--workers", "2"]])
def test_more_cycles_than_uint16_ids_hold_is_one_line_and_writes_nothing(tmp_path, capsys, engine_args):
    assert main(["bpe", "--out", str(tmp_path / "out"), "--cycles", "70000", *engine_args]) == 2
    assert capsys.readouterr().err == ("grover: error: --cycles 70000: the compact engine (and its workers) holds "
                                       "at most 65,530 cycles in uint16 ids; use --engine linked\n")
    assert not (tmp_path / "out").exists()


def test_an_idle_worker_changes_nothing(bundled_genome):
    """More workers than contigs (3 workers, 2 chromosome slices): the learner run in 3 threads
    with an exact summing barrier gives learn_bpe_compact's merges and token counts."""
    slices = [(33_000_000, 33_200_000), (36_000_000, 36_080_000)]
    contigs = [_codes(bundled_genome.bases("chr20", s, e)) for s, e in slices]
    expected = learn_bpe_compact([chromosome_tokens([c]) for c in contigs], 120, progress=False)
    workers = 3
    shares = [ContigShares(workers, rank)([len(c) for c in contigs]) for rank in range(workers)]
    assert not any(shares[2])
    barrier = threading.Barrier(workers)
    posted: list = [None] * workers

    def worker(rank: int, results: list) -> None:
        def sum_over_workers(values: np.ndarray) -> np.ndarray:
            posted[rank] = values
            barrier.wait()
            total = np.sum(posted, axis=0)
            barrier.wait()
            return total

        own = [chromosome_tokens([c]) for c, keep in zip(contigs, shares[rank]) if keep]
        results[rank] = learn_bpe_shared(own, 120, sum_over_workers, progress=False, threads=1)

    results: list = [None] * workers
    threads = [threading.Thread(target=worker, args=(r, results)) for r in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        assert result.merges == expected.merges and result.tokens == expected.tokens
        assert np.array_equal(result.token_counts, expected.token_counts) and result.n_bases == expected.n_bases


def test_contig_shares_split_each_file_longest_first_and_carry_the_loads_over():
    ranks = [ContigShares(2, rank) for rank in (0, 1)]
    first, second = [5, 9, 3], [4, 4]
    # 9 -> worker 0 (equal loads: lowest rank), 5 -> 1, 3 -> 1 (5 < 9)
    assert [r(first) for r in ranks] == [[False, True, False], [True, False, True]]
    # loads 9 and 8 carried over: the first 4 -> 1 (8 < 9), the second -> 0 (9 < 12)
    assert [r(second) for r in ranks] == [[False, True], [True, False]]


@pytest.mark.parametrize("settings, message", [
    ({"workers": 0}, "--workers 0: must be >= 1"),
    ({"workers": 2, "worker_rank": 2, "coordinator": "host0:1234"}, "--worker-rank 2: must be in 0..1"),
    ({"workers": 2, "worker_rank": 1}, "--worker-rank needs --coordinator HOST:PORT"),
    ({"workers": 2, "coordinator": "host0:1234"}, "--coordinator needs --worker-rank"),
    ({"workers": 2, "engine": "linked"}, "--engine linked runs in one process"),
])
def test_unusable_worker_settings_are_refused_in_one_line(tmp_path, settings, message):
    with pytest.raises(BpeWorkersError, match=message) as refused:
        learn_vocabulary(None, tmp_path / "out", cycles=5, progress=False, **settings)
    assert "\n" not in str(refused.value) and not (tmp_path / "out").exists()


def test_input_the_workers_refuse_is_one_line_and_writes_nothing(tmp_path):
    """A split naming a chromosome no file holds fails in every worker after they have started: the
    launcher stops them and reports worker 0's own message."""
    with pytest.raises(BpeWorkersError, match=r"^BPE worker 0 of 2: .*chr7") as refused:
        learn_vocabulary(None, tmp_path / "out", cycles=5, split_spec="valid=chr7", workers=2, progress=False)
    assert "\n" not in str(refused.value) and not (tmp_path / "out").exists()
