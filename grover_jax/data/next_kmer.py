"""Next-k-mer examples and their reference predictors, read from a token store.

GROVER's vocabulary-selection task (../shared/GROVER.md §2): given a stretch of genome, predict the
k bases that follow it, one class per k-mer (4^k classes), k = 2..6. The label is raw sequence,
independent of the vocabulary, so every vocabulary answers the same question.

An example is an end coordinate p inside one contig of a split: the input is the `input_bases`
bases before p (GROVER: 50 nt), tokenized **on their own** by the model's tokenizer, and the label
of k is the k bases from p. Inputs are not cut from the store's token stream: there a token
boundary at p would depend on the bases after p (BPE merges across it when it can), which leaks
the answer into the input. Bases are read back from the store by decoding its tokens, which is
exact: a store covers each contig base for base.

Class index of a k-mer: its base-4 number with A=0, C=1, G=2, T=3, first base most significant
(= position in `itertools.product("ACGT", repeat=k)`).
"""

import dataclasses

import numpy as np

from grover_jax.store import TokenStore
from grover_jax.tokenizer import PAD_ID, GenomeTokenizer

LETTERS = np.frombuffer(b"ACGT", dtype=np.uint8)


class NextKmerError(ValueError):
    """Examples that cannot be built as configured (a split too short, inputs longer than seq_len)."""


def kmer_class(codes_NxK: np.ndarray) -> np.ndarray:
    """Base codes [N, k] (0-3) → class index [N] in [0, 4^k)."""
    k = codes_NxK.shape[1]
    return codes_NxK.astype(np.int64) @ (4 ** np.arange(k - 1, -1, -1, dtype=np.int64))


def contig_base_codes(store: TokenStore, contig: dict, tokenizer: GenomeTokenizer) -> np.ndarray:
    """The contig's bases (codes 0-3), rebuilt from its tokens."""
    tokens = np.asarray(store.tokens[contig["token_offset"] : contig["token_offset"] + contig["n_tokens"]])
    spelled = tokenizer.token_codes
    lengths = tokenizer.token_lengths[tokens]
    first = tokenizer.token_code_offsets[tokens]
    # Flat index of every base: its token's first code, plus the base's rank inside the token.
    ends = np.cumsum(lengths)
    rank = np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - lengths, lengths)
    codes = spelled[np.repeat(first, lengths) + rank]
    if len(codes) != contig["end"] - contig["start"]:
        raise NextKmerError(f"store contig {contig['chromosome']}:{contig['start']}-{contig['end']} decodes to "
                         f"{len(codes)} bases")
    return codes


@dataclasses.dataclass
class NextKmerExamples:
    """Examples of one split: genome positions, input bases, and the bases that follow."""

    chromosome: np.ndarray  # [N] str
    end: np.ndarray  # [N] 0-based coordinate p: input = [p - input_bases, p), label = [p, p + k)
    input_codes: np.ndarray  # [N, input_bases] uint8
    next_codes: np.ndarray  # [N, max_k] uint8

    def __len__(self) -> int:
        return len(self.end)

    def labels(self, k: int) -> np.ndarray:
        return kmer_class(self.next_codes[:, :k])

    def input_strings(self) -> list[str]:
        return [row.tobytes().decode() for row in LETTERS[self.input_codes]]


def sample_examples(store: TokenStore, tokenizer: GenomeTokenizer, split: str, n: int, input_bases: int,
                    max_k: int, seed: int) -> NextKmerExamples:
    """`n` end positions drawn uniformly (without replacement where possible) over every position
    of the split where input and the longest label fit inside one contig; sorted by genome position."""
    contigs = [c for c in store.split_contigs(split) if c["end"] - c["start"] >= input_bases + max_k]
    if not contigs:
        raise NextKmerError(f"{store.path}: split {split!r} has no contig of at least {input_bases + max_k} bases")
    eligible = np.array([c["end"] - c["start"] - input_bases - max_k + 1 for c in contigs], np.int64)
    total = int(eligible.sum())
    rng = np.random.default_rng(seed)
    flat = np.sort(rng.choice(total, size=n, replace=n > total))
    which = np.searchsorted(np.cumsum(eligible), flat, side="right")
    offset_in_contig = flat - (np.cumsum(eligible) - eligible)[which] + input_bases
    chromosome, end, inputs, nexts = [], [], [], []
    for index in np.unique(which):
        contig = contigs[index]
        codes = contig_base_codes(store, contig, tokenizer)
        offsets = offset_in_contig[which == index]
        inputs.append(codes[offsets[:, None] + np.arange(-input_bases, 0)])
        nexts.append(codes[offsets[:, None] + np.arange(max_k)])
        end.append(offsets + contig["start"])
        chromosome += [contig["chromosome"]] * len(offsets)
    return NextKmerExamples(np.array(chromosome), np.concatenate(end), np.concatenate(inputs).astype(np.uint8),
                            np.concatenate(nexts).astype(np.uint8))


def tokenize_inputs(examples: NextKmerExamples, tokenizer: GenomeTokenizer, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """([CLS] tokens [SEP] padded to seq_len, attention mask), int32 [N, seq_len] each."""
    encoded = tokenizer.hf.encode_batch(examples.input_strings(), add_special_tokens=True)
    ids = np.full((len(encoded), seq_len), PAD_ID, np.int32)
    for row, encoding in enumerate(encoded):
        if len(encoding.ids) > seq_len:
            raise NextKmerError(f"{len(encoding.ids)} tokens do not fit next_kmer.seq_len={seq_len}")
        ids[row, : len(encoding.ids)] = encoding.ids
    return ids, (ids != PAD_ID).astype(np.int32)


def majority_class(train_labels: np.ndarray) -> int:
    """The commonest label of the training examples (lowest class on ties)."""
    return int(np.bincount(train_labels).argmax())


class MarkovNextKmer:
    """Predicts the k-mer that most often followed the same `order` preceding bases in the train split.

    An order-m Markov chain's most likely next k-mer is the argmax over k-mers of the joint count
    of (m-mer context, k-mer) — computed jointly, not base by base greedily. Counts run over every
    position of every train contig. A context never seen in training gets the overall commonest k-mer.
    """

    def __init__(self, train_contigs: list[np.ndarray], order: int, k: int):
        if order + k > 13:
            raise ValueError(f"markov order {order} + k {k} > 13: the count table would exceed 4^13 cells")
        self.order, self.k = order, k
        counts = np.zeros(4 ** (order + k), np.int64)
        for codes in train_contigs:
            if len(codes) >= order + k:
                counts += np.bincount(_rolling_codes(codes, order + k), minlength=len(counts))
        table = counts.reshape(4**order, 4**k)
        overall = int(table.sum(axis=0).argmax())
        self.prediction = np.where(table.sum(axis=1) > 0, table.argmax(axis=1), overall)

    def predict(self, input_codes_NxL: np.ndarray) -> np.ndarray:
        if self.order == 0:
            return np.full(len(input_codes_NxL), self.prediction[0])
        return self.prediction[kmer_class(input_codes_NxL[:, -self.order :])]


def _rolling_codes(codes: np.ndarray, width: int) -> np.ndarray:
    """Base-4 number of every window of `width` bases (sliding by one)."""
    windows = np.lib.stride_tricks.sliding_window_view(codes.astype(np.int64), width)
    return windows @ (4 ** np.arange(width - 1, -1, -1, dtype=np.int64))
