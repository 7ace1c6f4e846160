"""BPE learning in GROVER cycles, and encoding/decoding through a HuggingFace tokenizer.json."""

from grover_jax.tokenizer.bpe import BpeResult, Merge, learn_bpe
from grover_jax.tokenizer.bpe_replay import replay_merges
from grover_jax.tokenizer.vocabulary import (
    CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS, UNK_ID, GenomeTokenizer, TokenizerFileError,
    build_hf_tokenizer, load_tokenizer, save_vocabulary,
)

__all__ = [
    "BpeResult", "CLS_ID", "GenomeTokenizer", "MASK_ID", "Merge", "PAD_ID", "SEP_ID", "SPECIAL_TOKENS",
    "TokenizerFileError", "UNK_ID", "build_hf_tokenizer", "learn_bpe", "load_tokenizer", "replay_merges",
    "save_vocabulary",
]
