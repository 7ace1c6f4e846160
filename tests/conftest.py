"""Shared fixtures. Tests read the bundled real chr20 slice (always present) and, where marked
`shared_data`, the project's larger real-data folder (GROVER_SHARED_DATA, by default `shared/data`
beside the repository), skipping cleanly where it is absent."""

import importlib.util
import os
from pathlib import Path

# With libtpu installed (the [tpu] extra, for `grover compile`) JAX would look for a local TPU at
# start-up, log errors and take libtpu's one-process lock; the suite runs on the CPU.
if importlib.util.find_spec("libtpu") is not None:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest

import grover_jax
from grover_jax import bundled
from grover_jax.genome import read_fasta, read_genome

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GROVER_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(relative: str) -> Path:
    """A file of the shared real-data folder, or skip the test saying what is missing (a test that
    calls this carries the `shared_data` mark; tests/test_readme.py checks)."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"needs {relative} of the shared real-data folder (GROVER_SHARED_DATA={SHARED_DATA}); absent here")
    return path


@pytest.fixture(scope="session")
def bundled_genome():
    return read_genome(bundled.FASTA, bundled.SPLIT_SPEC)


def write_fasta(path: Path, records: list[tuple[str, str]], width: int = 60) -> Path:
    lines = []
    for header, sequence in records:
        lines.append(f">{header}")
        lines.extend(sequence[i : i + width] for i in range(0, len(sequence), width))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def bundled_slice_fasta(tmp_path_factory, bundled_genome):
    """A 300 kb real slice of the bundle (chr20:33,000,001-33,300,000) as its own FASTA."""
    path = tmp_path_factory.mktemp("slice") / "chr20_33.0-33.3Mb.fa"
    return write_fasta(path, [("chr20:33000001-33300000", bundled_genome.bases("chr20", 33_000_000, 33_300_000))])


@pytest.fixture(scope="session")
def bundled_store(tmp_path_factory) -> Path:
    """The bundled genome (hg19 chr20 slice, its train/valid/test) tokenized with a 200-cycle vocabulary."""
    from grover_jax.programs.vocabulary import build_token_store, learn_vocabulary

    root = tmp_path_factory.mktemp("bundled_store")
    learn_vocabulary(None, root / "vocab", cycles=200, progress=False)
    return build_token_store(None, root / "vocab" / "tokenizer.json", root / "store", progress=False)


# A model small enough to pretrain in well under a minute on 2 cores, for downstream programs' tests.
TINY_MODEL = ["model.hidden_size=64", "model.num_layers=2", "model.num_heads=2", "model.intermediate_size=128",
              "model.max_position_embeddings=128", "data.seq_len=64", "train.batch_size=16",
              "data.eval_batches=2", "train.warmup_steps=20", "train.learning_rate=2e-3"]


@pytest.fixture(scope="session")
def pretrained_run(tmp_path_factory, bundled_store) -> Path:
    """A pretraining run folder (config.json, tokenizer.json, checkpoints/) of a tiny model trained
    300 steps on the bundled train split: the starting point of every downstream program's test."""
    from grover_jax.configuration import load_config
    from grover_jax.programs.pretrain import pretrain

    workdir = tmp_path_factory.mktemp("pretrained") / "run"
    config = load_config("tiny", TINY_MODEL + ["train.num_steps=300", "train.eval_every=150",
                                               "train.checkpoint_every=150"])
    pretrain(config, workdir, bundled_store, progress=False)
    return workdir


@pytest.fixture(scope="session")
def shipped_model():
    """The shipped masked LM (grover-small-hg19-chr20), loaded once for every test that reads it."""
    return grover_jax.load("grover-small-hg19-chr20", batch_size=8)


@pytest.fixture(scope="session")
def chr20_bases() -> str:
    """The bundled real hg19 chr20 slice (chr20:32,000,001-37,000,000) as one string."""
    return read_fasta(bundled.FASTA, keep_soft_mask=False)[0].sequence.tobytes().decode("ascii")
