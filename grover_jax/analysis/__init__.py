"""The paper's representation analyses (`grover analyze NAME`), each writing PNG plots and CSVs.

    tokens           token embeddings (contextual, averaged over occurrences; or the input matrix)
                     vs token frequency, GC, AG, AC, length (PCA axes, Spearman)
    repeats          fraction of each token's occurrences inside RepeatMasker intervals
    ambiguity        variance of each token's contextual embeddings across occurrences
    regions          region-average embeddings vs promoter/exon/repeat/intron/intergenic, linear
                     probe against a k-mer-frequency probe
    self_similarity  mean cosine similarity of a token's vectors across contexts, per layer
"""

import os
from pathlib import Path
from typing import Any

from grover_jax import api
from grover_jax.analysis.ambiguity import analyze_ambiguity
from grover_jax.analysis.errors import AnalysisError
from grover_jax.analysis.regions import analyze_regions
from grover_jax.analysis.repeats import analyze_repeats
from grover_jax.analysis.self_similarity import analyze_self_similarity
from grover_jax.analysis.tokens import analyze_tokens
from grover_jax.store import open_store

ANALYZERS = {"tokens": analyze_tokens, "repeats": analyze_repeats, "ambiguity": analyze_ambiguity,
             "regions": analyze_regions, "self_similarity": analyze_self_similarity}
ANALYSES = tuple(ANALYZERS)


def run_analysis(name: str, checkpoint: str | Path, store_path: str | Path, out: str | Path,
                 **options: Any) -> Path:
    """Run one analysis of the model at `checkpoint` (run folder or HF folder) on a token store
    tokenized with the model's own tokenizer; returns the main CSV's path."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # files only, no display, on any machine
    import matplotlib

    matplotlib.use("Agg")
    if name not in ANALYSES:
        raise AnalysisError(f"no analysis {name!r} (choose from {', '.join(ANALYSES)})")
    model = api.load(checkpoint)
    store = open_store(store_path)
    if model.tokenizer.sha256 != store.tokenizer_sha256:
        raise AnalysisError(f"{store.path} was tokenized with another tokenizer than {checkpoint} "
                            f"(sha256 {store.tokenizer_sha256[:12]}… vs {model.tokenizer.sha256[:12]}…)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return ANALYZERS[name](model, store, out, **options)
