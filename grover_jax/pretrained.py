"""A pretrained encoder as downstream programs see it: parameters, model config, tokenizer.

Every program after pretraining (next-k-mer, fine-tuning, export, the Python API, analyses) starts
from `load_pretrained(path)`, where `path` is a pretraining run folder (`grover pretrain --workdir`,
holding config.json, tokenizer.json and checkpoints/), its `checkpoints/` folder, a HuggingFace
BertForMaskedLM folder, or the name of a model shipped with the package (`bundled.MODELS`, e.g.
"grover-small-hg19-chr20"). Only the parameters are returned: optimizer moments stay on disk.
"""

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import jax
import ml_collections
import orbax.checkpoint as ocp

from grover_jax import bundled
from grover_jax.errors import GroverError
from grover_jax.interop.hf import masked_lm_from_hf, run_config_from_hf
from grover_jax.model import BertConfig


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
