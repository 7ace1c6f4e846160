"""The Python API: load a model, tokenize, embed, predict, score variants.

    import grover_jax
    model = grover_jax.load("runs/default/pretrain")       # a run folder or an HF BERT folder
    vectors = model.embed(["ACGT..."], pooling="mean")     # [n_sequences, hidden_size]

Windowing rule of `embed` (any length): a sequence is tokenized whole, without special tokens,
into n tokens (BPE tokens depend on their neighbours, so it is not cut before tokenizing). The ids
are cut into consecutive non-overlapping chunks of W = max_position_embeddings − 2 tokens (the
last may be shorter); each chunk is encoded alone as [CLS] chunk [SEP]; the per-token embeddings
are the last hidden states of the chunks' tokens, concatenated in order ([CLS] and [SEP] rows
dropped): an [n, hidden_size] array. pooling="mean" is the mean of those n rows. Tokens near a
chunk edge therefore see context on one side only; that is the price of exact, non-overlapping
tiling.

Variant score (`variant_score(seq, pos, ref, alt)`, zero-shot): the reference sequence `seq` and
the alternative (ref replaced by alt at 0-based `pos`) are tokenized whole. Tokens shared by both
tokenizations as a common prefix and a common suffix are the context; the remaining tokens, R
(reference) and A (alternative), cover the variant. Each of the two inputs is [CLS] prefix
[MASK]×|R| (or ×|A|) suffix [SEP], all variant tokens masked at once, and the score is

    log P(A) − log P(R) = Σ_i log p(A_i | context) − Σ_j log p(R_j | context)

(natural log, each masked token scored independently, as in masked-marginal scoring of protein
and DNA language models). Positive: the model prefers the alternative allele. When R and A differ
in number of tokens the two sums have different numbers of terms; that is part of the definition
(an allele that needs more tokens to spell is less likely). Context beyond W tokens in total is
cut symmetrically around the variant.
"""

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from grover_jax.genome.strand import reverse_complement
from grover_jax.interop.hf import (
    classifier_from_hf,
    hf_architecture,
    hf_class_names,
    masked_lm_from_hf,
    require_special_tokens,
)
from grover_jax.masked_lm import MaskedLMMethods
from grover_jax.model import BertConfig
from grover_jax.model.bert import (
    BertEmbeddings,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertLayer,
    BertModel,
)
from grover_jax.runs import is_finetuned_folder, load_pretrained, read_finetuned
from grover_jax.tokenizer import SPECIAL_TOKENS, GenomeTokenizer, load_tokenizer
from grover_jax.train.classifier import batch_outputs


@dataclasses.dataclass
class Classifier:
    """A fine-tuned sequence-classification head and the encoder it was tuned with."""

    params: Any  # BertForSequenceClassification tree
    num_labels: int
    pooling: Literal["cls", "mean"] = "cls"
    class_names: list[str] | None = None


def _bucket(length: int, limit: int) -> int:
    """Padded length: the next power of two (≥ 16), at most `limit`; few shapes, few compiles."""
    return min(limit, max(16, 1 << (length - 1).bit_length()))


class GroverModel(MaskedLMMethods):
    """A loaded encoder (with its MLM head and/or a classification head) and its tokenizer; the
    MLM methods (mlm_logits, mlm_log_probs, fill_mask, pseudo_log_likelihood, variant_scores,
    score_variants) are in grover_jax/masked_lm.py."""

    def __init__(self, model_config: BertConfig, tokenizer: GenomeTokenizer, mlm_params: Any = None,
                 classifier: Classifier | None = None, batch_size: int = 32):
        if mlm_params is None and classifier is None:
            raise ValueError("a GroverModel needs MLM parameters or a classifier")
        missing = [token for token in SPECIAL_TOKENS if token not in tokenizer.vocab]
        if missing:
            raise ValueError(f"{tokenizer.path}: the tokenizer lacks the special token(s) {', '.join(missing)}")
        self.model_config = model_config
        self.tokenizer = tokenizer
        # Special-token ids by name from the model's own vocabulary (an imported HF folder may
        # number them differently from the 0-4 of the vocabularies built here).
        self.pad_id, self.cls_id, self.sep_id, self.mask_id = (
            tokenizer.vocab[token] for token in ("[PAD]", "[CLS]", "[SEP]", "[MASK]"))
        self.mlm_params = mlm_params
        self.classifier = classifier
        self.batch_size = batch_size
        encoder = mlm_params["bert"] if mlm_params is not None else classifier.params["bert"]
        self.encoder_params = {k: v for k, v in encoder.items() if k != "pooler"}
        self.window_tokens = model_config.max_position_embeddings - 2
        encoder_model = BertModel(model_config)
        self._hidden = jax.jit(lambda p, ids, mask: encoder_model.apply({"params": p}, ids, mask))
        # Rematerialisation only changes what a backward pass stores; without it every layer's
        # output is a plain captured value.
        states_model = BertModel(dataclasses.replace(model_config, remat=False))
        self._layer_states = jax.jit(
            lambda p, ids, mask, layers: _layer_states(states_model, p, ids, mask, layers), static_argnums=3)
        mlm_model = BertForMaskedLM(model_config)
        self._log_probs = jax.jit(
            lambda p, ids, mask: jax.nn.log_softmax(mlm_model.apply({"params": p}, ids, mask), axis=-1)
        )
        if classifier is not None:
            head = BertForSequenceClassification(model_config, classifier.num_labels, classifier.pooling)
            self._classify = jax.jit(lambda p, ids, mask: head.apply({"params": p}, ids, mask))

    # -- tokens ----------------------------------------------------------------------------------

    @property
    def hidden_size(self) -> int:
        return self.model_config.hidden_size

    def tokenize(self, sequence: str) -> list[str]:
        """The sequence's BPE tokens (no special tokens)."""
        return self.tokenizer.hf.encode(sequence, add_special_tokens=False).tokens

    def token_ids(self, sequence: str) -> np.ndarray:
        return np.asarray(self.tokenizer.encode(sequence, add_special_tokens=False), np.int32)

    # -- embeddings ------------------------------------------------------------------------------

    def _wrapped_inputs(self, chunks: list[np.ndarray]) -> dict[str, np.ndarray]:
        """input_ids and attention_mask [n_chunks, L]: each chunk as [CLS] chunk [SEP], padded
        with [PAD] to the length bucket of the longest."""
        length = _bucket(max(len(c) for c in chunks) + 2, self.window_tokens + 2)
        ids = np.full((len(chunks), length), self.pad_id, np.int32)
        mask = np.zeros((len(chunks), length), np.int32)
        for row, chunk in enumerate(chunks):
            ids[row, : len(chunk) + 2] = [self.cls_id, *chunk, self.sep_id]
            mask[row, : len(chunk) + 2] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def _wrapped_outputs(self, fn, chunks: list[np.ndarray]):
        """`fn(ids, mask)` of the chunks' wrapped rows in batches of `batch_size` rows, each batch
        cut to its own length bucket (padding rows too, so every batch of a bucket has one shape):
        yields each batch's outputs for its chunks, in order."""
        return batch_outputs(lambda batch: fn(batch["input_ids"], batch["attention_mask"]),
                             self._wrapped_inputs(chunks), self.batch_size,
                             length=lambda longest: _bucket(longest, self.window_tokens + 2))

    def embed_chunks(self, chunks: list[np.ndarray]) -> list[np.ndarray]:
        """Last hidden states of each id chunk (≤ W ids) encoded alone as [CLS] chunk [SEP],
        without the [CLS]/[SEP] rows: one [len(chunk), hidden_size] float32 array per chunk."""
        if any(len(c) > self.window_tokens or len(c) == 0 for c in chunks):
            raise ValueError(f"chunks must hold 1..{self.window_tokens} token ids")
        out: list[np.ndarray] = []
        for hidden in self._wrapped_outputs(lambda ids, mask: self._hidden(self.encoder_params, ids, mask), chunks):
            for row in np.asarray(hidden, np.float32):
                out.append(row[1 : 1 + len(chunks[len(out)])])
        return out

    @property
    def num_layers(self) -> int:
        return self.model_config.num_layers

    def layer_states_chunks(self, chunks: list[np.ndarray], layers: Sequence[int] | None = None) -> list[np.ndarray]:
        """Hidden states of each id chunk (≤ W ids, encoded alone as [CLS] chunk [SEP], those two
        rows dropped) at each of `layers` (default all, 0..num_layers): layer 0 is the embeddings'
        output, layer i the output of encoder layer i, so layer num_layers is what `embed_chunks`
        returns (HF's output_hidden_states). One [len(layers), len(chunk), hidden_size] float32
        array per chunk."""
        layers = tuple(range(self.num_layers + 1)) if layers is None else tuple(int(i) for i in layers)
        if not layers or any(not 0 <= i <= self.num_layers for i in layers):
            raise ValueError(f"layers must be among 0..{self.num_layers} (0: the embeddings' output)")
        if any(len(c) > self.window_tokens or len(c) == 0 for c in chunks):
            raise ValueError(f"chunks must hold 1..{self.window_tokens} token ids")
        out: list[np.ndarray] = []
        for states in self._wrapped_outputs(
                lambda ids, mask: self._layer_states(self.encoder_params, ids, mask, layers), chunks):
            for row in np.asarray(states, np.float32):
                out.append(row[:, 1 : 1 + len(chunks[len(out)])])
        return out

    def embed(self, sequences: str | Sequence[str], pooling: Literal["tokens", "mean"] = "tokens",
              strand: Literal["forward", "both"] = "forward"):
        """Per-token ([n_tokens, hidden_size] per sequence) or mean-pooled ([n_sequences,
        hidden_size]) embeddings; windowing rule in the module docstring. A single string gives
        a single result. strand="forward" reads each sequence as given; strand="both" (mean pooling
        only) averages its mean-pooled embedding with its reverse complement's: the model is
        strand-specific, and a sequence's two strands tokenize differently, so only pooled vectors
        pair up."""
        if pooling not in ("tokens", "mean"):
            raise ValueError(f"pooling={pooling!r}: use 'tokens' or 'mean'")
        if strand not in ("forward", "both"):
            raise ValueError(f"strand={strand!r}: use 'forward' or 'both'")
        if strand == "both":
            if pooling != "mean":
                raise ValueError("strand='both' averages mean-pooled embeddings: use pooling='mean'")
            forward = [sequences] if isinstance(sequences, str) else list(sequences)
            pooled = self.embed(forward + [reverse_complement(s) for s in forward], pooling="mean")
            averaged = (pooled[: len(forward)] + pooled[len(forward) :]) / 2
            return averaged[0] if isinstance(sequences, str) else averaged
        single = isinstance(sequences, str)
        sequences = [sequences] if single else list(sequences)
        if not sequences:
            return np.zeros((0, self.hidden_size), np.float32) if pooling == "mean" else []
        chunks, owners = [], []
        for index, sequence in enumerate(sequences):
            ids = self.token_ids(sequence)
            if len(ids) == 0:
                raise ValueError(f"sequence {index} is empty")
            for start in range(0, len(ids), self.window_tokens):
                chunks.append(ids[start : start + self.window_tokens])
                owners.append(index)
        grouped: list[list[np.ndarray]] = [[] for _ in sequences]
        for owner, piece in zip(owners, self.embed_chunks(chunks)):
            grouped[owner].append(piece)
        per_sequence = [np.concatenate(pieces) for pieces in grouped]
        if pooling == "mean":
            pooled = np.stack([tokens.mean(axis=0) for tokens in per_sequence])
            return pooled[0] if single else pooled
        return per_sequence[0] if single else per_sequence

    # -- fine-tuned head -------------------------------------------------------------------------

    def predict(self, sequences: str | Sequence[str]) -> np.ndarray:
        """Logits [n_sequences, num_labels] of the fine-tuned head (softmax them for
        probabilities), each sequence as [CLS] tokens [SEP]; at most W tokens per sequence."""
        if self.classifier is None:
            raise ValueError("this model has no fine-tuned classification head")
        single = isinstance(sequences, str)
        chunks = [self.token_ids(s) for s in ([sequences] if single else sequences)]
        for index, chunk in enumerate(chunks):
            if not 0 < len(chunk) <= self.window_tokens:
                raise ValueError(f"sequence {index} has {len(chunk)} tokens; predict takes 1..{self.window_tokens}")
        logits = np.concatenate([np.asarray(batch, np.float32) for batch in self._wrapped_outputs(
            lambda ids, mask: self._classify(self.classifier.params, ids, mask), chunks)])
        return logits[0] if single else logits

    @property
    def class_names(self) -> list[str]:
        """The fine-tuned head's labels in column order (LABEL_i where the folder names none)."""
        if self.classifier is None:
            raise ValueError("this model has no fine-tuned classification head")
        names = self.classifier.class_names
        return list(names) if names else [f"LABEL_{i}" for i in range(self.classifier.num_labels)]

    def predict_proba(self, sequences: str | Sequence[str]) -> np.ndarray:
        """Class probabilities [n_sequences, num_labels] (softmax of `predict`), columns in
        `class_names` order; each sequence read as given (this strand)."""
        logits = np.asarray(self.predict(sequences), np.float64)
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

    def predict_labelled(self, sequences: str | Sequence[str]) -> dict[str, float] | list[dict[str, float]]:
        """`predict_proba` as {class name: probability} per sequence."""
        probabilities = self.predict_proba(sequences)
        if isinstance(sequences, str):
            return dict(zip(self.class_names, map(float, probabilities)))
        return [dict(zip(self.class_names, map(float, row))) for row in probabilities]

    # -- zero-shot variant effect ----------------------------------------------------------------

    def variant_inputs(self, sequence: str, pos: int, ref: str, alt: str):
        """The two masked inputs of `variant_score`: ((ids_ref, masked positions, R), (ids_alt,
        masked positions, A)), ids including [CLS]/[SEP]."""
        if self.mlm_params is None:
            raise ValueError("variant_score needs the MLM head (load a pretrained run or MLM folder)")
        if not 0 <= pos < len(sequence):
            raise ValueError(f"pos {pos} is outside the sequence (0..{len(sequence) - 1})")
        if not ref or sequence[pos : pos + len(ref)].upper() != ref.upper():
            raise ValueError(f"ref {ref!r} does not match the sequence at {pos} "
                             f"({sequence[pos : pos + len(ref)]!r})")
        alt_sequence = sequence[:pos] + alt + sequence[pos + len(ref) :]
        r, a = self.token_ids(sequence), self.token_ids(alt_sequence)
        prefix = 0
        while prefix < min(len(r), len(a)) and r[prefix] == a[prefix]:
            prefix += 1
        suffix = 0
        while suffix < min(len(r), len(a)) - prefix and r[-1 - suffix] == a[-1 - suffix]:
            suffix += 1
        spans = r[prefix : len(r) - suffix], a[prefix : len(a) - suffix]
        budget = self.window_tokens - max(len(s) for s in spans)
        if budget < 0:
            raise ValueError(f"the variant spans more than {self.window_tokens} tokens")
        left = min(prefix, max(budget // 2, budget - suffix))
        right = min(suffix, budget - left)
        inputs = []
        for ids, span in zip((r, a), spans):
            context_left = ids[prefix - left : prefix]
            context_right = ids[len(ids) - suffix : len(ids) - suffix + right]
            row = np.concatenate([[self.cls_id], context_left, np.full(len(span), self.mask_id), context_right,
                                  [self.sep_id]])
            positions = 1 + left + np.arange(len(span))
            inputs.append((row.astype(np.int32), positions, span))
        return tuple(inputs)

    def variant_score(self, sequence: str, pos: int, ref: str, alt: str) -> float:
        """log P(alt tokens) − log P(ref tokens), variant tokens masked (definition above)."""
        (ref_ids, ref_positions, ref_span), (alt_ids, alt_positions, alt_span) = self.variant_inputs(
            sequence, pos, ref, alt)
        length = _bucket(max(len(ref_ids), len(alt_ids)), self.window_tokens + 2)
        ids = np.full((2, length), self.pad_id, np.int32)
        mask = np.zeros((2, length), np.int32)
        for row, x in enumerate((ref_ids, alt_ids)):
            ids[row, : len(x)] = x
            mask[row, : len(x)] = 1
        log_probs = np.asarray(self._log_probs(self.mlm_params, jnp.asarray(ids), jnp.asarray(mask)), np.float64)
        ref_log_p = log_probs[0, ref_positions, ref_span].sum()
        alt_log_p = log_probs[1, alt_positions, alt_span].sum()
        return float(alt_log_p - ref_log_p)


def _layer_states(model: BertModel, params: Any, ids_BxL: jax.Array, mask_BxL: jax.Array,
                  layers: tuple[int, ...]) -> jax.Array:
    """[B, len(layers), L, D]: the outputs of the embeddings (layer 0) and of each encoder layer,
    captured as the unchanged model computes them (flax capture_intermediates)."""
    def captured(module: Any, method_name: str) -> bool:
        return method_name == "__call__" and isinstance(module, (BertEmbeddings, BertLayer))

    _, state = model.apply({"params": params}, ids_BxL, mask_BxL, capture_intermediates=captured)
    intermediates = state["intermediates"]
    states = [intermediates["embeddings"]["__call__"][0]]
    states += [intermediates["encoder"]["layer"][str(i)]["__call__"][0] for i in range(model.cfg.num_layers)]
    return jnp.stack([states[i] for i in layers], axis=1)


def load(path: str | Path, batch_size: int = 32) -> GroverModel:
    """A pretraining run folder (its best checkpoint), a `grover finetune --out` folder (the
    fine-tuned encoder and head: embed and predict, no MLM head), an HF BertForMaskedLM folder, or
    an HF BertForSequenceClassification folder (as `grover export-hf` / `export_classifier` write)."""
    path = Path(path)
    if is_finetuned_folder(path):
        return _load_finetuned(path, batch_size)
    hf_config_path = path / "config.json"
    is_hf = hf_config_path.exists() and "model_type" in json.loads(hf_config_path.read_text())
    if not is_hf:
        pretrained = load_pretrained(path)
        return GroverModel(pretrained.model_config, load_tokenizer(pretrained.tokenizer_path),
                           mlm_params=pretrained.params, batch_size=batch_size)
    tokenizer = load_tokenizer(path / "tokenizer.json")
    require_special_tokens(tokenizer, path / "tokenizer.json")
    if hf_architecture(path) == "BertForSequenceClassification":
        params, cfg, num_labels = classifier_from_hf(path)
        classifier = Classifier(params, num_labels, "cls", hf_class_names(path))
        return GroverModel(cfg, tokenizer, classifier=classifier, batch_size=batch_size)
    params, cfg = masked_lm_from_hf(path)
    return GroverModel(cfg, tokenizer, mlm_params=params, batch_size=batch_size)


def _load_finetuned(path: Path, batch_size: int) -> GroverModel:
    finetuned = read_finetuned(path)
    classifier = Classifier(finetuned.params(), finetuned.num_classes, finetuned.pooling, finetuned.class_names)
    model = GroverModel(finetuned.encoder, load_tokenizer(finetuned.tokenizer_path), classifier=classifier,
                        batch_size=batch_size)
    finetuned.warn_if_unfinished()
    return model
