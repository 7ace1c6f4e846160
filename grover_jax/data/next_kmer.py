"""Next-k-mer examples and their reference predictors, read from a token store.

GROVER's vocabulary-selection task (docs/GROVER_METHOD.md §2): given a stretch of genome, predict the
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

from grover_jax.errors import GroverError
from grover_jax.store import TokenStore
from grover_jax.tokenizer import PAD_ID, GenomeTokenizer

LETTERS = np.frombuffer(b"ACGT", dtype=np.uint8)


class NextKmerError(GroverError):
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
    of (m-mer context, k-mer) — computed jointly, not base by base greedily; ties go to the lowest
    class. Counts run over every window of order + k bases of every train contig, kept sparse (one
    entry per distinct window seen), so order + k may reach 31 bases (2 bits a base in an int64).

    A context never seen in training backs off to its last order - 1 bases, then order - 2, ...,
    down to order 0 (the commonest k-mer overall), taking the first that was seen. Every order counts
    the same windows (shorter contexts are the trailing bases of the order + k windows), so order 0
    is the k-mers that follow the first `order` bases of each contig.
    """

    def __init__(self, train_contigs: list[np.ndarray], order: int, k: int):
        if order < 0 or k < 1 or order + k > 31:
            raise ValueError(f"markov order {order} and k {k}: need order >= 0, k >= 1 and order + k <= 31 "
                             "(a window packs into 62 bits)")
        self.order, self.k = order, k
        windows = [_pack(np.lib.stride_tricks.sliding_window_view(c, order + k)) for c in train_contigs
                   if len(c) >= order + k]
        if not windows:
            raise NextKmerError(f"no train contig holds the {order + k} bases of a Markov order {order} "
                                f"+ k {k} window")
        keys = np.concatenate(windows)
        del windows
        keys.sort()  # in place: the window keys are the largest array here (8 bytes a train base)
        keys, counts = _sum_runs(keys, None)
        # One (sorted contexts, their best k-mer) table per order, longest first. Each shorter order's
        # joint counts are the longer one's summed over its oldest context base: masking that base off
        # leaves 4 sorted runs, which a stable (merging) argsort orders in near-linear time.
        self.tables = [_best_kmer_per_context(keys, counts, k)]
        for context_bases in range(order - 1, -1, -1):
            keys &= (1 << 2 * (context_bases + k)) - 1
            rank = np.argsort(keys, kind="stable")
            keys, counts = keys[rank], counts[rank]
            del rank
            keys, counts = _sum_runs(keys, counts)
            self.tables.append(_best_kmer_per_context(keys, counts, k))

    def predict(self, input_codes_NxL: np.ndarray) -> np.ndarray:
        prediction = np.zeros(len(input_codes_NxL), np.int64)
        unresolved = np.ones(len(input_codes_NxL), bool)
        for context_bases, (contexts, best) in zip(range(self.order, -1, -1), self.tables):
            query = _pack(input_codes_NxL[:, input_codes_NxL.shape[1] - context_bases :])
            at = np.searchsorted(contexts, query)  # never past the end: the table ends with a sentinel
            seen = unresolved & (contexts[at] == query)
            prediction[seen] = best[at[seen]]
            unresolved &= ~seen
        return prediction


def _pack(codes_NxW: np.ndarray) -> np.ndarray:
    """Each row of base codes as one int64, 2 bits a base, first base most significant (= kmer_class)."""
    keys = np.zeros(len(codes_NxW), np.int64)
    for column in codes_NxW.T:
        keys <<= 2
        keys |= column
    return keys


def _sum_runs(sorted_keys: np.ndarray, counts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys of a sorted array and the summed counts of each run of equal keys (1 a key if None)."""
    starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
    if counts is None:
        return sorted_keys[starts], np.diff(np.append(starts, len(sorted_keys)))
    return sorted_keys[starts], np.add.reduceat(counts, starts)


def _best_kmer_per_context(keys: np.ndarray, counts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct contexts, the k-mer with the highest count after each) from sorted joint keys."""
    contexts, kmers = keys >> 2 * k, keys & ((1 << 2 * k) - 1)
    starts = np.flatnonzero(np.concatenate(([True], contexts[1:] != contexts[:-1])))
    best_count = np.maximum.reduceat(counts, starts)
    # Within a context the k-mers are ascending, so its first row holding the top count is the
    # argmax with ties to the lowest class.
    tops = np.flatnonzero(counts == np.repeat(best_count, np.diff(np.append(starts, len(contexts)))))
    first = tops[np.concatenate(([True], contexts[tops[1:]] != contexts[tops[:-1]]))]
    # A context above any packed one (< 2^62) ends the table, so a lookup always lands inside it.
    return np.append(contexts[first], np.iinfo(np.int64).max), np.append(kmers[first], 0)
