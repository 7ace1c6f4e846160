"""GROVER-style DNA language models in JAX/Flax.

The Python API (`grover_jax.load(path)` → a model with tokenize / embed / predict_proba /
variant_score, and the masked-LM methods fill_mask / pseudo_log_likelihood / score_variants; see
grover_jax/api.py, grover_jax/masked_lm.py and docs/API.md) is imported on first use, so
`import grover_jax` stays light.
"""

_API = ("load", "GroverModel", "Classifier")


def __getattr__(name: str):
    if name in _API:
        from grover_jax import api

        return getattr(api, name)
    raise AttributeError(f"module 'grover_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
