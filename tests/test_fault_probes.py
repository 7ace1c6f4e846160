"""Bad input through `grover` as a user types it: exactly one stderr line naming the file, line or
field, the CLI's user-error exit code, no traceback, no output folder that looks complete, and the
input files byte for byte as they were.

Cases that used to crash the interpreter (the compiled BPE core) run in a child process, so a
regression fails this test instead of killing the test run; the rest call `main` in-process."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grover_jax import bundled
from grover_jax.cli import main

USER_ERROR = 2  # cli.main's exit code for USER_ERRORS and OSError


def grover_process(*args: str) -> tuple[int, str]:
    result = subprocess.run([sys.executable, "-m", "grover_jax.cli", *args], capture_output=True, text=True,
                            check=False)
    return result.returncode, result.stderr


def grover(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(args))
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, stderr: str, *names: str, exit_code: int = USER_ERROR) -> str:
    """The exit code, one `grover: error:` line naming each of `names`, and no traceback (progress
    bars of the work done before the error aside)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if "%|" not in line]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("grover: error: "), lines[0]
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    assert code == exit_code, (code, stderr)
    return lines[0]


def fingerprint(*paths: Path) -> dict[str, str]:
    """sha256 of every file under `paths` (files or folders), keyed by path: the inputs, before and after."""
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")))]
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def assert_nothing_complete(out: Path) -> None:
    """No output that a later command could take for a finished one: the folder is absent or empty."""
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


def real_bases(n: int, start: int = 33_000_000) -> str:
    from grover_jax.genome import read_fasta

    record = read_fasta(bundled.FASTA, keep_soft_mask=False)[0]
    return record.sequence[start - record.offset : start - record.offset + n].tobytes().decode()


def write_fasta(path: Path, records: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f">{header}\n{sequence}\n" for header, sequence in records))
    return path


@pytest.fixture(scope="module")
def vocabulary(tmp_path_factory) -> Path:
    """A 3-cycle vocabulary learned on 2 kb of real chr20, for the `grover store` probes."""
    from grover_jax.programs.vocabulary import learn_vocabulary

    root = tmp_path_factory.mktemp("vocabulary")
    fasta = write_fasta(root / "chr20.fa", [("chr20", real_bases(2_000))])
    return learn_vocabulary([str(fasta)], root / "vocab", cycles=3, progress=False).parent


# --- 1. sizes and empty inputs the compiled BPE core must never see ------------------------------------


@pytest.mark.parametrize(("stage", "cycles"), [("bpe", "-3"), ("bpe", "-5"), ("bpe", "0"), ("run", "-3"),
                                               ("run", "0")])  # `run --cycles 0` used to mean 600
def test_a_cycle_count_below_one_is_refused_before_any_work(stage, cycles, tmp_path):
    out = tmp_path / "out"
    where = ["--out", str(out)] if stage == "bpe" else ["--workdir", str(out)]
    code, stderr = grover_process(stage, "--cycles", cycles, *where)
    assert_one_line_error(code, stderr, f"--cycles {cycles}")
    assert not out.exists()


def test_a_split_spec_that_empties_train_is_refused_naming_the_spec_and_file(tmp_path):
    before = fingerprint(bundled.FASTA)
    code, stderr = grover_process("bpe", "--splits", "valid=chr20", "--cycles", "5", "--out", str(tmp_path / "v"))
    assert_one_line_error(code, stderr, "'valid=chr20'", bundled.FASTA.name, "train split")
    assert_nothing_complete(tmp_path / "v")
    assert fingerprint(bundled.FASTA) == before


@pytest.mark.parametrize("engine", ["linked", "compact"])
def test_a_fasta_of_only_n_is_refused_naming_the_file(engine, tmp_path):
    fasta = write_fasta(tmp_path / "onlyN.fa", [("chr20", "N" * 500), ("chr21", "NNNNRYN" * 10)])
    before = fingerprint(fasta)
    code, stderr = grover_process("bpe", "--fasta", str(fasta), "--engine", engine, "--out", str(tmp_path / "v"))
    assert_one_line_error(code, stderr, str(fasta), "no A, C, G or T base")
    assert_nothing_complete(tmp_path / "v")
    assert fingerprint(fasta) == before


def test_a_token_store_of_only_n_is_refused(vocabulary, capsys, tmp_path):
    fasta = write_fasta(tmp_path / "onlyN.fa", [("chr20", "N" * 500)])
    code, stderr = grover(capsys, "store", "--fasta", str(fasta), "--tokenizer", str(vocabulary),
                          "--out", str(tmp_path / "store"))
    assert_one_line_error(code, stderr, str(fasta), "nothing to tokenize")
    assert_nothing_complete(tmp_path / "store")


# --- 3. two records of one name in one file --------------------------------------------------------


@pytest.mark.parametrize("engine", ["linked", "compact"])
def test_a_record_name_used_twice_in_one_file_is_refused_at_its_line(engine, capsys, tmp_path):
    fasta = write_fasta(tmp_path / "dup.fa", [("chr20", real_bases(300)), ("chr20", real_bases(300, 34_000_000))])
    before = fingerprint(fasta)
    code, stderr = grover(capsys, "bpe", "--fasta", str(fasta), "--engine", engine, "--cycles", "3",
                          "--out", str(tmp_path / "v"))
    line = assert_one_line_error(code, stderr, f"{fasta} line 3", "'chr20'", "line 1")
    assert "duplicate record name" in line
    assert_nothing_complete(tmp_path / "v")
    assert fingerprint(fasta) == before


def test_the_same_chromosome_spelled_two_ways_in_one_file_is_refused(capsys, tmp_path):
    fasta = write_fasta(tmp_path / "dup.fa", [("chr20", real_bases(300)), ("20", real_bases(300, 34_000_000))])
    code, stderr = grover(capsys, "bpe", "--fasta", str(fasta), "--cycles", "3", "--out", str(tmp_path / "v"))
    assert_one_line_error(code, stderr, f"{fasta} line 3", "overlaps 'chr20'")
    assert_nothing_complete(tmp_path / "v")


def test_disjoint_regions_of_one_chromosome_in_one_file_are_still_accepted(capsys, tmp_path):
    fasta = write_fasta(tmp_path / "regions.fa", [("chr20:33000001-33000300", real_bases(300)),
                                                  ("chr20:34000001-34000300", real_bases(300, 34_000_000))])
    code, _ = grover(capsys, "bpe", "--fasta", str(fasta), "--cycles", "3", "--out", str(tmp_path / "v"))
    assert code == 0 and (tmp_path / "v" / "tokenizer.json").exists()


# --- 6. a split naming chromosomes the FASTA lacks --------------------------------------------------


@pytest.mark.parametrize("command", [["bpe", "--engine", "linked"], ["bpe", "--engine", "compact"],
                                     ["store"], ["store", "--sharded"]])
def test_a_split_naming_a_missing_chromosome_is_refused_naming_the_files_chromosomes(
    command, vocabulary, capsys, tmp_path
):
    fasta = write_fasta(tmp_path / "chr20.fa", [("chr20", real_bases(2_000))])
    if command[0] == "store":
        command = [*command, "--tokenizer", str(vocabulary)]
    before = fingerprint(fasta)
    code, stderr = grover(capsys, *command, "--fasta", str(fasta), "--splits", "valid=chr21;test=chr22",
                          "--out", str(tmp_path / "out"))
    line = assert_one_line_error(code, stderr, "chr21, chr22", str(fasta))
    assert "chromosomes: chr20" in line
    assert_nothing_complete(tmp_path / "out")
    assert fingerprint(fasta) == before


# --- 4, 5, 7. `grover data fetch`: never touch the source, never write outside --out, damaged manifests ----


@pytest.fixture
def source_folder(tmp_path) -> Path:
    """A local source as `grover data fetch` takes it: one real gzipped chr20 stretch and its md5 list."""
    import gzip

    folder = tmp_path / "source"
    folder.mkdir()
    data = gzip.compress(f">chr20\n{real_bases(5_000)}\n".encode(), mtime=0)
    (folder / "chr20.fa.gz").write_bytes(data)
    (folder / "md5sum.txt").write_text(f"{hashlib.md5(data).hexdigest()}  chr20.fa.gz\n")
    return folder


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "file"])
def test_fetching_a_folder_into_itself_is_refused_and_moves_nothing(spelling, source_folder, capsys, tmp_path):
    source, out = str(source_folder), source_folder
    if spelling == "dotdot":
        out = source_folder / ".." / source_folder.name
    elif spelling == "symlink":
        out = tmp_path / "link"
        out.symlink_to(source_folder)
    elif spelling == "file":
        source = str(source_folder / "chr20.fa.gz")
    before = fingerprint(source_folder)
    for _ in range(2):  # the second run used to fail on the first one's `.part`
        code, stderr = grover(capsys, "data", "fetch", source, "--out", str(out), "--quiet")
        assert_one_line_error(code, stderr, f"--out {out}", "source's own folder")
    assert fingerprint(source_folder) == before
    assert sorted(p.name for p in source_folder.iterdir()) == ["chr20.fa.gz", "md5sum.txt"]


@pytest.mark.parametrize("listed", ["../evil.fa.gz", "/tmp/evil.fa.gz", "sub/evil.fa.gz", ".."])
def test_a_listing_naming_a_path_is_refused_and_nothing_is_written(listed, source_folder, capsys, tmp_path):
    data = (source_folder / "chr20.fa.gz").read_bytes()
    (tmp_path / "evil.fa.gz").write_bytes(data)  # what `source/../evil.fa.gz` would copy
    (source_folder / "md5sum.txt").write_text(f"{hashlib.md5(data).hexdigest()}  chr20.fa.gz\n"
                                              f"{hashlib.md5(data).hexdigest()}  {listed}\n")
    before = fingerprint(tmp_path)
    out = tmp_path / "out" / "genome"
    code, stderr = grover(capsys, "data", "fetch", str(source_folder), "--out", str(out), "--quiet")
    assert_one_line_error(code, stderr, f"{source_folder / 'md5sum.txt'} line 2", repr(listed), "not a plain file name")
    assert not (tmp_path / "out").exists()
    assert fingerprint(tmp_path) == before


def test_a_served_listing_naming_a_path_is_refused_over_http(source_folder, capsys, tmp_path):
    from test_fetch import GenomeServer

    data = (source_folder / "chr20.fa.gz").read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    server = GenomeServer({"chr20.fa.gz": data, "evil.fa.gz": data,
                           "md5sum.txt": f"{md5}  chr20.fa.gz\n{md5}  ../evil.fa.gz\n".encode()})
    try:
        out = tmp_path / "out" / "genome"
        code, stderr = grover(capsys, "data", "fetch", server.url, "--out", str(out), "--quiet")
    finally:
        server.close()
    assert_one_line_error(code, stderr, "md5sum.txt line 2", "'../evil.fa.gz'")
    assert not (tmp_path / "out").exists()
    assert [name for name, _ in server.requests] == ["md5sum.txt"]


CORRUPT_MANIFESTS = {
    "truncated": '{"source": "hg19", "files": [',
    "not an object": "[]",
    "row without md5": '{"source": "hg19", "files": [{"file": "chr20.fa.gz", "bytes": 1}]}',
    "row naming a path": '{"source": "hg19", "files": [{"file": "../chr20.fa.gz", "md5": "", "bytes": 1}]}',
}


@pytest.mark.parametrize("damage", sorted(CORRUPT_MANIFESTS))
@pytest.mark.parametrize("command", ["fetch from", "fetch into", "bpe"])
def test_a_damaged_manifest_is_named_in_one_line(command, damage, source_folder, capsys, tmp_path):
    """A fetched folder (manifest.json, no md5sum.txt) read as a source, as a destination, as --fasta."""
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    (fetched / "chr20.fa.gz").write_bytes((source_folder / "chr20.fa.gz").read_bytes())
    (fetched / "manifest.json").write_text(CORRUPT_MANIFESTS[damage])
    before = fingerprint(fetched, source_folder)
    out = tmp_path / "out"
    if command == "fetch from":
        args = ["data", "fetch", str(fetched), "--out", str(out), "--quiet"]
    elif command == "fetch into":
        args = ["data", "fetch", str(source_folder), "--out", str(fetched), "--quiet"]
    else:
        args = ["bpe", "--fasta", str(fetched), "--cycles", "3", "--out", str(out)]
    code, stderr = grover(capsys, *args)
    assert_one_line_error(code, stderr, str(fetched / "manifest.json"))
    assert fingerprint(fetched, source_folder) == before
    assert_nothing_complete(out)
    assert sorted(p.name for p in fetched.iterdir()) == ["chr20.fa.gz", "manifest.json"]


# --- 8. the file system refusing: read-only output, disk full, leftovers of failed builds -------------


def test_a_read_only_output_folder_is_one_line_naming_the_path(vocabulary, capsys, tmp_path):
    parent = tmp_path / "read_only"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("running as root: chmod does not stop root writing, so a read-only folder cannot be made")
        fasta = write_fasta(tmp_path / "chr20.fa", [("chr20", real_bases(2_000))])
        code, stderr = grover(capsys, "store", "--fasta", str(fasta), "--tokenizer", str(vocabulary),
                              "--out", str(parent / "store"))
        assert_one_line_error(code, stderr, str(parent), "Permission denied")
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o755)


def test_a_full_disk_mid_build_is_one_line_and_leaves_no_temporary_folder(vocabulary, capsys, tmp_path, monkeypatch):
    import errno
    import shutil

    def disk_full(source, target, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    # tokens.npy and starts.npy are written, then copying tokenizer.json finds the disk full
    monkeypatch.setattr(shutil, "copyfile", disk_full)
    fasta = write_fasta(tmp_path / "chr20.fa", [("chr20", real_bases(2_000))])
    out = tmp_path / "out" / "store"
    code, stderr = grover(capsys, "store", "--fasta", str(fasta), "--tokenizer", str(vocabulary), "--out", str(out))
    line = assert_one_line_error(code, stderr, f".store.tmp-{os.getpid()}", "No space left on device")
    assert line.endswith("tokenizer.json: No space left on device")
    assert list((tmp_path / "out").iterdir()) == []


def test_leftovers_of_a_dead_build_are_swept_and_a_running_ones_are_kept(vocabulary, capsys, tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead, alive = int(finished.stdout), os.getppid()
    out = tmp_path / "store"
    for pid in (dead, alive):
        (tmp_path / f".store.tmp-{pid}").mkdir()
        (tmp_path / f".store.tmp-{pid}" / "tokens.npy").write_bytes(b"half")
    fasta = write_fasta(tmp_path / "chr20.fa", [("chr20", real_bases(2_000))])
    code, _ = grover(capsys, "store", "--fasta", str(fasta), "--tokenizer", str(vocabulary), "--out", str(out))
    assert code == 0 and (out / "index.json").exists()
    assert sorted(p.name for p in tmp_path.glob(".store.*")) == [f".store.tmp-{alive}"]


# --- 9. config values no run can use, refused before a run folder exists ------------------------------


@pytest.mark.parametrize(("stage", "override", "named"), [
    ("pretrain", "train.batch_size=0", "train.batch_size=0"),
    ("pretrain", "model.hidden_size=130", "model.num_heads=4"),
    ("pretrain", "train.eval_every=0", "train.eval_every=0"),
    ("pretrain", "data.seq_len=256", "model.max_position_embeddings=128"),
    ("run", "bpe.cycles=0", "bpe.cycles=0"),
    ("finetune", "train.batch_size=0", "train.batch_size=0"),
    ("select-vocab", "sweep.pretrain_overrides=('train.batch_size=0',)", "sweep.pretrain_overrides"),
])
def test_an_unusable_config_value_is_named_before_any_folder_is_made(stage, override, named, capsys, tmp_path):
    work = tmp_path / "work"
    where = {"pretrain": ["--workdir", str(work), "--store", str(tmp_path / "no_store")],
             "run": ["--workdir", str(work)], "select-vocab": ["--workdir", str(work)],
             "finetune": ["--checkpoint", str(tmp_path / "no_run"), "--out", str(work)]}[stage]
    code, stderr = grover(capsys, stage, *where, "--set", override)
    assert_one_line_error(code, stderr, named)
    assert not work.exists()


def test_a_negative_command_line_size_is_named(capsys, tmp_path):
    fasta = write_fasta(tmp_path / "chr20.fa", [("chr20", real_bases(600))])
    code, stderr = grover(capsys, "predict", "--checkpoint", str(tmp_path / "no_run"), "--fasta", str(fasta),
                          "--scan", "--stride", "0", "--out", str(tmp_path / "scan.bedGraph"))
    assert_one_line_error(code, stderr, "--stride 0")
    assert not (tmp_path / "scan.bedGraph").exists()


# --- 10. an unknown fine-tuning task ------------------------------------------------------------------


@pytest.mark.parametrize("how", [["--task", "promoterz"], ["--set", "task.name=promoterz"]])
def test_an_unknown_task_is_named_before_the_checkpoint_is_read(how, capsys, tmp_path):
    code, stderr = grover(capsys, "finetune", "--checkpoint", str(tmp_path / "no_run"), *how,
                          "--out", str(tmp_path / "ft"))
    line = assert_one_line_error(code, stderr, "promoterz", "unknown task")
    assert "prom300, promscan, ctcf" in line
    assert not (tmp_path / "ft").exists()


# --- fixtures for the probes that need a model: a pretraining run of two steps --------------------------


SMALL_ENCODER = ["model.hidden_size=32", "model.num_layers=1", "model.num_heads=2", "model.intermediate_size=64",
                 "model.max_position_embeddings=64", "data.seq_len=32", "train.batch_size=8", "data.eval_batches=1",
                 "train.num_steps=2", "train.eval_every=2", "train.checkpoint_every=2", "train.warmup_steps=1"]


@pytest.fixture(scope="module")
def small_store(vocabulary, tmp_path_factory) -> Path:
    """30 kb of real chr20 (5 kb valid, 5 kb test) tokenized with the 3-cycle vocabulary."""
    from grover_jax.programs.vocabulary import build_token_store

    root = tmp_path_factory.mktemp("small_store")
    fasta = write_fasta(root / "chr20.fa", [("chr20", real_bases(30_000))])
    return build_token_store([str(fasta)], vocabulary / "tokenizer.json", root / "store",
                             "valid=chr20:20001-25000;test=chr20:25001-30000", progress=False)


@pytest.fixture(scope="module")
def pretrained_run(small_store, tmp_path_factory) -> Path:
    """A pretraining run folder (config.json, tokenizer.json, checkpoints/) of a one-layer encoder
    trained two steps: enough for every program that starts from a pretrained model to start."""
    from grover_jax.configuration import load_config
    from grover_jax.programs.pretrain import pretrain

    run = tmp_path_factory.mktemp("pretrained") / "run"
    launch = Path.cwd()
    os.chdir(small_store.parent)  # as a user types it: `grover pretrain --store store` beside the store
    try:
        pretrain(load_config("tiny", SMALL_ENCODER), run, small_store.name, progress=False)
    finally:
        os.chdir(launch)
    return run


@pytest.fixture
def task_cache(tmp_path, monkeypatch) -> Path:
    """The task-dataset cache of these tests (not the user's ~/.cache)."""
    monkeypatch.setenv("GROVER_JAX_TASKS", str(tmp_path / "task_cache"))
    return tmp_path / "task_cache"


# --- 11. damaged files a program reads: a store's index.json, a tokenizer.json --------------------------


DAMAGED_INDEXES = {
    "not JSON": lambda index: "{'format': ",
    "not an object": lambda index: "[1, 2]",
    "no n_tokens": lambda index: {k: v for k, v in index.items() if k != "n_tokens"},
    "n_tokens a string": lambda index: {**index, "n_tokens": "many"},
    "a contig without end": lambda index: {**index, "contigs": [{k: v for k, v in c.items() if k != "end"}
                                                                for c in index["contigs"]]},
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_INDEXES))
def test_a_damaged_store_index_is_named_before_a_run_folder_is_made(damage, small_store, capsys, tmp_path):
    import json
    import shutil

    store = tmp_path / "store"
    shutil.copytree(small_store, store)
    damaged = DAMAGED_INDEXES[damage](json.loads((store / "index.json").read_text()))
    (store / "index.json").write_text(damaged if isinstance(damaged, str) else json.dumps(damaged))
    before = fingerprint(store)
    code, stderr = grover(capsys, "pretrain", "--workdir", str(tmp_path / "run"), "--store", str(store),
                          *[a for override in SMALL_ENCODER for a in ("--set", override)])
    assert_one_line_error(code, stderr, str(store / "index.json"))
    assert not (tmp_path / "run").exists()
    assert fingerprint(store) == before


NOT_BPE_TOKENIZERS = {
    "a list": "[]",
    "vocab a list": '{"model": {"type": "BPE", "vocab": ["A", "C"], "merges": []}}',
    "WordPiece": '{"model": {"type": "WordPiece", "vocab": {"A": 0, "C": 1, "G": 2, "T": 3}}}',
    "a field the tokenizers library refuses": '{"model": {"type": "BPE", "vocab": {"A": 0, "C": 1, "G": 2, "T": 3},'
                                              ' "merges": [], "dropout": "some"}}',
}


@pytest.mark.parametrize("damage", sorted(NOT_BPE_TOKENIZERS))
def test_a_tokenizer_json_that_is_not_a_bpe_tokenizer_is_named(damage, capsys, tmp_path):
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text(NOT_BPE_TOKENIZERS[damage])
    fasta = write_fasta(tmp_path / "chr20.fa", [("chr20", real_bases(600))])
    code, stderr = grover(capsys, "store", "--fasta", str(fasta), "--tokenizer", str(tokenizer),
                          "--out", str(tmp_path / "store"))
    assert_one_line_error(code, stderr, str(tokenizer), "tokenizer")
    assert_nothing_complete(tmp_path / "store")


# --- 12. fine-tuning: the checkpoint checked first, task data that cannot be read, nothing left behind ---


def test_finetune_with_a_wrong_checkpoint_leaves_nothing_in_the_current_folder(task_cache, capsys, tmp_path,
                                                                              monkeypatch):
    launch = tmp_path / "launch"
    launch.mkdir()
    monkeypatch.chdir(launch)
    code, stderr = grover(capsys, "finetune", "--checkpoint", str(tmp_path / "no_run"), "--out", "ft")
    assert_one_line_error(code, stderr, str(tmp_path / "no_run"), "not a pretraining run folder")
    assert list(launch.iterdir()) == []
    assert not task_cache.exists()


def _truncated_gzip(path: Path, text: str) -> Path:
    import gzip

    path.write_bytes(gzip.compress(text.encode(), mtime=0)[:-12])
    return path


def _labelled_csv(rows: int = 30) -> str:
    return "sequence,label\n" + "".join(f"{real_bases(200, 33_000_000 + 1000 * i)},{i % 2}\n" for i in range(rows))


def _labelled_bed(rows: int = 30) -> str:
    return "".join(f"chr20\t{33_000_000 + 1000 * i}\t{33_000_300 + 1000 * i}\t{'AB'[i % 2]}\n" for i in range(rows))


BAD_TASK_FILES = {
    "truncated csv.gz": lambda folder: ["--task", str(_truncated_gzip(folder / "labels.csv.gz", _labelled_csv()))],
    "truncated bed.gz": lambda folder: ["--fasta", str(bundled.FASTA), "--bed",
                                        str(_truncated_gzip(folder / "labels.bed.gz", _labelled_bed()))],
    "non-UTF-8 bed": lambda folder: ["--fasta", str(bundled.FASTA), "--bed", str(_write_bytes(
        folder / "labels.bed", _labelled_bed(3).encode() + b"chr20\t33100000\t33100300\tn\xe9gatif\n"))],
}


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("damage", sorted(BAD_TASK_FILES))
def test_unreadable_task_data_is_one_line_and_builds_no_dataset(damage, pretrained_run, task_cache, capsys,
                                                                tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args = BAD_TASK_FILES[damage](inputs)
    before = fingerprint(inputs, pretrained_run)
    code, stderr = grover(capsys, "finetune", "--checkpoint", str(pretrained_run), *args,
                          "--out", str(tmp_path / "ft"))
    line = assert_one_line_error(code, stderr, str(next(inputs.iterdir())))
    assert ("line 4" in line and "not UTF-8" in line) if damage == "non-UTF-8 bed" else "truncated gzip" in line
    assert not (tmp_path / "ft").exists()
    assert not task_cache.exists()
    assert fingerprint(inputs, pretrained_run) == before


def test_a_task_error_is_the_only_line_a_user_sees(pretrained_run, tmp_path):
    """As typed in a shell: no absl warning dumping the dataset's BuilderConfig before the error."""
    labels = tmp_path / "labels.csv"
    labels.write_text("sequence,label\n" + "".join(f"{real_bases(100, 33_000_000 + 500 * i)},same\n"
                                                   for i in range(20)))
    env_cache = {"GROVER_JAX_TASKS": str(tmp_path / "task_cache")}
    result = subprocess.run([sys.executable, "-m", "grover_jax.cli", "finetune", "--checkpoint", str(pretrained_run),
                             "--task", str(labels), "--out", str(tmp_path / "ft")],
                            capture_output=True, text=True, check=False, env={**os.environ, **env_cache})
    assert_one_line_error(result.returncode, result.stderr, str(labels), "one class")
    assert "Downloading" not in result.stdout
    assert not (tmp_path / "ft").exists() and not (tmp_path / "task_cache").exists()


def test_a_csv_sequence_longer_than_the_csv_modules_field_limit_is_read_whole(tmp_path):
    from grover_jax.data.tasks.user import read_csv_task

    long = real_bases(150_000, 33_100_000)  # the csv module's default cap is 131,072 characters
    labels = tmp_path / "labels.csv"
    labels.write_text(f"sequence,label\n{long},1\n{real_bases(300)},0\n")
    examples, names = read_csv_task(labels)
    assert [len(e.sequence) for e in examples] == [150_000, 300] and names == ["0", "1"]
    assert examples[0].sequence == long.upper()


# --- 13. paths a run folder records resolve from any folder -------------------------------------------


def test_a_run_launched_with_a_relative_store_is_usable_from_another_folder(pretrained_run, small_store, capsys,
                                                                            tmp_path, monkeypatch):
    import json

    assert json.loads((pretrained_run / "config.json").read_text())["data"]["store"] == str(small_store)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, stderr = grover(capsys, "mlm-eval", "--checkpoint", str(pretrained_run), "--windows", "2")
    assert code == 0, stderr
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("recorded", ["relative to the run folder", "relative to the launch folder"])
def test_a_store_path_recorded_relative_resolves_as_before(recorded, pretrained_run, small_store, tmp_path,
                                                          monkeypatch):
    """Run folders written before paths were recorded absolute: a path relative to the run folder
    resolves from anywhere; one relative to where pretraining was launched, from there."""
    import json
    import shutil

    from grover_jax.runs import load_pretrained

    run = tmp_path / "runs" / "default" / "pretrain"
    shutil.copytree(pretrained_run, run)
    launch = tmp_path / "launch"
    launch.mkdir()
    (tmp_path / "runs" / "default" / "store").symlink_to(small_store)
    (launch / "my_store").symlink_to(small_store)
    config = json.loads((run / "config.json").read_text())
    config["data"]["store"] = "../store" if recorded == "relative to the run folder" else "my_store"
    (run / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(launch)
    store = load_pretrained(run).config.data.store
    assert Path(store).resolve() == small_store.resolve()
    if recorded == "relative to the run folder":
        monkeypatch.chdir(tmp_path)
        assert Path(load_pretrained(run).config.data.store).resolve() == small_store.resolve()


# --- 14. a file the server does not have is reported at once, not retried ---------------------------


def test_a_listed_file_the_server_lacks_is_one_line_after_one_request(source_folder, capsys, tmp_path):
    import time

    from test_fetch import GenomeServer

    md5sum = (source_folder / "md5sum.txt").read_bytes()
    server = GenomeServer({"md5sum.txt": md5sum})  # chr20.fa.gz is listed but answers 404
    try:
        started = time.monotonic()
        code, stderr = grover(capsys, "data", "fetch", server.url, "--out", str(tmp_path / "genome"), "--quiet")
        seconds = time.monotonic() - started
    finally:
        server.close()
    assert_one_line_error(code, stderr, "chr20.fa.gz", "HTTP 404")
    assert [name for name, _ in server.requests] == ["md5sum.txt", "chr20.fa.gz"]  # no retries of a 404
    assert seconds < 5  # the retries slept 1 + 2 + 4 s
    assert not any(p.name.endswith(".fa.gz") for p in (tmp_path / "genome").glob("*"))


# --- 15. a damaged pretraining run folder ------------------------------------------------------------


@pytest.mark.parametrize("damage", ["config.json not JSON", "config.json without a model", "checkpoint arrays"])
def test_a_damaged_run_folder_is_one_line_naming_the_file(damage, pretrained_run, capsys, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(pretrained_run, run)
    if damage == "config.json not JSON":
        (run / "config.json").write_text('{"model": {"hidden_size": 32,')
        named = run / "config.json"
    elif damage == "config.json without a model":
        (run / "config.json").write_text('{"data": {"store": ""}}')
        named = run / "config.json"
    else:
        for array_file in (run / "checkpoints" / "2" / "state").rglob("*"):
            if array_file.is_file() and array_file.stat().st_size > 0:
                array_file.write_bytes(b"\0" * 16)
        named = run / "checkpoints" / "2"
    before = fingerprint(run)
    code, stderr = grover(capsys, "mlm-eval", "--checkpoint", str(run), "--windows", "2",
                          "--out", str(tmp_path / "fill_in.json"))
    assert_one_line_error(code, stderr, str(named))
    assert not (tmp_path / "fill_in.json").exists()
    assert fingerprint(run) == before


# --- 16. a fine-tuned folder: damaged, unfinished, or asked about sequences with no base ---------------


@pytest.fixture(scope="module")
def finetuned(pretrained_run, tmp_path_factory) -> Path:
    """A fine-tuned folder written by the fine-tuning's own writers (finetune.json and tokenizer.json,
    best/params.npz, results.json last): the pretrained encoder with a new two-class head, as a
    fine-tuning of no steps would leave it; results.json scores four made-up test examples."""
    import dataclasses
    import json

    from grover_jax import runs
    from grover_jax.configuration import load_config
    from grover_jax.model import BertForSequenceClassification
    from grover_jax.programs.finetune import evaluate
    from grover_jax.train.classifier import classifier_params

    pretrained = runs.load_pretrained(pretrained_run)
    config = load_config("finetune")
    folder = tmp_path_factory.mktemp("finetuned") / "ft"
    runs.start_finetuned_folder(folder, pretrained.tokenizer_path, {
        "config": json.loads(config.to_json_best_effort()),
        "encoder": dataclasses.asdict(pretrained.model_config), "num_classes": 2,
        "class_names": ["background", "promoter"]})
    model = BertForSequenceClassification(pretrained.model_config, 2, "cls")
    runs.save_best_params(folder, classifier_params(model, pretrained.encoder_params, seed=0))
    test = evaluate(np.array([0, 1, 0, 1]), np.array([[0.6, 0.4], [0.3, 0.7], [0.5, 0.5], [0.2, 0.8]]),
                    config.eval, seed=0)
    (folder / runs.RESULTS_FILE).write_text(json.dumps({"models": {"GROVER-jax (cls pooling)": {"test": test}}}))
    return folder


def copy_of(folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, tmp_path / folder.name))


def read_tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_a_record_of_only_n_is_not_scored_and_a_warning_names_it(finetuned, capsys, tmp_path):
    fasta = write_fasta(tmp_path / "gap.fa", [("gap", "N" * 300), ("real", real_bases(40)),
                                              ("ambiguous", "NRYNNSWN" * 20)])
    before = fingerprint(fasta, finetuned)
    code, stderr = grover(capsys, "predict", "--checkpoint", str(finetuned), "--fasta", str(fasta),
                          "--out", str(tmp_path / "scores.tsv"))
    assert code == 0 and "Traceback" not in stderr
    assert stderr.splitlines() == [("grover: warning: 2 of 3 sequences have no A, C, G or T base and are not "
                                    "scored (probabilities nan): gap, ambiguous")]
    header, gap, real, ambiguous = read_tsv(tmp_path / "scores.tsv")
    assert header[-2:] == ["p_background", "p_promoter"]
    assert gap[-2:] == ambiguous[-2:] == ["nan", "nan"]
    assert abs(sum(map(float, real[-2:])) - 1) < 1e-5
    assert fingerprint(fasta, finetuned) == before


@pytest.mark.parametrize("command", ["predict", "export-hf", "grover_jax.load"])
def test_a_finetuning_that_did_not_finish_is_named_in_one_warning(command, finetuned, capsys, tmp_path):
    import grover_jax

    unfinished = copy_of(finetuned, tmp_path)
    (unfinished / "results.json").unlink()  # killed before its last file
    fasta = write_fasta(tmp_path / "chr20.fa", [("chr20", real_bases(40))])
    warning = (f"grover: warning: {unfinished}: the fine-tuning did not finish (no results.json); "
               "using the best parameters it saved before it stopped")
    for run, (folder, expected) in enumerate(((unfinished, [warning]), (finetuned, []))):
        capsys.readouterr()
        if command == "predict":
            code = main(["predict", "--checkpoint", str(folder), "--fasta", str(fasta),
                         "--out", str(tmp_path / f"scores{run}.tsv")])
        elif command == "export-hf":
            code = main(["export-hf", "--checkpoint", str(folder), "--out", str(tmp_path / f"hf{run}"), "--no-check"])
        else:
            code = 0 if grover_jax.load(folder).predict([real_bases(40)]).shape == (1, 2) else 1
        assert code == 0
        assert [line for line in capsys.readouterr().err.splitlines() if "warning" in line] == expected


def _truncate(folder: Path) -> None:
    params = folder / "best" / "params.npz"
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])


def _save_params_with(change):
    def damage(folder: Path) -> None:
        from grover_jax.runs import load_params, save_params

        params = load_params(folder / "best" / "params.npz")
        change(params)
        save_params(params, folder / "best" / "params.npz")
    return damage


DAMAGED_PARAMS = {
    "truncated": (_truncate, "damaged or truncated"),
    "empty": (lambda folder: (folder / "best" / "params.npz").write_bytes(b""), "damaged or truncated"),
    "not a zip": (lambda folder: (folder / "best" / "params.npz").write_text("PK? no"), "damaged or truncated"),
    "a head of three classes": (_save_params_with(lambda p: p["classifier"].update(
        bias=np.zeros(3, np.float32))), "tensor classifier/bias has shape (3,), finetune.json implies (2,)"),
    "a tensor missing": (_save_params_with(lambda p: p["classifier"].pop("kernel")), "classifier/kernel is missing"),
}


@pytest.mark.parametrize("command", ["predict", "export-hf"])
@pytest.mark.parametrize("damage", sorted(DAMAGED_PARAMS))
def test_damaged_best_params_are_one_line_naming_the_file(damage, command, finetuned, capsys, tmp_path):
    folder = copy_of(finetuned, tmp_path)
    spoil, says = DAMAGED_PARAMS[damage]
    spoil(folder)
    fasta = write_fasta(tmp_path / "chr20.fa", [("chr20", real_bases(40))])
    before = fingerprint(folder, fasta)
    out = tmp_path / "out" / ("scores.tsv" if command == "predict" else "hf")
    args = ["--fasta", str(fasta)] if command == "predict" else ["--no-check"]
    code, stderr = grover(capsys, command, "--checkpoint", str(folder), *args, "--out", str(out))
    assert_one_line_error(code, stderr, folder / "best" / "params.npz", says)
    assert not (tmp_path / "out").exists()
    assert fingerprint(folder, fasta) == before


def _encoder(**fields):
    return lambda meta: {**meta, "encoder": {**meta["encoder"], **fields}}


CORRUPT_FINETUNE = {
    "not JSON": (lambda meta: '{"config": {', "unreadable (JSONDecodeError"),
    "not UTF-8": (lambda meta: b'{"config": "\xff"}', "unreadable (UnicodeDecodeError"),
    "a list": (lambda meta: [], "not a JSON object"),
    "no encoder": (lambda meta: {k: v for k, v in meta.items() if k != "encoder"}, "field 'encoder'"),
    "a size as text": (_encoder(hidden_size="32"), "hidden_size='32': must be a whole number"),
    "a size of 0": (_encoder(num_layers=0), "num_layers=0: must be >= 1"),
    "a dropout of 2": (_encoder(hidden_dropout=2.0), "hidden_dropout=2.0: must be in [0, 1)"),
    "an unknown encoder field": (_encoder(hiden_size=32), "unknown field(s) 'hiden_size'"),
    "heads not dividing the width": (_encoder(num_heads=3), "not divisible by model.num_heads=3"),
    "num_classes as text": (lambda meta: {**meta, "num_classes": "two"}, "field 'num_classes'='two'"),
    "class_names of another count": (lambda meta: {**meta, "class_names": ["a", "b", "c"]}, "field 'class_names'"),
    "an unknown pooling": (lambda meta: {**meta, "config": {**meta["config"], "model": {"pooling": "max"}}},
                           "field 'config.model.pooling'='max'"),
    "config not an object": (lambda meta: {**meta, "config": "cls"}, "field 'config.model.pooling'=None"),
}


@pytest.mark.parametrize("damage", sorted(CORRUPT_FINETUNE))
def test_a_corrupt_finetune_json_is_one_line_naming_the_file_and_field(damage, finetuned, capsys, tmp_path):
    import json

    folder = copy_of(finetuned, tmp_path)
    change, says = CORRUPT_FINETUNE[damage]
    damaged = change(json.loads((folder / "finetune.json").read_text()))
    if isinstance(damaged, bytes):
        (folder / "finetune.json").write_bytes(damaged)
    else:
        (folder / "finetune.json").write_text(damaged if isinstance(damaged, str) else json.dumps(damaged))
    fasta = write_fasta(tmp_path / "chr20.fa", [("chr20", real_bases(40))])
    before = fingerprint(folder, fasta)
    code, stderr = grover(capsys, "predict", "--checkpoint", str(folder), "--fasta", str(fasta),
                          "--out", str(tmp_path / "out" / "scores.tsv"))
    assert_one_line_error(code, stderr, folder / "finetune.json", says)
    assert not (tmp_path / "out").exists()
    assert fingerprint(folder, fasta) == before


def test_a_scan_window_of_zero_leaves_no_file_and_no_folder(finetuned, capsys, tmp_path):
    from grover_jax.data.tasks.errors import FinetuneError
    from grover_jax.programs.predict import predict_regions

    fasta = write_fasta(tmp_path / "chr20.fa", [("chr20", real_bases(600))])
    out = tmp_path / "out" / "scan.bedGraph"
    code, stderr = grover(capsys, "predict", "--checkpoint", str(finetuned), "--fasta", str(fasta), "--scan",
                          "--window", "0", "--out", str(out))
    assert_one_line_error(code, stderr, "--window 0")
    with pytest.raises(FinetuneError, match="--window 0 / --stride 50 must be positive"):
        predict_regions(finetuned, [str(fasta)], None, out, scan=True, window=0, stride=50)  # the Python entry
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chr20.fa"]


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_a_zero_batch_size_with_real_inputs_is_one_line_and_makes_no_folder(stage, pretrained_run, small_store,
                                                                              task_cache, capsys, tmp_path):
    before = fingerprint(small_store, pretrained_run)
    work = tmp_path / "work"
    where = (["--workdir", str(work), "--store", str(small_store)] if stage == "pretrain"
             else ["--checkpoint", str(pretrained_run), "--out", str(work)])
    code, stderr = grover(capsys, stage, *where, "--set", "train.batch_size=0")
    assert_one_line_error(code, stderr, "train.batch_size=0")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert fingerprint(small_store, pretrained_run) == before


# --- 17. an HF folder whose config.json holds a value of the wrong type --------------------------------


@pytest.fixture(scope="module")
def hf_folder(pretrained_run, tmp_path_factory) -> Path:
    """The small pretrained run exported as an HF BertForMaskedLM folder."""
    from grover_jax.interop.hf import export_masked_lm
    from grover_jax.runs import load_pretrained

    pretrained = load_pretrained(pretrained_run)
    return export_masked_lm(pretrained.params, pretrained.model_config, pretrained.tokenizer_path,
                            tmp_path_factory.mktemp("hf") / "hf")


MISTYPED_HF_FIELDS = {
    "vocab_size": ("six hundred", "vocab_size='six hundred': must be a whole number"),
    "num_hidden_layers": (1.5, "num_hidden_layers=1.5: must be a whole number"),
    "max_position_embeddings": (True, "max_position_embeddings=True: must be a whole number"),
    "num_attention_heads": (0, "num_attention_heads=0: must be >= 1"),
    "hidden_dropout_prob": ("0.1", "hidden_dropout_prob='0.1': must be a number"),
    "layer_norm_eps": (None, "layer_norm_eps=None: must be a number"),
}


@pytest.mark.parametrize("key", sorted(MISTYPED_HF_FIELDS))
def test_a_mistyped_hf_config_field_is_one_line_naming_field_and_file(key, hf_folder, capsys, tmp_path):
    import json

    folder = copy_of(hf_folder, tmp_path)
    value, says = MISTYPED_HF_FIELDS[key]
    config = json.loads((folder / "config.json").read_text())
    assert key in config  # the field is one an export writes
    (folder / "config.json").write_text(json.dumps({**config, key: value}, indent=2))
    before = fingerprint(folder)
    code, stderr = grover(capsys, "import-hf", "--hf", str(folder), "--out", str(tmp_path / "run"))
    assert_one_line_error(code, stderr, folder / "config.json", says)
    assert not (tmp_path / "run").exists()
    assert fingerprint(folder) == before
