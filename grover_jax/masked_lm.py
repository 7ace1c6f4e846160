"""What the masked-LM head of a loaded model says about sequences: the methods `grover_jax.load`'s
model gets from `MaskedLMMethods`.

    model = grover_jax.load("grover-small-hg19-chr20")
    model.mlm_log_probs("ACGT...")                    # its tokens and [n_tokens, vocab] log-probabilities
    model.fill_mask("ACGTAGG[MASK]TTGCA", top_k=5)    # as transformers' fill-mask pipeline
    model.pseudo_log_likelihood(["ACGT...", ...])     # [n_sequences]: each token masked once
    model.score_variants("genome.fa.gz", [("chr20", 33000123, "G", "A")])

Inputs are `[CLS] tokens [SEP]`, the tokens of the whole sequence (a BPE token depends on its
neighbours, so a sequence is never cut before tokenizing). A sequence of more than W =
max_position_embeddings − 2 tokens is cut into consecutive non-overlapping windows of W tokens,
each read alone: the windowing rule of `embed`. `fill_mask` is the exception: its input must fit
one window, since the context it is given is the caller's choice.

Strand: every method reads a sequence as given, on the strand it is written. The model is
strand-specific (a sequence and its reverse complement are different inputs with different
scores); `score_variants` reads the reference genome's + strand, as VCF positions and alleles are.

Batching: rows of similar length are padded together to a power-of-two length and a fixed number
of rows (`batch_size`), so each shape is compiled once and then reused.

Pseudo-log-likelihood (Salazar et al. 2020; masked marginals as in protein and DNA language
models): PLL(x) = Σ_i log p(x_i | x with token i alone replaced by [MASK]), natural log, over the
sequence's tokens, each window's tokens seeing their own window only.
"""

import dataclasses
import functools
from collections.abc import Iterable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from grover_jax.errors import GroverError
from grover_jax.genome import Genome, canonical_chromosome_name, read_genome
from grover_jax.model.bert import BertForMaskedLM

# Bases each side of a variant read from the genome; the context is then cut to W tokens around it.
DEFAULT_FLANK = 1000


class MaskedLMError(GroverError):
    """An input the MLM methods cannot score (no [MASK], too long, a REF the genome does not have...)."""


@dataclasses.dataclass(frozen=True)
class TokenScores:
    """A sequence's tokens and, per token, one value per vocabulary entry (logits or log-probabilities)."""

    tokens: list[str]
    ids: np.ndarray  # [n_tokens]
    values: np.ndarray  # [n_tokens, vocab_size], float32


def _padded_length(length: int, least: int, limit: int) -> int:
    """The next power of two ≥ `least`, at most `limit`: few shapes, few compiles."""
    return min(limit, max(least, 1 << (length - 1).bit_length()))


class MaskedLMMethods:
    """Mixed into `api.GroverModel`, which provides: model_config, tokenizer, mlm_params (None
    for a classifier), batch_size, window_tokens (W), pad_id / cls_id / sep_id / mask_id, token_ids()
    and variant_inputs()."""

    # -- compiled functions ----------------------------------------------------------------------

    @functools.cached_property
    def _mlm_functions(self):
        """(logits of every position, log-probabilities at given positions, log-probabilities of given
        tokens at given positions), jitted; the head runs on the asked positions only."""
        if self.mlm_params is None:
            raise MaskedLMError("this model has no masked-LM head (a fine-tuned classifier): load a pretraining "
                                "run, an HF BertForMaskedLM folder or a shipped model's name")
        model = BertForMaskedLM(self.model_config)

        def logits(params, ids_BxL, mask_BxL):
            return model.apply({"params": params}, ids_BxL, mask_BxL)

        def log_probs_at(params, ids_BxL, mask_BxL, positions_BxP):
            def head_at_positions(module, ids, mask, positions):
                h_BxLxD = module.encode(ids, mask)
                h_BxPxD = jnp.take_along_axis(h_BxLxD, positions[:, :, None], axis=1)
                return jax.nn.log_softmax(module.predict_tokens(h_BxPxD), axis=-1)

            return model.apply({"params": params}, ids_BxL, mask_BxL, positions_BxP, method=head_at_positions)

        def target_log_probs(params, ids_BxL, mask_BxL, positions_BxP, targets_BxP):
            log_probs_BxPxV = log_probs_at(params, ids_BxL, mask_BxL, positions_BxP)
            return jnp.take_along_axis(log_probs_BxPxV, targets_BxP[:, :, None], axis=2)[:, :, 0]

        return jax.jit(logits), jax.jit(log_probs_at), jax.jit(target_log_probs)

    def _run(self, rows: list[np.ndarray], positions: list[np.ndarray] | None = None,
             targets: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Each id row ([CLS] … [SEP]) through the MLM, in padded batches of similar lengths. Returns
        per row: the logits of every position ([len(row), V]); with `positions`, the log-probabilities
        there ([len(positions[i]), V]); with `targets` too, the log-probability of each target token
        at its position ([len(positions[i])])."""
        logits_fn, log_probs_fn, target_fn = self._mlm_functions
        limit = self.window_tokens + 2
        out: list[np.ndarray] = [None] * len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        for first in range(0, len(order), self.batch_size):
            group = order[first : first + self.batch_size]
            length = _padded_length(max(len(rows[i]) for i in group), 16, limit)
            ids_BxL = np.full((self.batch_size, length), self.pad_id, np.int32)
            mask_BxL = np.zeros((self.batch_size, length), np.int32)
            for row, index in enumerate(group):
                ids_BxL[row, : len(rows[index])] = rows[index]
                mask_BxL[row, : len(rows[index])] = 1
            if positions is None:
                logits = np.asarray(logits_fn(self.mlm_params, ids_BxL, mask_BxL), np.float32)
                for row, index in enumerate(group):
                    out[index] = logits[row, : len(rows[index])]
                continue
            width = _padded_length(max(len(positions[i]) for i in group), 1, limit)
            positions_BxP = np.zeros((self.batch_size, width), np.int32)
            targets_BxP = np.zeros((self.batch_size, width), np.int32)
            for row, index in enumerate(group):
                positions_BxP[row, : len(positions[index])] = positions[index]
                if targets is not None:
                    targets_BxP[row, : len(targets[index])] = targets[index]
            if targets is None:
                result = np.asarray(log_probs_fn(self.mlm_params, ids_BxL, mask_BxL, positions_BxP), np.float32)
            else:
                result = np.asarray(target_fn(self.mlm_params, ids_BxL, mask_BxL, positions_BxP, targets_BxP),
                                    np.float32)
            for row, index in enumerate(group):
                out[index] = result[row, : len(positions[index])]
        return out

    def _windows(self, ids: np.ndarray) -> list[np.ndarray]:
        """`[CLS] window [SEP]` rows of consecutive non-overlapping windows of W ids."""
        return [np.concatenate([[self.cls_id], ids[start : start + self.window_tokens], [self.sep_id]]).astype(np.int32)
                for start in range(0, len(ids), self.window_tokens)]

    def _sequence_ids(self, sequences: Sequence[str]) -> list[np.ndarray]:
        all_ids = []
        for index, sequence in enumerate(sequences):
            ids = self.token_ids(sequence)
            if len(ids) == 0:
                raise MaskedLMError(f"sequence {index} is empty")
            all_ids.append(ids)
        return all_ids

    # -- per-token distributions -----------------------------------------------------------------

    def mlm_logits(self, sequences: str | Sequence[str]) -> TokenScores | list[TokenScores]:
        """The MLM logits at every token of each sequence, nothing masked (a `[MASK]` written in the
        sequence stays one): `TokenScores(tokens, ids, values [n_tokens, vocab_size])`. Read as
        given (this strand); windowing rule in the module docstring. A single string gives a single
        result."""
        return self._per_token(sequences, log_probs=False)

    def mlm_log_probs(self, sequences: str | Sequence[str]) -> TokenScores | list[TokenScores]:
        """As `mlm_logits`, normalised: natural-log probabilities over the vocabulary at every token."""
        return self._per_token(sequences, log_probs=True)

    def _per_token(self, sequences: str | Sequence[str], log_probs: bool) -> TokenScores | list[TokenScores]:
        single = isinstance(sequences, str)
        sequences = [sequences] if single else list(sequences)
        all_ids = self._sequence_ids(sequences)
        rows, owners = [], []
        for index, ids in enumerate(all_ids):
            for row in self._windows(ids):
                rows.append(row)
                owners.append(index)
        pieces: list[list[np.ndarray]] = [[] for _ in sequences]
        for owner, logits in zip(owners, self._run(rows)):
            pieces[owner].append(logits[1:-1])
        results = []
        for ids, parts in zip(all_ids, pieces):
            values = np.concatenate(parts)
            if log_probs:
                values = np.asarray(jax.nn.log_softmax(values, axis=-1), np.float32)
            results.append(TokenScores([self.tokenizer.id_to_token[i] for i in ids], ids, values))
        return results[0] if single else results

    # -- fill-mask -------------------------------------------------------------------------------

    def fill_mask(self, masked: str | Sequence[str], top_k: int = 5) -> list:
        """The `top_k` most probable tokens at each `[MASK]` of a sequence written with `[MASK]`
        markers (e.g. "ACGTAGG[MASK]TTGCA"; the bases around each marker are tokenized as they
        stand), in the form of transformers' fill-mask pipeline: per mask a list of
        {"score": probability, "token": id, "token_str": token, "sequence": the input with this
        mask filled (other masks kept as [MASK])}, best first; one mask gives that list, several a
        list of them. A list of strings gives one result each. Probabilities are over the whole
        vocabulary, all masks of an input present at once; the input (this strand, as written)
        must fit one window of W tokens."""
        single = isinstance(masked, str)
        texts = [masked] if single else list(masked)
        results = self._fill([self.token_ids(text) for text in texts], top_k)
        return results[0] if single else results

    def fill_mask_tokens(self, tokens: Sequence[str] | Sequence[Sequence[str]], top_k: int = 5) -> list:
        """`fill_mask` of a list of tokens (e.g. ["ACG", "[MASK]", "TTAGC"]), each a token of the
        model's vocabulary; a list of such lists gives one result each."""
        single = len(tokens) > 0 and isinstance(tokens[0], str)
        token_lists = [tokens] if single else list(tokens)
        vocab = self.tokenizer.vocab
        id_rows = []
        for index, token_list in enumerate(token_lists):
            unknown = [token for token in token_list if token not in vocab]
            if unknown:
                raise MaskedLMError(f"input {index}: {unknown[0]!r} is not a token of this model's vocabulary")
            id_rows.append(np.array([vocab[token] for token in token_list], np.int32))
        results = self._fill(id_rows, top_k)
        return results[0] if single else results

    def _fill(self, id_rows: list[np.ndarray], top_k: int) -> list:
        if top_k < 1:
            raise MaskedLMError(f"top_k={top_k}: must be >= 1")
        rows, positions = [], []
        for index, ids in enumerate(id_rows):
            if len(ids) > self.window_tokens:
                raise MaskedLMError(f"input {index} has {len(ids)} tokens; fill_mask reads one window of at most "
                                    f"{self.window_tokens} (give less context around the mask)")
            at = np.flatnonzero(ids == self.mask_id)
            if at.size == 0:
                raise MaskedLMError(f"input {index} has no [MASK]")
            rows.append(np.concatenate([[self.cls_id], ids, [self.sep_id]]).astype(np.int32))
            positions.append(at + 1)
        names = self.tokenizer.id_to_token
        results = []
        for ids, at, log_probs in zip(id_rows, positions, self._run(rows, positions)):
            per_mask = []
            for position, row in zip(at - 1, log_probs):
                probabilities = np.exp(row.astype(np.float64))
                best = np.argsort(-probabilities, kind="stable")[:top_k]
                per_mask.append([{"score": float(probabilities[token]), "token": int(token), "token_str": names[token],
                                  "sequence": "".join(names[token] if k == position else names[i]
                                                      for k, i in enumerate(ids))}
                                 for token in best])
            results.append(per_mask[0] if len(per_mask) == 1 else per_mask)
        return results

    # -- pseudo-log-likelihood -------------------------------------------------------------------

    def pseudo_log_likelihood(self, sequences: str | Sequence[str], per_token: bool = False
                              ) -> float | np.ndarray | list[np.ndarray]:
        """PLL of each sequence (definition in the module docstring): every token masked once, alone,
        all masked copies of all sequences in shared batches. Returns a float per sequence
        ([n_sequences] for a list), or with `per_token` each token's log p(x_i | rest) ([n_tokens]
        per sequence). Read as given (this strand)."""
        single = isinstance(sequences, str)
        sequences = [sequences] if single else list(sequences)
        rows, positions, targets, owners = [], [], [], []
        for index, ids in enumerate(self._sequence_ids(sequences)):
            for row in self._windows(ids):
                for position in range(1, len(row) - 1):
                    masked = row.copy()
                    masked[position] = self.mask_id
                    rows.append(masked)
                    positions.append(np.array([position]))
                    targets.append(row[position : position + 1])
                    owners.append(index)
        per_sequence: list[list[float]] = [[] for _ in sequences]
        for owner, log_p in zip(owners, self._run(rows, positions, targets)):
            per_sequence[owner].append(float(log_p[0]))
        if per_token:
            values = [np.array(v, np.float64) for v in per_sequence]
            return values[0] if single else values
        totals = np.array([np.sum(v, dtype=np.float64) for v in per_sequence])
        return float(totals[0]) if single else totals

    # -- variants --------------------------------------------------------------------------------

    def variant_scores(self, variants: Iterable[tuple]) -> np.ndarray:
        """`variant_score(sequence, pos, ref, alt)` of many (sequence, 0-based pos, ref, alt), batched:
        [n_variants] (definition in api.py; read on the strand given). An optional 5th item names
        the variant in errors (as `variant_windows` gives it)."""
        rows, positions, targets = [], [], []
        for index, variant in enumerate(variants):
            sequence, pos, ref, alt = variant[:4]
            try:
                inputs = self.variant_inputs(sequence, pos, ref, alt)
            except ValueError as error:
                where = variant[4] if len(variant) > 4 else f"variant {index}"
                raise MaskedLMError(f"{where}: {error}") from None
            for ids, masked_at, span in inputs:
                rows.append(ids)
                positions.append(masked_at)
                targets.append(span)
        if not rows:
            return np.zeros(0)
        sums = [np.sum(log_p, dtype=np.float64) for log_p in self._run(rows, positions, targets)]
        return np.array(sums[1::2]) - np.array(sums[0::2])

    def score_variants(self, genome: Genome | str | Path | list[str | Path], variants: Iterable[tuple],
                       flank: int = DEFAULT_FLANK) -> np.ndarray:
        """`variant_score` of variants given by genome coordinate: (chromosome, position, ref, alt)
        with VCF's 1-based position, or `genome.vcf.Variant`s (`read_vcf`). Each is scored in the
        window of `flank` bases each side of REF (cut at its record's ends), on the + strand.
        `genome`: FASTA path(s) or a read Genome. Every REF is checked against the genome first;
        a mismatch is one line naming the variant (its VCF line where it has one)."""
        return self.variant_scores(variant_windows(genome, variants, flank))


def variant_windows(genome: Genome | str | Path | list[str | Path], variants: Iterable[tuple],
                    flank: int = DEFAULT_FLANK) -> list[tuple[str, int, str, str, str]]:
    """(window sequence, 0-based position of REF in it, REF, ALT, where) of each variant, `where`
    naming it for errors (its VCF line, or its index): the inputs of `variant_scores`, checked
    against the genome (see `score_variants`)."""
    if flank < 0:
        raise MaskedLMError(f"flank={flank}: must be >= 0")
    if not isinstance(genome, Genome):
        genome = read_genome(genome, keep_soft_mask=False)
    windows = []
    for index, variant in enumerate(variants):
        chromosome, position, ref, alt = variant[:4]
        line = getattr(variant, "line", None)
        where = f"{variant.source} line {line}" if line is not None else f"variant {index} {tuple(variant[:4])}"
        ref, alt = str(ref).upper(), str(alt).upper()
        if not ref or not set(ref + alt) <= set("ACGTN"):
            raise MaskedLMError(f"{where}: alleles {ref!r} > {alt!r} must be spelled in A, C, G, T, N")
        start = int(position) - 1
        name = canonical_chromosome_name(str(chromosome))
        try:
            record = genome.record(name, start)
        except KeyError:
            held = ", ".join(dict.fromkeys(f"{r.chromosome}:{r.offset + 1}-{r.end}" for r in genome.records[:8]))
            raise MaskedLMError(f"{where}: {chromosome}:{position} is not in the genome (it holds {held})") from None
        if start + len(ref) > record.end:
            raise MaskedLMError(f"{where}: REF {ref} runs past the end of record {record.header.split()[0]}")
        low, high = max(record.offset, start - flank), min(record.end, start + len(ref) + flank)
        sequence = genome.bases(name, low, high)
        genome_ref = sequence[start - low : start - low + len(ref)]
        if genome_ref != ref:
            raise MaskedLMError(f"{where}: REF {ref} does not match the genome at {chromosome}:{position} "
                                f"({genome_ref}): another assembly, or another chromosome naming?")
        windows.append((sequence, start - low, ref, alt, where))
    return windows
