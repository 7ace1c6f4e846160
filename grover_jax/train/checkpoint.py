"""Orbax checkpoints of a pretraining run: sharded state + data position + run metadata.

Each step directory holds three items (one `CheckpointManager`, MaxText's item_names API):
    state  the TrainState (params, Adam moments, step), saved asynchronously, restored straight
           into the shardings of an abstract state (no host copy of the full model)
    data   the input pipeline's position (JSON), restored together with the state
    meta   the config (JSON) and the tokenizer's sha256, checked before any array is read

Retention keeps the last `keep` checkpoints *and* the one with the lowest validation loss.
Orbax's `max_to_keep` + `best_fn` cannot express that union (with a `best_fn` set, max_to_keep
counts the N best, so the newest may be deleted), so we give the manager a preservation policy
`Any(LatestN(keep), BestN(valid_loss, n=1))`: a checkpoint survives if either policy keeps it.
Checkpoints saved without a validation loss take part only in LatestN. One directory, one
manager, and the best survives restarts because its loss is stored with it by orbax.
"""

import json
from typing import Any

import ml_collections
import orbax.checkpoint as ocp
from etils import epath
from flax.training.train_state import TrainState
from orbax.checkpoint import checkpoint_managers

from grover_jax.errors import GroverError

# What a resumed run must share with the run that wrote the checkpoint: everything that changes
# the model, the data it sees or the optimizer trajectory. Sections outside these (genome, bpe,
# mesh, other programs' settings) do not enter pretraining, or are pinned by the tokenizer hash.
RESUME_SECTIONS = ("seed", "model", "data", "train")
# Inside those sections, fields that may change on resume without changing a single bit of the
# trajectory: bookkeeping cadence, evaluation size, and where the token store lives. num_steps is
# *not* free: the learning-rate decay ends at num_steps, so changing it changes every later update.
RESUME_FREE_FIELDS = frozenset(
    {
        "data.store",
        "data.eval_batches",
        "train.log_every",
        "train.eval_every",
        "train.checkpoint_every",
        "train.keep_checkpoints",
        "train.peak_flops",
    }
)
# Fields that may change on resume although the same arithmetic then rounds differently, so the
# resumed run is no longer bit-identical to an uninterrupted one: memory and layout knobs. A
# resume that changes one says so in one line (`resume_differences`). grad_accum_steps is one
# only without dropout; with dropout, keys are drawn per micro-batch and it must match.
RESUME_INEXACT_FIELDS = {
    "model.remat": "activations recomputed in the backward pass may round differently",
    "model.attention_implementation": "another attention kernel: outputs agree to about 1e-5",
    "train.mlm_head_on_targets": "the MLM head gathered differently: the loss agrees to about 1e-5",
    "train.grad_accum_steps": "gradients summed over other micro-batches: they agree to about 1e-5",
}
_VALID_LOSS = "valid_loss"


class CheckpointMismatchError(GroverError):
    """A checkpoint was written by an incompatible run (config or tokenizer differ)."""


def _config_json(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json_best_effort())


def _inexact_fields(config_json: dict) -> set[str]:
    model = config_json.get("model", {})
    if model.get("hidden_dropout") or model.get("attention_dropout"):
        return set(RESUME_INEXACT_FIELDS) - {"train.grad_accum_steps"}
    return set(RESUME_INEXACT_FIELDS)


def _resume_fields(config_json: dict) -> dict[str, Any]:
    """{"model.hidden_size": 768, …} for the fields that must match on resume."""
    fields = {}
    free = RESUME_FREE_FIELDS | _inexact_fields(config_json)

    def walk(prefix: str, value: Any):
        if isinstance(value, dict):
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else key, child)
        elif prefix not in free:
            fields[prefix] = value

    for section in RESUME_SECTIONS:
        if section in config_json:
            walk(section, config_json[section])
    return fields


class Checkpointer:
    """Save/restore one run's checkpoints under `directory` (local path or gs://…).

    In a multi-process run every process constructs it and calls save/restore (orbax
    coordinates who writes what).
    """

    def __init__(
        self,
        directory: str | epath.Path,
        config: ml_collections.ConfigDict,
        tokenizer_sha256: str,
        keep: int | None = None,
    ):
        self.directory = epath.Path(directory)
        self._config_json = _config_json(config)
        self._tokenizer_sha256 = tokenizer_sha256
        keep = config.train.keep_checkpoints if keep is None else keep

        def best_loss(metrics: dict[str, float]) -> float:
            return metrics[_VALID_LOSS]

        options = ocp.CheckpointManagerOptions(
            # best_fn makes orbax store the metrics with each step and answers best_step();
            # retention itself is the preservation policy (see module docstring).
            best_fn=best_loss,
            best_mode="min",
            preservation_policy=checkpoint_managers.AnyPreservationPolicy(
                [
                    checkpoint_managers.LatestN(n=keep),
                    checkpoint_managers.BestN(
                        get_metric_fn=best_loss,
                        reverse=True,  # BestN keeps the tail of the sorted list: lowest loss last
                        n=1,
                        keep_checkpoints_without_metrics=False,
                    ),
                ]
            ),
            enable_async_checkpointing=True,
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "data", "meta")
        )

    def save(
        self,
        step: int,
        state: TrainState,
        data_state: dict[str, Any],
        valid_loss: float | None = None,
    ) -> bool:
        """Start an asynchronous save of step `step`; returns whether orbax saved."""
        meta = {"config": self._config_json, "tokenizer_sha256": self._tokenizer_sha256}
        return self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=ocp.args.JsonSave(data_state),
                meta=ocp.args.JsonSave(meta),
            ),
            metrics=None if valid_loss is None else {_VALID_LOSS: float(valid_loss)},
            force=True,
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def best_step(self) -> int | None:
        """The step with the lowest validation loss, or None if none was saved with one."""
        if not any(self._manager.metrics(step) for step in self._manager.all_steps()):
            return None
        return self._manager.best_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def check_compatible(self, step: int) -> dict[str, Any]:
        """The step's metadata, after refusing it if its config or tokenizer differ from ours."""
        meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            "meta"
        ]
        problems = []
        if meta["tokenizer_sha256"] != self._tokenizer_sha256:
            problems.append(
                f"tokenizer sha256 {meta['tokenizer_sha256'][:12]}… in checkpoint, "
                f"{self._tokenizer_sha256[:12]}… now"
            )
        theirs, ours = _resume_fields(meta["config"]), _resume_fields(self._config_json)
        absent = "<absent>"
        for key in sorted(set(theirs) | set(ours)):
            if theirs.get(key, absent) != ours.get(key, absent):
                problems.append(
                    f"{key}: checkpoint {theirs.get(key, absent)!r}, now {ours.get(key, absent)!r}"
                )
        if problems:
            raise CheckpointMismatchError(
                f"{self.directory} step {step} was written by a different run: "
                + "; ".join(problems)
            )
        return meta

    def resume_differences(self, step: int) -> list[str]:
        """The fields of RESUME_INEXACT_FIELDS that differ from the checkpoint's, each with why the
        resumed run is then not bit-identical to an uninterrupted one (empty: it is)."""
        meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        inexact = _inexact_fields(meta["config"]) & _inexact_fields(self._config_json)

        def value(config_json: dict, key: str) -> Any:
            section, name = key.split(".")
            return config_json.get(section, {}).get(name, "<absent>")

        return [f"{key} {value(meta['config'], key)!r} -> {value(self._config_json, key)!r} "
                f"({RESUME_INEXACT_FIELDS[key]})"
                for key in sorted(inexact) if value(meta["config"], key) != value(self._config_json, key)]

    def restore(
        self, abstract_state: TrainState, step: int | None = None
    ) -> tuple[TrainState, dict[str, Any]]:
        """(state, data_state) of `step` (default latest), placed in `abstract_state`'s shardings.

        `abstract_state` comes from `train.state.abstract_train_state` (ShapeDtypeStructs with
        shardings). Raises CheckpointMismatchError before reading arrays if the run differs.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        self.check_compatible(step)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
            ),
        )
        return restored["state"], restored["data"]

    def wait_until_finished(self) -> None:
        """Block until asynchronous saves are on disk: call before exiting or on preemption."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
