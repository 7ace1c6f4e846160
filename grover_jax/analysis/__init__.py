"""The paper's representation analyses (`grover analyze NAME`), each writing PNG plots and CSVs.

    tokens     input embeddings vs token frequency, GC, AG, length (PCA axes, Spearman)
    repeats    fraction of each token's occurrences inside RepeatMasker intervals
    ambiguity  variance of each token's contextual embeddings across occurrences
    regions    region-average embeddings vs promoter/exon/repeat/intron/intergenic, linear probe
               against a k-mer-frequency probe
"""

import os
from pathlib import Path
from typing import Any

ANALYSES = ("tokens", "repeats", "ambiguity", "regions")


class AnalysisError(ValueError):
    """Input an analysis cannot use (a store of another tokenizer, an unreadable BED, ...)."""


def run_analysis(name: str, checkpoint: str | Path, store_path: str | Path, out: str | Path,
                 **options: Any) -> Path:
    """Run one analysis of the model at `checkpoint` (run folder or HF folder) on a token store
    tokenized with the model's own tokenizer; returns the main CSV's path."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # files only, no display, on any machine
    import matplotlib

    matplotlib.use("Agg")
    from grover_jax import api
    from grover_jax.store import TokenStore

    if name not in ANALYSES:
        raise AnalysisError(f"no analysis {name!r} (choose from {', '.join(ANALYSES)})")
    model = api.load(checkpoint)
    store = TokenStore(store_path)
    if model.tokenizer.sha256 != store.tokenizer_sha256:
        raise AnalysisError(f"{store.path} was tokenized with another tokenizer than {checkpoint} "
                            f"(sha256 {store.tokenizer_sha256[:12]}… vs {model.tokenizer.sha256[:12]}…)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if name == "tokens":
        from grover_jax.analysis.tokens import analyze_tokens as analyze
    elif name == "repeats":
        from grover_jax.analysis.repeats import analyze_repeats as analyze
    elif name == "ambiguity":
        from grover_jax.analysis.ambiguity import analyze_ambiguity as analyze
    else:
        from grover_jax.analysis.regions import analyze_regions as analyze
    return analyze(model, store, out, **options)
