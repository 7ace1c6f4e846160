"""Run folders: the only code that knows their layout, for every program that writes or reads one.

A pretraining run folder (`grover pretrain --workdir`): config.json, tokenizer.json and
checkpoints/ (train/checkpoint.py). Every program after pretraining (next-k-mer, fine-tuning,
export, the Python API, analyses) starts from `load_pretrained(path)`, where `path` is such a
folder, its `checkpoints/` folder, a HuggingFace BertForMaskedLM folder (read by interop/hf.py), or
the name of a model shipped with the package (`bundled.MODELS`, e.g. "grover-small-hg19-chr20").
Only the parameters are returned: optimizer moments stay on disk.

A fine-tuned folder (`grover finetune --out`), read by `grover predict`, `grover export-hf` and
`grover_jax.load`:
    finetune.json        config, classes, encoder config, token length, task, pretrained run
    tokenizer.json       the pretrained run's tokenizer
    best/params.npz      the best classifier parameters (flattened paths -> arrays)
    test_probabilities.npz  every model's test-split class probabilities and the labels
    results.json         written last by finetune: a folder without it is a fine-tuning that did
                         not finish (its best/params.npz is the best before it stopped)

A pretraining run folder written from parameters alone (`grover import-hf`): config.json,
tokenizer.json and checkpoints/ with step 0 = the parameters and a fresh optimizer state, as
`grover pretrain --workdir` lays it out, so `load_pretrained` and a resumed pretraining read it.
"""

import dataclasses
import functools
import hashlib
import json
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from grover_jax import bundled
from grover_jax.atomic_files import atomic_output, replace_folder, temporary_folder
from grover_jax.data.tasks.errors import FinetuneError
from grover_jax.errors import GroverError
from grover_jax.interop.errors import HfConversionError
from grover_jax.interop.hf import masked_lm_from_hf, require_special_tokens, run_config_from_hf
from grover_jax.model import BertConfig, BertForSequenceClassification, make_model
from grover_jax.model.config_values import bert_config_from_values
from grover_jax.tokenizer import load_tokenizer
from grover_jax.train import Checkpointer, TrainState, make_optimizer

FINETUNE_FILE = "finetune.json"
TOKENIZER_FILE = "tokenizer.json"
TEST_PROBABILITIES = "test_probabilities.npz"
BEST_PARAMS = "best/params.npz"
RESULTS_FILE = "results.json"
POOLINGS = ("cls", "mean")


# ---------------------------------------------------------------- the pretraining run folder


class PretrainedError(GroverError):
    """A path that is not a usable pretraining run (missing files, no checkpoint)."""


@dataclasses.dataclass
class Pretrained:
    params: Any  # the BertForMaskedLM parameter tree (plain arrays, no logical boxes)
    model_config: BertConfig
    config: ml_collections.ConfigDict  # the whole run config, as pretraining saved it
    tokenizer_path: Path
    step: int
    run_dir: Path

    @property
    def tokenizer_sha256(self) -> str:
        return hashlib.sha256(self.tokenizer_path.read_bytes()).hexdigest()

    @property
    def encoder_params(self) -> Any:
        """The `bert` subtree: what a classifier or next-k-mer head starts from."""
        return self.params["bert"]

    @functools.cached_property
    def encoder_sha256(self) -> str:
        """What a fine-tuning starts from, wherever the run lies: the tokenizer and the encoder's
        weights (so a finished fine-tuning is kept for the same model in another folder or clone)."""
        digest = hashlib.sha256(self.tokenizer_path.read_bytes())
        for path, leaf in jax.tree_util.tree_flatten_with_path(self.encoder_params)[0]:
            digest.update(jax.tree_util.keystr(path).encode())
            digest.update(np.ascontiguousarray(leaf).tobytes())
        return digest.hexdigest()


def run_folder(path: str | Path) -> Path:
    """The folder holding tokenizer.json: a run folder for itself or its checkpoints/ folder, a
    shipped model's folder for its name."""
    shipped = bundled.model_folder(path)
    if shipped is not None:
        return shipped
    path = Path(path)
    if path.name == "checkpoints" and (path.parent / "config.json").exists():
        return path.parent
    return path


def load_pretrained(path: str | Path, step: int | Literal["best", "latest"] = "best") -> Pretrained:
    """Parameters of `step` ("best": lowest valid loss, falling back to the latest) on the host.

    Raises PretrainedError with one line naming what is missing. An HF folder or a shipped model
    has one set of parameters: `step` is not used, and the step reported is 0.
    """
    hf_dir = bundled.model_folder(path) or (Path(path) if _is_hf_folder(Path(path)) else None)
    if hf_dir is not None:
        params, model_config = masked_lm_from_hf(hf_dir)
        config = run_config_from_hf(model_config)
        config.data.store = ""
        return Pretrained(params=params, model_config=model_config, config=config,
                          tokenizer_path=hf_dir / "tokenizer.json", step=0, run_dir=hf_dir)
    run_dir = run_folder(path)
    for required in ("config.json", "tokenizer.json", "checkpoints"):
        if not (run_dir / required).exists():
            raise PretrainedError(f"{run_dir}: not a pretraining run folder ({required} is missing)")
    try:
        config = ml_collections.ConfigDict(json.loads((run_dir / "config.json").read_text()))
        config.data.store = _resolve_store(run_dir, config.data.get("store", ""))
        model_config = BertConfig.from_config(config.model)
    except (ValueError, KeyError, TypeError, AttributeError) as error:  # not JSON, not a run's config
        raise PretrainedError(f"{run_dir / 'config.json'}: unreadable ({type(error).__name__}: {error})") from None
    manager = ocp.CheckpointManager(
        (run_dir / "checkpoints").absolute(), item_names=("state", "data", "meta"),
        options=ocp.CheckpointManagerOptions(create=False),
    )
    steps = list(manager.all_steps())
    if not steps:
        raise PretrainedError(f"{run_dir / 'checkpoints'}: no finished checkpoint")
    if step == "latest":
        chosen = max(steps)
    elif step == "best":
        with_loss = [s for s in steps if (manager.metrics(s) or {}).get("valid_loss") is not None]
        chosen = min(with_loss, key=lambda s: manager.metrics(s)["valid_loss"]) if with_loss else max(steps)
    else:
        if step not in steps:
            raise PretrainedError(f"{run_dir / 'checkpoints'}: no step {step} (have {sorted(steps)})")
        chosen = int(step)
    # The state is restored as saved (params + optimizer state); only params are kept.
    try:
        restored = manager.restore(chosen, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    except Exception as error:  # noqa: BLE001 (orbax and tensorstore raise many types for damaged files)
        raise PretrainedError(f"{run_dir / 'checkpoints' / str(chosen)}: damaged checkpoint "
                              f"({type(error).__name__}: {str(error).splitlines()[0][:200]})") from None
    finally:
        manager.close()
    params = restored["state"]["params"]
    params = jax.tree.map(lambda x: jax.device_get(x), params)
    return Pretrained(params=params, model_config=model_config, config=config,
                      tokenizer_path=run_dir / "tokenizer.json", step=chosen, run_dir=run_dir)


def _resolve_store(run_dir: Path, recorded: str) -> str:
    """The run's token store: recorded absolute (since pretraining records it so), or relative to
    the run folder; runs written before that hold a path relative to the folder they were launched
    from, which still resolves from there."""
    if not recorded or Path(recorded).is_absolute() or not (run_dir / recorded).exists():
        return recorded
    return str(run_dir / recorded)


def _is_hf_folder(path: Path) -> bool:
    """An HF model folder: its config.json names a `model_type` (a run folder's config does not)."""
    config = path / "config.json"
    try:
        return config.exists() and "model_type" in json.loads(config.read_text())
    except (json.JSONDecodeError, TypeError):
        return False


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

    @property
    def finished(self) -> bool:
        """Whether the fine-tuning ran to its end (finetune writes results.json last)."""
        return (self.path / RESULTS_FILE).exists()

    def warn_if_unfinished(self) -> None:
        """One stderr line where the fine-tuning stopped early: its parameters are then the best
        seen before it stopped, not the end of the run it was asked for. Said once the work that
        read the folder succeeded, so a failing command still prints only its error."""
        if not self.finished:
            print(f"grover: warning: {self.path}: the fine-tuning did not finish (no {RESULTS_FILE}); "
                  f"using the best parameters it saved before it stopped", file=sys.stderr)

    def params(self) -> dict:
        """The best classifier parameters (host numpy arrays), checked against finetune.json's
        model: FinetuneError names the first tensor of another shape, or a damaged file."""
        path = self.path / BEST_PARAMS
        params = load_params(path)
        model = BertForSequenceClassification(self.encoder, self.num_classes, self.pooling)
        ids = jnp.zeros((1, 1), jnp.int32)
        expected = _shapes(nn.unbox(jax.eval_shape(model.init, jax.random.key(0), ids, ids)["params"]))
        found = _shapes(params)
        for key in sorted(set(expected) | set(found)):
            if key not in found:
                raise FinetuneError(f"{path}: tensor {key} is missing")
            if key not in expected:
                raise FinetuneError(f"{path}: tensor {key} is not part of the model {FINETUNE_FILE} describes")
            if found[key] != expected[key]:
                raise FinetuneError(f"{path}: tensor {key} has shape {found[key]}, "
                                    f"{FINETUNE_FILE} implies {expected[key]}")
        return params


def is_finetuned_folder(path: str | Path) -> bool:
    return (Path(path) / FINETUNE_FILE).exists()


def read_finetuned(path: str | Path) -> Finetuned:
    """The fine-tuned folder at `path`; FinetuneError names a missing file or an unreadable field."""
    path = Path(path)
    for required in (FINETUNE_FILE, TOKENIZER_FILE, BEST_PARAMS):
        if not (path / required).exists():
            raise FinetuneError(f"{path}: not a fine-tuning folder ({required} is missing)")
    where = path / FINETUNE_FILE
    try:
        meta = json.loads(where.read_text())
    except ValueError as error:  # not JSON, or not UTF-8 text
        raise FinetuneError(f"{where}: unreadable ({type(error).__name__}: {error})") from None
    if not isinstance(meta, dict):
        raise FinetuneError(f"{where}: not a JSON object")
    encoder, num_classes, class_names = meta.get("encoder"), meta.get("num_classes"), meta.get("class_names")
    model = meta["config"].get("model") if isinstance(meta.get("config"), dict) else None
    pooling = model.get("pooling") if isinstance(model, dict) else None
    if not isinstance(encoder, dict):
        raise FinetuneError(f"{where}: field 'encoder' must be an object of encoder fields")
    try:
        encoder = bert_config_from_values(encoder)
    except (TypeError, ValueError) as error:
        raise FinetuneError(f"{where}: field 'encoder': {error}") from None
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise FinetuneError(f"{where}: field 'num_classes'={num_classes!r}: must be a whole number >= 2")
    if pooling not in POOLINGS:
        raise FinetuneError(f"{where}: field 'config.model.pooling'={pooling!r}: must be 'cls' or 'mean'")
    if class_names is not None and not (isinstance(class_names, list) and len(class_names) == num_classes
                                        and all(isinstance(name, str) for name in class_names)):
        raise FinetuneError(f"{where}: field 'class_names'={class_names!r}: must be a list of "
                            f"{num_classes} names (num_classes)")
    return Finetuned(path=path, meta=meta, encoder=encoder, num_classes=num_classes, pooling=pooling,
                     class_names=class_names)


def start_finetuned_folder(out: Path, tokenizer_path: Path, meta: dict[str, Any]) -> None:
    """`out` with the tokenizer and finetune.json, before training writes best/params.npz."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tokenizer_path, out / TOKENIZER_FILE)
    (out / FINETUNE_FILE).write_text(json.dumps(meta, indent=1))


def save_best_params(out: Path, params: Any) -> None:
    save_params(params, out / BEST_PARAMS)


def save_test_probabilities(out: Path, labels: np.ndarray, probabilities: dict[str, np.ndarray]) -> None:
    """Each model's class probabilities on the test split, beside the labels, so that two runs can
    be compared on the same examples later (paired intervals across seeds and arms)."""
    with atomic_output(out / TEST_PROBABILITIES) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, labels=np.asarray(labels), names=np.array(list(probabilities)),
                 **{f"model_{i}": np.asarray(p, np.float32) for i, p in enumerate(probabilities.values())})


def load_test_probabilities(out: str | Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(test labels, model name -> [N, K] probabilities) as save_test_probabilities wrote them."""
    path = Path(out) / TEST_PROBABILITIES
    try:
        with np.load(path) as archive:
            names = [str(n) for n in archive["names"]]
            return archive["labels"], {name: archive[f"model_{i}"] for i, name in enumerate(names)}
    except (OSError, KeyError, ValueError) as error:
        raise FinetuneError(f"{path}: unreadable ({type(error).__name__}: {error})") from None


def _flatten(params: Any) -> dict[str, np.ndarray]:
    flat = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        flat["/".join(str(k.key) for k in path)] = np.asarray(leaf)
    return flat


def _shapes(params: Any) -> dict[str, tuple[int, ...]]:
    return {"/".join(str(k.key) for k in path): tuple(leaf.shape)
            for path, leaf in jax.tree_util.tree_leaves_with_path(params)}


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
    """The parameter tree save_params wrote; FinetuneError names a damaged or truncated file."""
    try:
        with np.load(path) as archive:
            return _unflatten({key: archive[key] for key in archive.files})
    except (zipfile.BadZipFile, EOFError, ValueError) as error:  # ValueError: no npz, or a bad array header
        raise FinetuneError(f"{path}: damaged or truncated parameter file ({type(error).__name__}: {error})") from None


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


def import_masked_lm(hf_dir: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """`grover import-hf`: an HF BERT MLM folder as a run folder (config.json, tokenizer.json,
    checkpoints/ with step 0 = the imported params and a fresh optimizer state)."""
    hf_dir, out = Path(hf_dir), Path(out)
    if out.exists() and not overwrite:
        raise HfConversionError(f"{out} exists (pass --overwrite to replace it)")
    params, cfg = masked_lm_from_hf(hf_dir)
    if not (hf_dir / "tokenizer.json").exists():
        raise HfConversionError(f"{hf_dir}: no tokenizer.json (a BPE tokenizer.json is needed to tokenize DNA)")
    tokenizer = load_tokenizer(hf_dir / "tokenizer.json")
    require_special_tokens(tokenizer, hf_dir / "tokenizer.json", numbered=True)
    if tokenizer.vocab_size > cfg.vocab_size:
        raise HfConversionError(f"{hf_dir}: tokenizer.json has {tokenizer.vocab_size} tokens, "
                                f"the model's vocab_size is {cfg.vocab_size}")
    return write_pretraining_run(out, run_config_from_hf(cfg), tokenizer.path, tokenizer.sha256, params)
