"""Masked-token prediction scored where the model must infer the token, beside count baselines.

Pretraining's own "masked-token accuracy" follows BERT's 80/10/10 rule, so a tenth of its targets
stay visible in the input and a model scores them by copying. Here every target is replaced by
[MASK], and no two targets touch, so each one keeps both of its neighbours: the question is only
"which token belongs here, given the context", the same question for the model and for

- the unigram: always the commonest train token;
- a fill-in n-gram fit on the train split: the tokens seen between the same two left and two
  right neighbours, backing off to one neighbour on each side, then to the unigram.

A model has learned context beyond a lookup table only where it beats the n-gram on these same
targets. Candidates are the genome tokens (special tokens are never an answer), so top-k and the
perplexity are over the genome vocabulary.
"""

from dataclasses import dataclass

import numpy as np

from grover_jax.store import TokenStore
from grover_jax.tokenizer import CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS

N_SPECIAL = len(SPECIAL_TOKENS)
TOP_K = 10
# Targets sit this many tokens inside the window, so both neighbours on each side are real tokens.
CONTEXT_TOKENS = 2


@dataclass(frozen=True)
class FillInSet:
    """Fixed windows of one split and their targets: what a fill-in evaluation scores."""

    tokens_BxL: np.ndarray  # [CLS] window [SEP], the original tokens (int32)
    attention_BxL: np.ndarray
    target_row: np.ndarray  # window of each target
    target_col: np.ndarray  # position of each target in its framed window
    mask_rate: float

    @property
    def labels(self) -> np.ndarray:
        return self.tokens_BxL[self.target_row, self.target_col]

    @property
    def masked_inputs_BxL(self) -> np.ndarray:
        inputs = self.tokens_BxL.copy()
        inputs[self.target_row, self.target_col] = MASK_ID
        return inputs

    def neighbours(self) -> np.ndarray:
        """[n_targets, 4]: the tokens two and one to the left, one and two to the right."""
        offsets = np.array([-2, -1, 1, 2])
        return self.tokens_BxL[self.target_row[:, None], self.target_col[:, None] + offsets]


def non_adjacent_positions(n_slots: int, n_targets: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random set of `n_targets` of `n_slots` positions with no two adjacent (sorted).

    Choosing m of n - m + 1 slots and spreading the i-th chosen by i is a bijection onto the
    non-adjacent m-subsets of n, so every such subset is equally likely.
    """
    n_targets = min(n_targets, (n_slots + 1) // 2)
    chosen = np.sort(rng.choice(n_slots - n_targets + 1, size=n_targets, replace=False))
    return chosen + np.arange(n_targets)


def fill_in_set(store: TokenStore, split: str, seq_len: int, mask_rate: float, n_windows: int,
                seed: int = 0) -> FillInSet:
    """The split's first `n_windows` full-length windows (seq_len - 2 tokens, non-overlapping, in
    genome order) with round(mask_rate × window) targets each, none adjacent, none within
    CONTEXT_TOKENS of the window's edges."""
    window_tokens = seq_len - 2
    starts = store.window_starts(split, window_tokens)[:n_windows]
    if len(starts) == 0:
        raise ValueError(f"{store.path}: split '{split}' has no window of {window_tokens} tokens")
    rng = np.random.default_rng((seed, 11))
    tokens = np.full((len(starts), seq_len), PAD_ID, np.int32)
    tokens[:, 0], tokens[:, -1] = CLS_ID, SEP_ID
    rows, cols = [], []
    slots = window_tokens - 2 * CONTEXT_TOKENS
    per_window = max(1, round(mask_rate * window_tokens))
    for row, start in enumerate(starts):
        tokens[row, 1:-1] = store.window(int(start), window_tokens)
        positions = non_adjacent_positions(slots, per_window, rng) + 1 + CONTEXT_TOKENS
        rows.append(np.full(len(positions), row))
        cols.append(positions)
    return FillInSet(tokens, np.ones_like(tokens), np.concatenate(rows), np.concatenate(cols), mask_rate)


@dataclass(frozen=True)
class FillInScores:
    """Per-target results (same order as the FillInSet's targets), so two predictors can be
    compared target by target."""

    top1: np.ndarray  # bool
    top10: np.ndarray  # bool
    log_prob: np.ndarray | None = None  # natural log p(label); None for predictors without one

    def summary(self) -> dict[str, float]:
        out = {"top1": float(self.top1.mean()), "top10": float(self.top10.mean()), "n_targets": len(self.top1)}
        if self.log_prob is not None:
            out["perplexity"] = float(np.exp(-self.log_prob.mean()))
        return out


class FillInNgram:
    """Counts of (left two, right two) and (left one, right one) contexts -> centre token on a split.

    Each context keeps its TOP_K commonest centre tokens (ties: the smaller id). A target is answered
    from its two-each-side context if that context occurs in the counts, then the one-each-side one,
    then the unigram, taking candidates from each in turn until TOP_K distinct tokens are ranked.
    """

    def __init__(self, store: TokenStore, split: str = "train"):
        self.vocab_size = store.vocab_size
        v = np.int64(self.vocab_size)
        wide_keys, narrow_keys, centres = [], [], []
        for contig in store.split_contigs(split):
            t = np.asarray(store.tokens[contig["token_offset"]: contig["token_offset"] + contig["n_tokens"]],
                           np.int64)
            if len(t) < 2 * CONTEXT_TOKENS + 1:
                continue
            l2, l1, c, r1, r2 = (t[i: len(t) - 4 + i] for i in range(5))
            narrow_keys.append(l1 * v + r1)
            wide_keys.append(((l2 * v + l1) * v + r1) * v + r2)
            centres.append(c)
        if not centres:
            raise ValueError(f"{store.path}: split '{split}' has no run of five tokens to count")
        centre = np.concatenate(centres)
        self.unigram = np.bincount(centre, minlength=self.vocab_size)
        self.unigram[:N_SPECIAL] = 0
        self.unigram_ranking = np.lexsort((np.arange(self.vocab_size), -self.unigram))[:TOP_K]
        self.wide = _context_table(np.concatenate(wide_keys), centre, v)
        self.narrow = _context_table(np.concatenate(narrow_keys), centre, v)

    def score(self, fill: FillInSet) -> FillInScores:
        n = fill.neighbours().astype(np.int64)
        v = np.int64(self.vocab_size)
        wide = _lookup(self.wide, ((n[:, 0] * v + n[:, 1]) * v + n[:, 2]) * v + n[:, 3])
        narrow = _lookup(self.narrow, n[:, 1] * v + n[:, 2])
        ranked = np.empty((len(n), TOP_K), np.int64)
        for i in range(len(n)):
            seen: dict[int, None] = {}
            for candidates in (wide[i], narrow[i], self.unigram_ranking):
                for token in candidates:
                    if token >= 0:
                        seen.setdefault(int(token))
                if len(seen) >= TOP_K:
                    break
            ranked[i] = list(seen)[:TOP_K]
        labels = fill.labels[:, None]
        return FillInScores(top1=ranked[:, 0] == labels[:, 0], top10=(ranked == labels).any(axis=1))

    def score_unigram(self, fill: FillInSet) -> FillInScores:
        labels = fill.labels[:, None]
        return FillInScores(top1=self.unigram_ranking[0] == labels[:, 0],
                            top10=(self.unigram_ranking[None, :] == labels).any(axis=1))


def _context_table(keys: np.ndarray, centre: np.ndarray, v: np.int64) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct context keys, [n_keys, TOP_K] their commonest centre tokens, -1 padded)."""
    pairs, counts = np.unique(keys * v + centre, return_counts=True)
    context, token = pairs // v, pairs % v
    # Within a context: higher count first, then smaller token id.
    order = np.lexsort((token, -counts, context))
    context, token = context[order], token[order]
    first = np.flatnonzero(np.r_[True, context[1:] != context[:-1]])
    rank = np.arange(len(context)) - np.repeat(first, np.diff(np.r_[first, len(context)]))
    keep = rank < TOP_K
    table = np.full((len(first), TOP_K), -1, np.int64)
    table[np.repeat(np.arange(len(first)), np.diff(np.r_[first, len(context)]))[keep], rank[keep]] = token[keep]
    return context[first], table


def _lookup(table: tuple[np.ndarray, np.ndarray], keys: np.ndarray) -> np.ndarray:
    """Each key's TOP_K row, or a row of -1 for a context never counted."""
    contexts, ranked = table
    index = np.clip(np.searchsorted(contexts, keys), 0, len(contexts) - 1)
    found = contexts[index] == keys
    return np.where(found[:, None], ranked[index], -1)


def score_model(logits_fn, fill: FillInSet, batch_size: int = 32) -> FillInScores:
    """Per-target top-1, top-10 and log-probability of a masked LM.

    `logits_fn(input_ids_BxL, attention_mask_BxL) -> logits_BxLxV` (numpy or jax arrays); batches
    are padded to `batch_size` rows so one compiled shape serves every batch.
    """
    inputs = fill.masked_inputs_BxL
    n_rows = len(inputs)
    log_prob = np.empty(len(fill.target_row))
    rank = np.empty(len(fill.target_row), np.int64)
    labels = fill.labels
    for first in range(0, n_rows, batch_size):
        rows = np.arange(first, min(first + batch_size, n_rows))
        ids = np.zeros((batch_size, inputs.shape[1]), np.int32)
        mask = np.zeros_like(ids)
        ids[: len(rows)], mask[: len(rows)] = inputs[rows], fill.attention_BxL[rows]
        logits = np.asarray(logits_fn(ids, mask), np.float64)
        here = np.flatnonzero((fill.target_row >= first) & (fill.target_row < first + len(rows)))
        target_logits = logits[fill.target_row[here] - first, fill.target_col[here], N_SPECIAL:]
        target_logits -= target_logits.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(target_logits).sum(axis=1))
        label_logit = target_logits[np.arange(len(here)), labels[here] - N_SPECIAL]
        log_prob[here] = label_logit - log_z
        # Rank = how many genome tokens score strictly higher (ties in the label's favour).
        rank[here] = (target_logits > label_logit[:, None]).sum(axis=1)
    return FillInScores(top1=rank == 0, top10=rank < TOP_K, log_prob=log_prob)
