"""The training state (step, params, optimizer state), materialised already sharded."""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState
from jax.sharding import Mesh

from grover_jax.parallel.rules import logical_sharding, with_shardings


def _boxed_init(
    model: nn.Module, tx: optax.GradientTransformation
) -> Callable[[jax.Array], TrainState]:
    """rng → TrainState whose params *and* Adam moments still carry their logical axis names."""

    def init(rng: jax.Array) -> TrainState:
        # Parameter shapes do not depend on batch or length, so a 1×1 input suffices.
        ids_1x1 = jnp.zeros((1, 1), jnp.int32)
        params = model.init(rng, ids_1x1, jnp.ones_like(ids_1x1))["params"]
        return TrainState.create(apply_fn=model.apply, params=params, tx=tx)

    return init


def train_state_sharding(
    model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh
) -> TrainState:
    """A TrainState of NamedShardings, from the logical names the parameters were born with."""
    abstract_boxed = jax.eval_shape(_boxed_init(model, tx), jax.random.PRNGKey(0))
    return logical_sharding(abstract_boxed, mesh)


def abstract_train_state(
    model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh
) -> TrainState:
    """ShapeDtypeStructs with shardings: the target of a checkpoint restore or an AOT `.lower()`."""
    init = _boxed_init(model, tx)
    abstract = jax.eval_shape(lambda rng: nn.unbox(init(rng)), jax.random.PRNGKey(0))
    return with_shardings(abstract, train_state_sharding(model, tx, mesh))


def create_train_state(
    model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh, seed: int
) -> tuple[TrainState, TrainState]:
    """(state, state_sharding): each device initialises only its own shard of every array.

    The seed (not a key array) is the input so that every process builds the same constant.
    """
    sharding = train_state_sharding(model, tx, mesh)
    init = _boxed_init(model, tx)
    state = jax.jit(lambda: nn.unbox(init(jax.random.PRNGKey(seed))), out_shardings=sharding)()
    return state, sharding
