"""Errors of the HF conversion, importable without jax (the CLI lists them as user errors)."""

from grover_jax.errors import GroverError


class HfConversionError(GroverError):
    """An HF folder or tensor that does not map onto this project's BERT."""
