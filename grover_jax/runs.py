"""Run folders as downstream programs write and read them; the only code that knows their layout.

A fine-tuned folder (`grover finetune --out`), read by `grover predict`, `grover export-hf` and
`grover_jax.load`:
    finetune.json        config, classes, encoder config, token length, task, pretrained run
    tokenizer.json       the pretrained run's tokenizer
    best/params.npz      the best classifier parameters (flattened paths -> arrays)

A pretraining run folder written from parameters alone (`grover import-hf`): config.json,
tokenizer.json and checkpoints/ with step 0 = the parameters and a fresh optimizer state, as
`grover pretrain --workdir` lays it out, so `load_pretrained` and a resumed pretraining read it.
"""

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from grover_jax.atomic_files import atomic_output, replace_folder, temporary_folder
from grover_jax.data.tasks.errors import FinetuneError
from grover_jax.model import BertConfig, make_model
from grover_jax.train import Checkpointer, TrainState, make_optimizer

FINETUNE_FILE = "finetune.json"
TOKENIZER_FILE = "tokenizer.json"
BEST_PARAMS = "best/params.npz"


# ---------------------------------------------------------------- the fine-tuned folder


@dataclasses.dataclass(frozen=True)
class Finetuned:
    """A fine-tuned folder's finetune.json, read and checked once."""

    path: Path
    meta: dict[str, Any]  # finetune.json as written
    encoder: BertConfig
    num_classes: int
    pooling: str
    class_names: list[str] | None

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER_FILE

    def params(self) -> dict:
        """The best classifier parameters (host numpy arrays)."""
        return load_params(self.path / BEST_PARAMS)


def is_finetuned_folder(path: str | Path) -> bool:
    return (Path(path) / FINETUNE_FILE).exists()


def read_finetuned(path: str | Path) -> Finetuned:
    """The fine-tuned folder at `path`; FinetuneError names a missing file or an unreadable field."""
    path = Path(path)
    for required in (FINETUNE_FILE, TOKENIZER_FILE, BEST_PARAMS):
        if not (path / required).exists():
            raise FinetuneError(f"{path}: not a fine-tuning folder ({required} is missing)")
    try:
        meta = json.loads((path / FINETUNE_FILE).read_text())
        return Finetuned(path=path, meta=meta, encoder=BertConfig(**meta["encoder"]),
                         num_classes=int(meta["num_classes"]), pooling=meta["config"]["model"]["pooling"],
                         class_names=meta.get("class_names"))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise FinetuneError(f"{path / FINETUNE_FILE}: unreadable ({type(error).__name__}: {error})") from None


def start_finetuned_folder(out: Path, tokenizer_path: Path, meta: dict[str, Any]) -> None:
    """`out` with the tokenizer and finetune.json, before training writes best/params.npz."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tokenizer_path, out / TOKENIZER_FILE)
    (out / FINETUNE_FILE).write_text(json.dumps(meta, indent=1))


def save_best_params(out: Path, params: Any) -> None:
    save_params(params, out / BEST_PARAMS)


def _flatten(params: Any) -> dict[str, np.ndarray]:
    flat = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        flat["/".join(str(k.key) for k in path)] = np.asarray(leaf)
    return flat


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def save_params(params: Any, path: Path) -> None:
    """A parameter tree as npz, written whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **_flatten(params))


def load_params(path: Path) -> dict:
    with np.load(path) as archive:
        return _unflatten({key: archive[key] for key in archive.files})


# ---------------------------------------------------------------- a pretraining run from parameters


def write_pretraining_run(out: Path, config: ml_collections.ConfigDict, tokenizer_path: Path,
                          tokenizer_sha256: str, params: Any) -> Path:
    """`out` as a pretraining run folder whose only checkpoint (step 0) holds `params` and a fresh
    optimizer state, so pretraining can resume from it; built beside `out` and swapped in."""
    temporary = temporary_folder(out)
    (temporary / "config.json").write_text(config.to_json_best_effort(indent=1))
    (temporary / TOKENIZER_FILE).write_bytes(tokenizer_path.read_bytes())
    state = TrainState.create(apply_fn=make_model(config.model).apply,
                              params=jax.tree.map(jnp.asarray, params), tx=make_optimizer(config.train))
    checkpoints = Checkpointer(temporary.absolute() / "checkpoints", config, tokenizer_sha256)
    checkpoints.save(0, state, {"step": 0, "seed": config.seed})
    checkpoints.close()
    replace_folder(temporary, out)
    return out
