"""The error every analysis raises for input it cannot use."""


class AnalysisError(ValueError):
    """Input an analysis cannot use (a store of another tokenizer, an unreadable BED, ...)."""
