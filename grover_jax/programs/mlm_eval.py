"""`grover mlm-eval`: masked-token prediction of a pretrained encoder on held-out sequence, every
target [MASK]ed, beside the unigram and the fill-in n-gram on the very same targets
(evaluation/fill_in.py says why), with paired bootstrap intervals of model - n-gram."""

import functools
from pathlib import Path

import jax
import numpy as np

from grover_jax.configuration import ConfigError
from grover_jax.evaluation.bootstrap import paired_bootstrap
from grover_jax.evaluation.fill_in import FillInNgram, fill_in_set, score_model
from grover_jax.model.bert import BertForMaskedLM
from grover_jax.runs import Pretrained, load_pretrained
from grover_jax.store import open_store

# GROVER's printed masking rate and BERT's.
MASK_RATES = (0.022, 0.15)


def masked_lm_logits_fn(pretrained: Pretrained):
    """`logits(input_ids_BxL, attention_mask_BxL) -> [B, L, V]` of the pretrained MLM, jitted."""
    model = BertForMaskedLM(pretrained.model_config)
    apply = jax.jit(functools.partial(model.apply, deterministic=True))
    params = {"params": pretrained.params}
    return lambda ids, mask: apply(params, ids, mask)


def evaluate_fill_in(checkpoint: str | Path | Pretrained, store: str | Path | None = None, split: str = "test",
                     mask_rates: tuple[float, ...] = MASK_RATES, n_windows: int = 256, seq_len: int | None = None,
                     seed: int = 0, n_resamples: int = 1000) -> list[dict]:
    """One row per mask rate: model / n-gram / unigram top-1 and top-10, model perplexity, and the
    paired interval of (model - n-gram) top-1 over windows resampled with replacement."""
    pretrained = checkpoint if isinstance(checkpoint, Pretrained) else load_pretrained(checkpoint)
    if not (store or pretrained.config.data.store):
        raise ConfigError(f"{pretrained.run_dir}: no token store of its own; pass --store, one built with its "
                          f"tokenizer (grover store --tokenizer {pretrained.tokenizer_path} ...)")
    store = open_store(store or pretrained.config.data.store)
    if store.tokenizer_sha256 != pretrained.tokenizer_sha256:
        raise ConfigError(f"{store.path}: built with another tokenizer than {pretrained.run_dir}'s")
    seq_len = seq_len or int(pretrained.config.data.seq_len)
    logits_fn = masked_lm_logits_fn(pretrained)
    ngram = FillInNgram(store, "train")
    rows = []
    for rate in mask_rates:
        fill = fill_in_set(store, split, seq_len, rate, n_windows, seed)
        model, counted, unigram = score_model(logits_fn, fill), ngram.score(fill), ngram.score_unigram(fill)
        difference = paired_bootstrap(model.top1, counted.top1, groups=fill.target_row,
                                      n_resamples=n_resamples, seed=seed)
        rows.append({
            "split": split, "mask_rate": rate, "n_windows": int(fill.tokens_BxL.shape[0]),
            "n_targets": len(fill.target_row), "seq_len": seq_len,
            "model_top1": float(model.top1.mean()), "model_top10": float(model.top10.mean()),
            "model_perplexity": float(np.exp(-model.log_prob.mean())),
            "ngram_top1": float(counted.top1.mean()), "ngram_top10": float(counted.top10.mean()),
            "unigram_top1": float(unigram.top1.mean()), "unigram_top10": float(unigram.top10.mean()),
            "model_minus_ngram_top1": difference["difference"],
            "model_minus_ngram_top1_low": difference["low"], "model_minus_ngram_top1_high": difference["high"],
        })
    return rows


def rows_markdown(rows: list[dict]) -> str:
    """The rows of `evaluate_fill_in` as a Markdown table."""
    lines = [("| mask rate | targets | model top-1 | n-gram top-1 | unigram top-1 | model − n-gram top-1 [95 % CI] "
              "| model top-10 | n-gram top-10 | model perplexity |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['mask_rate']:.3f} | {r['n_targets']:,} | {r['model_top1']:.4f} | {r['ngram_top1']:.4f} | "
            f"{r['unigram_top1']:.4f} | {r['model_minus_ngram_top1']:+.4f} [{r['model_minus_ngram_top1_low']:+.4f}, "
            f"{r['model_minus_ngram_top1_high']:+.4f}] | {r['model_top10']:.4f} | {r['ngram_top10']:.4f} | "
            f"{r['model_perplexity']:.1f} |")
    return "\n".join(lines)
