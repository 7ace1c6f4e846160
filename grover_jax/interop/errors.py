"""Errors of the HF conversion, importable without jax (the CLI lists them as user errors)."""


class HfConversionError(ValueError):
    """An HF folder or tensor that does not map onto this project's BERT."""
