"""The sanity gate: real sequence in tandem copies, where neighbours determine every masked token."""

import pytest

from grover_jax.genome.fasta import read_fasta
from grover_jax.programs.copy_sanity import (
    GATE_MIN_TOP1,
    GATE_STEPS,
    run_copy_sanity,
    write_tandem_copies,
)


def test_tandem_copies_are_real_units_repeated_in_new_orders(tmp_path, bundled_genome):
    fasta = write_tandem_copies(tmp_path / "copies.fa", unit_bases=40, copies=8, n_units=16, train_orders=2)
    records = {record.chromosome: record.sequence.tobytes().decode() for record in read_fasta(fasta)}
    train, valid = records["copies_train"], records["copies_valid"]
    assert len(train) == 2 * 16 * 8 * 40 and len(valid) == 16 * 8 * 40
    blocks = [valid[i: i + 320] for i in range(0, len(valid), 320)]
    units = [block[:40] for block in blocks]
    assert all(block == unit * 8 for block, unit in zip(blocks, units))
    # Real sequence: each unit is a piece of the bundled genome, and no unit is lost or invented.
    slice_bases = bundled_genome.bases("chr20", 32_000_000, 32_100_000)
    assert all(unit in slice_bases for unit in units)
    train_units = [train[i: i + 40] for i in range(0, len(train), 320)]
    assert sorted(train_units[:16]) == sorted(units) == sorted(train_units[16:])
    assert train_units[:16] != units and train_units[16:] != units  # other orders


@pytest.mark.slow
def test_the_tiny_encoder_fills_in_tandem_copies(tmp_path):
    """About ten CPU-minutes: the same gate `scripts/reproduce.py` runs before any experiment."""
    result = run_copy_sanity(tmp_path, num_steps=GATE_STEPS)
    assert result["ngram_top1"] > 0.9  # the neighbours do determine the targets
    assert result["model_top1"] >= GATE_MIN_TOP1
