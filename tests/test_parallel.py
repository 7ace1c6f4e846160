"""Sharding changes where numbers are computed, never the numbers."""

import socket
import subprocess
import sys
from pathlib import Path

import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from grover_jax.configs import tiny
from grover_jax import parallel, train
from grover_jax.model import make_model

WORKER = Path(__file__).with_name("parallel_worker.py")
REPO = WORKER.parent.parent


def mesh_config(data: int, fsdp: int, tensor: int, dcn_data: int = 1) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {"data": data, "fsdp": fsdp, "tensor": tensor, "dcn_data": dcn_data}
    )


def test_mesh_shape_fills_the_minus_one_axis():
    assert parallel.mesh_shape(mesh_config(2, -1, 2), 8) == (2, 2, 2)
    assert parallel.mesh_shape(mesh_config(-1, 1, 1), 8) == (8, 1, 1)
    assert parallel.mesh_shape(mesh_config(1, -1, 1, dcn_data=2), 8) == (1, 4, 1)


def test_mesh_shape_refuses_a_product_that_is_not_the_device_count():
    with pytest.raises(parallel.MeshConfigError, match=r"2×2×1 = 4 but there are 8 devices"):
        parallel.mesh_shape(mesh_config(2, 2, 1), 8)
    with pytest.raises(parallel.MeshConfigError, match="at most one may be -1"):
        parallel.mesh_shape(mesh_config(-1, -1, 1), 8)


def test_rules_shard_parameters_by_name_and_batches_over_data_and_fsdp():
    config = tiny.get_config()
    mesh = parallel.make_mesh(mesh_config(1, 1, 1))
    sharding = train.train_state_sharding(
        make_model(config.model, 609), train.make_optimizer(config.train), mesh
    )
    layer = sharding.params["bert"]["encoder"]["layer"]["0"]
    assert layer["attention"]["self"]["query"]["kernel"].spec == P("fsdp", "tensor", None)
    assert layer["intermediate"]["dense"]["kernel"].spec == P("fsdp", "tensor")
    assert layer["output"]["dense"]["kernel"].spec == P("tensor", "fsdp")
    assert sharding.params["bert"]["embeddings"]["word_embeddings"]["embedding"].spec == P(
        None, "fsdp"
    )
    # Adam moments are sharded like the parameters they follow.
    adam_mu = sharding.opt_state[1][0].mu
    assert adam_mu["bert"]["encoder"]["layer"]["0"]["attention"]["self"]["query"][
        "kernel"
    ].spec == P("fsdp", "tensor", None)
    assert parallel.batch_sharding(mesh).spec == P(("data", "fsdp"))


def run_workers(tmp_path: Path, name: str, *worker_args: list[str]) -> dict[str, np.ndarray]:
    """Start one worker per argument list (concurrently: multi-process runs need each other)."""
    out = tmp_path / f"{name}.npz"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(out), str(tmp_path / f"{name}_ckpt"), *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for args in worker_args
    ]
    logs = [proc.communicate(timeout=240)[0] for proc in procs]
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log[-3000:]
    return dict(np.load(out))


@pytest.fixture(scope="module")
def single_device(tmp_path_factory) -> dict[str, np.ndarray]:
    return run_workers(
        tmp_path_factory.mktemp("single"), "single", ["--devices", "1", "--mesh", "1,1,1"]
    )


def assert_same_training(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(other["n_targets"], reference["n_targets"])
    np.testing.assert_allclose(other["loss"], reference["loss"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(other["grad_norm"], reference["grad_norm"], rtol=1e-5, atol=1e-6)
    assert other["restore_identical"]
    params = [k for k in reference if k.startswith("param")]
    assert params and set(params) == {k for k in other if k.startswith("param")}
    for key in params:
        np.testing.assert_allclose(other[key], reference[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_eight_fake_devices_train_like_one(tmp_path, single_device):
    sharded = run_workers(tmp_path, "sharded", ["--devices", "8", "--mesh", "2,2,2"])
    assert sharded["num_devices"] == 8
    assert_same_training(single_device, sharded)


def test_dropout_masks_do_not_depend_on_the_sharding(tmp_path, single_device):
    # Hashed dropout masks are functions of each element's global index, so 8 sharded devices
    # draw the masks one device draws.
    with_dropout = ["--dropout", "0.1"]
    single = run_workers(tmp_path, "single_dropout", ["--devices", "1", "--mesh", "1,1,1", *with_dropout])
    sharded = run_workers(tmp_path, "sharded_dropout", ["--devices", "8", "--mesh", "2,2,2", *with_dropout])
    assert not np.allclose(single["loss"], single_device["loss"])  # dropout was on
    assert_same_training(single, sharded)


def test_two_processes_with_gloo_train_like_one(tmp_path, single_device):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Data parallel across the two processes (a hybrid ICI×DCN mesh), fsdp×tensor within each.
    common = [
        "--devices",
        "4",
        "--mesh",
        "1,2,2",
        "--dcn-data",
        "2",
        "--coordinator",
        f"127.0.0.1:{port}",
        "--num-processes",
        "2",
    ]
    multi = run_workers(
        tmp_path, "multi", [*common, "--process-id", "0"], [*common, "--process-id", "1"]
    )
    assert multi["num_devices"] == 8
    assert_same_training(single_device, multi)
