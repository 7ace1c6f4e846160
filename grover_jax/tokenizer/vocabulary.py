"""The learned vocabulary as a HuggingFace `tokenizers` tokenizer.json, and loading it back.

Layout of the ids (documented choice): 0-4 are [PAD] [UNK] [CLS] [SEP] [MASK] (DNABERT's order,
which GROVER's code descends from), then A C G T, then each merge's new string in cycle order.
All four bases stay in the vocabulary even where (as on hg19) A, C and T almost never survive as
standalone tokens: without them a sequence whose edge leaves a lone base could not be encoded.

The tokenizer uppercases (soft-masked bases are the same bases), isolates every run of non-ACGT
characters (N, IUPAC codes) as one [UNK], and applies the merges by rank over each ACGT run: the
same tokens as replaying the cycles on that run. Decoding concatenates the tokens.
"""

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, models

from grover_jax.atomic_files import write_text
from grover_jax.errors import GroverError
from grover_jax.genome.genome import BASE_CODE, BASES
from grover_jax.tokenizer.bpe import BpeResult
from grover_jax.tokenizer.bpe_replay import replay_merges, replay_regions
from grover_jax.tokenizer.folder import TOKENIZER_FILE, write_tokenizer_files
from grover_jax.tokenizer.kmer import encode_contigs_kmer, kmer_size
from grover_jax.tokenizer.special_tokens import (  # noqa: F401 - re-exported
    CLS_ID, MASK_ID, PAD_ID, SEP_ID, SPECIAL_TOKENS, UNK_ID, genome_tokenizer,
)


class TokenizerFileError(GroverError):
    pass


def build_hf_tokenizer(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Tokenizer:
    return genome_tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="[UNK]", fuse_unk=True))


def save_vocabulary(result: BpeResult, out_dir: str | Path, provenance: dict | None = None) -> Path:
    """Write tokenizer.json (+ the transformers configs), the merge table with each merge's
    frequency, and a summary. Each file is written to a temporary name and renamed."""
    out_dir = Path(out_dir)
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for token in result.tokens:
        vocab[token] = len(vocab)
    merges = [(m.left, m.right) for m in result.merges]
    write_tokenizer_files(build_hf_tokenizer(vocab, merges), out_dir)
    rows = ["cycle\tleft\tright\ttoken\ttoken_id\tpair_count\tmerged"]
    rows += [f"{c + 1}\t{m.left}\t{m.right}\t{m.token}\t{vocab[m.token]}\t{m.count}\t{m.merged}"
             for c, m in enumerate(result.merges)]
    write_text(out_dir / "merges.tsv", "\n".join(rows) + "\n")
    counts = {token: int(n) for token, n in zip(result.tokens, result.token_counts)}
    write_text(out_dir / "bpe_summary.json", json.dumps({
        "cycles": len(result.merges),
        "vocab_size": len(vocab),
        "n_bases": result.n_bases,
        "n_tokens": int(result.token_counts.sum()),
        "mean_token_length": result.mean_token_length,
        "token_counts": counts,
        "provenance": provenance or {},
    }, indent=1))
    return out_dir / TOKENIZER_FILE


@dataclass
class GenomeTokenizer:
    """A tokenizer.json, loaded: the Rust tokenizer for arbitrary text, the merge list for the
    compiled replay over whole contigs, and the file's sha256 (what stores and checkpoints record)."""

    path: Path
    hf: Tokenizer
    vocab: dict[str, int]
    merges: list[tuple[str, str]]
    sha256: str
    kmer: int | None = None  # k of a fixed k-mer vocabulary (tokenizer/kmer.py); None for BPE

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def id_to_token(self) -> list[str]:
        tokens = [""] * self.vocab_size
        for token, i in self.vocab.items():
            tokens[i] = token
        return tokens

    @property
    def token_lengths(self) -> np.ndarray:
        """Bases per token id (0 for special tokens)."""
        return np.array([0 if t in SPECIAL_TOKENS else len(t) for t in self.id_to_token], dtype=np.int32)

    @functools.cached_property
    def token_codes(self) -> np.ndarray:
        """Every token's bases as codes 0-3, concatenated in id order (see token_code_offsets)."""
        spelled = "".join("" if t in SPECIAL_TOKENS else t for t in self.id_to_token)
        return BASE_CODE[np.frombuffer(spelled.encode(), np.uint8)]

    @functools.cached_property
    def token_code_offsets(self) -> np.ndarray:
        """Where token id i's bases start in `token_codes`."""
        return np.concatenate([[0], np.cumsum(self.token_lengths)[:-1]]).astype(np.int64)

    def encode_contigs(self, contigs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Tokenize whole contigs (base codes 0-3) with the compiled replay: per contig (ids,
        offset of each token's first base). Equal to `self.hf` on the same sequence."""
        if self.kmer is not None:
            return encode_contigs_kmer(contigs, self.kmer, len(SPECIAL_TOKENS))
        return replay_merges(contigs, self.vocab, self.merges)

    def encode_regions(self, sequence: np.ndarray, regions: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """`encode_contigs` of the stretches [start, end) of one uppercase ASCII sequence (a FASTA
        record's), read in place: the store's encoder."""
        if self.kmer is not None:
            return self.encode_contigs([BASE_CODE[sequence[a:b]] for a, b in regions])
        return replay_regions(sequence, regions, self.vocab, self.merges)

    def encode(self, sequence: str, add_special_tokens: bool = True) -> list[int]:
        return self.hf.encode(sequence, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return self.hf.decode(list(map(int, ids)), skip_special_tokens=skip_special_tokens)


def load_tokenizer(path: str | Path) -> GenomeTokenizer:
    """Load a tokenizer.json (or a folder holding one) written here or by GROVER-style BPE."""
    path = Path(path)
    if path.is_dir():
        path = path / TOKENIZER_FILE
    if not path.exists():
        raise TokenizerFileError(f"{path}: no such tokenizer file")
    raw = path.read_bytes()
    try:
        spec = json.loads(raw)
        model = spec["model"]
        if model.get("type", "BPE") not in ("BPE", "WordLevel"):
            raise ValueError(f"model type {model['type']!r}")
        vocab = {str(k): int(v) for k, v in model["vocab"].items()}
        kmer = kmer_size(spec)
        merges = [] if kmer else [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise TokenizerFileError(f"{path}: not a BPE or k-mer tokenizer.json ({error})") from None
    try:
        hf = Tokenizer.from_str(raw.decode("utf-8"))
    except Exception as error:  # noqa: BLE001 (the tokenizers library raises its parse errors as Exception)
        raise TokenizerFileError(f"{path}: not a tokenizer.json the tokenizers library reads ({error})") from None
    missing = [b for b in BASES if b not in vocab]
    if missing:
        raise TokenizerFileError(f"{path}: the vocabulary lacks the base token(s) {', '.join(missing)}")
    if kmer and [vocab.get(t) for t in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):
        raise TokenizerFileError(f"{path}: a k-mer vocabulary must start with {', '.join(SPECIAL_TOKENS)}")
    return GenomeTokenizer(path, hf, vocab, merges, hashlib.sha256(raw).hexdigest(), kmer)
