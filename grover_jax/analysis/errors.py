"""The error every analysis raises for input it cannot use."""

from grover_jax.errors import GroverError


class AnalysisError(GroverError):
    """Input an analysis cannot use (a store of another tokenizer, an unreadable BED, ...)."""
