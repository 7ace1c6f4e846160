"""Fixed non-overlapping k-mer tokenization: the comparison vocabularies of GROVER's selection.

GROVER compared its BPE vocabularies with BERTs on non-overlapping 4-, 5- and 6-mers ("with
identical training", docs/GROVER_METHOD.md §3.4). Such a tokenizer cuts each ACGT run into k-mers
from its first base; a run whose length is not a multiple of k ends in one shorter token, so the
vocabulary is every string of length 1..k. Ids: the five special tokens, then by length, then
lexicographically in A < C < G < T order, so a token's id is arithmetic on its base-4 code.

Saved as a `tokenizers` WordLevel tokenizer.json with the same normaliser, special tokens and
[CLS]/[SEP] template as the BPE vocabularies, so stores, checkpoints and `transformers` treat both
alike.
"""

import itertools
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, models, pre_tokenizers

from grover_jax.genome.genome import BASES
from grover_jax.tokenizer.folder import write_tokenizer_files
from grover_jax.tokenizer.special_tokens import SPECIAL_TOKENS, genome_tokenizer

MAX_KMER = 7  # 4^1 + ... + 4^7 + 5 = 21,850 ids: still inside the store's uint16 tokens


def kmer_vocab(k: int, special_tokens: tuple[str, ...]) -> dict[str, int]:
    vocab = {token: i for i, token in enumerate(special_tokens)}
    for length in range(1, k + 1):
        for letters in itertools.product(BASES, repeat=length):
            vocab["".join(letters)] = len(vocab)
    return vocab


def build_kmer_tokenizer(k: int) -> Tokenizer:
    if not 1 <= k <= MAX_KMER:
        raise ValueError(f"k-mer tokenization needs 1 <= k <= {MAX_KMER}, got {k}")
    model = models.WordLevel(vocab=kmer_vocab(k, SPECIAL_TOKENS), unk_token="[UNK]")
    return genome_tokenizer(model, pre_tokenizers.Split(Regex(f"[ACGT]{{1,{k}}}"), behavior="isolated"))


def kmer_size(tokenizer_spec: dict) -> int | None:
    """k for a tokenizer.json written by `build_kmer_tokenizer`, else None."""
    model = tokenizer_spec.get("model", {})
    if model.get("type") != "WordLevel":
        return None
    lengths = {len(t) for t in model.get("vocab", {}) if set(t) <= set(BASES)}
    return max(lengths) if lengths == set(range(1, max(lengths, default=0) + 1)) else None


def encode_contigs_kmer(contigs: list[np.ndarray], k: int, n_special: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per contig (base codes 0-3): (ids, offset of each token's first base), as the tokenizer.json."""
    first_id_of_length = n_special + np.cumsum([0] + [4**length for length in range(1, k)])
    powers = 4 ** np.arange(k - 1, -1, -1, dtype=np.int64)
    encoded = []
    for codes in contigs:
        n_full, rest = divmod(len(codes), k)
        full = codes[: n_full * k].astype(np.int64).reshape(n_full, k) @ powers
        ids = first_id_of_length[k - 1] + full
        if rest:
            tail = codes[n_full * k :].astype(np.int64) @ powers[k - rest :]
            ids = np.append(ids, first_id_of_length[rest - 1] + tail)
        encoded.append((ids.astype(np.int64), np.arange(len(ids), dtype=np.int64) * k))
    return encoded


def save_kmer_vocabulary(k: int, out_dir: str | Path) -> Path:
    """tokenizer.json (+ the transformers configs) of the fixed k-mer vocabulary, written atomically."""
    return write_tokenizer_files(build_kmer_tokenizer(k), out_dir)
