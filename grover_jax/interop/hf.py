"""HuggingFace PyTorch BERT folders ↔ this project's parameter trees and run folders.

The mapping is the table in `grover_jax/model/bert.py`, nothing more: a Flax path joined with "."
is HF's state-dict key once the leaf is renamed (kernel/scale/embedding → weight), Dense kernels
are transposed, and attention projections fold their (heads, head_dim) axes into one.

    export  run folder (or params + BertConfig + tokenizer.json) → HF folder:
            config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
            special_tokens_map.json; `AutoModelForMaskedLM` / `AutoTokenizer.from_pretrained`
            load it offline. Written to a temporary sibling folder and renamed into place.
    import  HF BERT MLM folder → parameters, BertConfig and the run config
            (configs/grover_base.py with the model fields of HF's config) that runs.py's
            `import_masked_lm` writes as a run folder, and `load_pretrained` reads directly.
    export  a classifier tree (`export_classifier`; a `grover finetune --out` folder through
            programs/export.py) → HF BertForSequenceClassification folder.

Import refuses, with one line naming the tensor, any tensor it does not know or whose shape
differs from what the HF config implies, and a tokenizer.json without the five special tokens
[PAD] [UNK] [CLS] [SEP] [MASK] at ids 0-4 (the numbering the programs here build inputs with).
Tensors HF itself does not use in a BertForMaskedLM are dropped: the tied decoder copies (after
checking they are tied), `bert.pooler.*` (HF drops it too), the NSP head `cls.seq_relationship.*`
of BertForPreTraining checkpoints, and the `position_ids` buffer older transformers versions saved.
"""

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from grover_jax.atomic_files import replace_folder, temporary_folder
from grover_jax.interop.errors import HfConversionError
from grover_jax.model import BertConfig
from grover_jax.model.bert import BertForMaskedLM, BertForSequenceClassification
from grover_jax.model.config_values import bert_config_from_values
from grover_jax.tokenizer import PAD_ID, SPECIAL_TOKENS, GenomeTokenizer, load_tokenizer

MODEL_FILE = "model.safetensors"
_QKV = ("query", "key", "value")
# In HF's BertForMaskedLM these are copies of other tensors (tie_word_embeddings).
_TIED = {
    "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}
# Tensors of BERT checkpoints that a masked-LM does not use (HF drops them the same way).
_UNUSED_BY_MLM = ("bert.pooler.", "cls.seq_relationship.", "bert.embeddings.position_ids")


# ---------------------------------------------------------------------------------------------
# The name/shape mapping, both ways.


def hf_key(path: tuple[str, ...]) -> str:
    """HF state-dict key of a Flax parameter path."""
    *modules, leaf = path
    leaf = "weight" if leaf in ("kernel", "scale", "embedding") else leaf
    return ".".join([*modules, leaf])


def hf_shape(path: tuple[str, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the HF tensor that holds a Flax parameter of `shape` at `path`."""
    leaf = path[-1]
    if leaf == "kernel":
        if path[-2] in _QKV:  # [D, H, Dh] → Linear [H*Dh, D]
            return (math.prod(shape[1:]), shape[0])
        return (shape[-1], math.prod(shape[:-1]))  # [H, Dh, D] or [in, out] → [out, in]
    if leaf == "bias":
        return (math.prod(shape),)
    return tuple(shape)


def _to_hf(path: tuple[str, ...], x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if path[-1] == "kernel":
        x = (x.reshape(x.shape[0], -1) if path[-2] in _QKV else x.reshape(-1, x.shape[-1])).T
    elif path[-1] == "bias":
        x = x.reshape(-1)
    return np.ascontiguousarray(x)


def _from_hf(path: tuple[str, ...], x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if path[-1] == "kernel":
        x = x.T
    return np.ascontiguousarray(x.reshape(shape))


def flax_to_hf(params: Any) -> dict[str, np.ndarray]:
    """HF state dict (float32 numpy) of a BertForMaskedLM or BertForSequenceClassification tree,
    without HF's tied copies (`save_pretrained` leaves them out too)."""
    return {hf_key(path): _to_hf(path, leaf) for path, leaf in flatten_dict(params).items()}


def hf_to_flax(state: dict[str, np.ndarray], template: Any, where: str = "HF folder") -> Any:
    """The parameter tree shaped like `template` (arrays or ShapeDtypeStructs) from an HF state dict.

    Every template leaf must be present with the shape the mapping implies, and every HF tensor
    must be used, tied or known-unused; otherwise HfConversionError names the first offender.
    """
    state = _normalised_keys(state)
    expected = flatten_dict(template)
    keys = {hf_key(path): path for path in expected}
    for copy, original in _TIED.items():
        if copy in state and original in keys:
            if original not in state:  # e.g. only the decoder bias was saved
                state[original] = state[copy]
            if state[copy].shape != state[original].shape or not np.array_equal(state[copy], state[original]):
                raise HfConversionError(
                    f"{where}: {copy} differs from {original}; an untied MLM decoder is not supported"
                )
    unknown = [k for k in state if k not in keys and k not in _TIED and not k.startswith(_UNUSED_BY_MLM)]
    if unknown:
        raise HfConversionError(f"{where}: unknown tensor {unknown[0]} {tuple(state[unknown[0]].shape)}"
                                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
    flat = {}
    for key, path in keys.items():
        want = hf_shape(path, tuple(expected[path].shape))
        if key not in state:
            raise HfConversionError(f"{where}: missing tensor {key} {want}")
        if tuple(state[key].shape) != want:
            raise HfConversionError(
                f"{where}: tensor {key} has shape {tuple(state[key].shape)}, the config implies {want}"
            )
        flat[path] = _from_hf(path, state[key], tuple(expected[path].shape))
    return unflatten_dict(flat)


def _normalised_keys(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TF-era names (LayerNorm gamma/beta) as today's transformers renames them on load."""
    renamed = {}
    for key, value in state.items():
        if key.endswith("LayerNorm.gamma"):
            key = key[: -len("gamma")] + "weight"
        elif key.endswith("LayerNorm.beta"):
            key = key[: -len("beta")] + "bias"
        renamed[key] = value
    return renamed


# ---------------------------------------------------------------------------------------------
# HF config.json ↔ BertConfig.


class HfConfigKey(NamedTuple):
    key: str  # in config.json
    field: str | None = None  # the BertConfig field it carries; None: a value this BERT always has
    fixed: Any = None  # that value
    optional: bool = False  # an imported config.json may omit it: BertConfig's default (HF's too) stands


# The one table between BertConfig and HF: config.json's keys in the order an export writes them.
HF_CONFIG = (
    HfConfigKey("vocab_size", "vocab_size"),
    HfConfigKey("hidden_size", "hidden_size"),
    HfConfigKey("num_hidden_layers", "num_layers"),
    HfConfigKey("num_attention_heads", "num_heads"),
    HfConfigKey("intermediate_size", "intermediate_size"),
    HfConfigKey("hidden_act", fixed="gelu"),
    HfConfigKey("hidden_dropout_prob", "hidden_dropout", optional=True),
    HfConfigKey("attention_probs_dropout_prob", "attention_dropout", optional=True),
    HfConfigKey("max_position_embeddings", "max_position_embeddings"),
    HfConfigKey("type_vocab_size", "type_vocab_size", optional=True),
    HfConfigKey("initializer_range", "initializer_range", optional=True),
    HfConfigKey("layer_norm_eps", "layer_norm_eps", optional=True),
    HfConfigKey("pad_token_id", fixed=PAD_ID),
    HfConfigKey("position_embedding_type", fixed="absolute"),
    HfConfigKey("tie_word_embeddings", fixed=True),
    HfConfigKey("dtype", fixed="float32"),
)


def hf_config(cfg: BertConfig, architecture: str, **extra: Any) -> dict[str, Any]:
    return {
        "architectures": [architecture],
        "model_type": "bert",
        **{row.key: row.fixed if row.field is None else getattr(cfg, row.field) for row in HF_CONFIG},
        **extra,
    }


def model_config_from_hf(config: dict[str, Any], where: str = "config.json") -> BertConfig:
    """BertConfig for an HF BERT config; refuses what this BERT does not compute."""
    if config.get("model_type") != "bert":
        raise HfConversionError(f"{where}: model_type {config.get('model_type')!r}, expected 'bert'")
    checks = {
        "hidden_act": ("gelu",),
        "position_embedding_type": ("absolute",),
        "is_decoder": (False,),
        "add_cross_attention": (False,),
    }
    for field, allowed in checks.items():
        if field in config and config[field] not in allowed:
            raise HfConversionError(f"{where}: {field}={config[field]!r} is not supported (only {allowed[0]!r})")
    if config.get("tie_word_embeddings", True) is False:
        raise HfConversionError(f"{where}: tie_word_embeddings=false is not supported (the MLM decoder is tied)")
    values = {}
    for row in HF_CONFIG:
        if row.field is None:
            continue
        if row.key in config:
            values[row.field] = config[row.key]
        elif not row.optional:
            raise HfConversionError(f"{where}: missing field {row.key}")
    try:
        return bert_config_from_values(values, {row.field: row.key for row in HF_CONFIG if row.field})
    except ValueError as error:  # a mistyped value, named by its config.json key
        raise HfConversionError(f"{where}: {error}") from None


def run_config_from_hf(cfg: BertConfig) -> ml_collections.ConfigDict:
    """The project's run config (configs/grover_base.py) carrying an imported model's fields: each
    of the table's fields that the run config's `model` section has."""
    from grover_jax.configs import grover_base

    config = grover_base.get_config()
    for row in HF_CONFIG:
        if row.field is not None and row.field in config.model:
            config.model[row.field] = getattr(cfg, row.field)
    config.data.seq_len = min(config.data.seq_len, cfg.max_position_embeddings)
    return config


# ---------------------------------------------------------------------------------------------
# Reading and writing HF folders.


def read_hf_folder(hf_dir: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(config.json, float32 state dict) of an HF model folder: model.safetensors (possibly
    sharded with an index) or, with torch installed, pytorch_model.bin."""
    hf_dir = Path(hf_dir)
    config_path = hf_dir / "config.json"
    if not config_path.exists():
        raise HfConversionError(f"{hf_dir}: not a HuggingFace model folder (no config.json)")
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise HfConversionError(f"{config_path}: unreadable ({error})") from None
    if not isinstance(config, dict):
        raise HfConversionError(f"{config_path}: not a JSON object")
    index = hf_dir / f"{MODEL_FILE}.index.json"
    if (hf_dir / MODEL_FILE).exists() or index.exists():
        from safetensors.numpy import load_file

        files = _shard_files(index) if index.exists() else [MODEL_FILE]
        state = {}
        for name in files:
            try:
                state.update(load_file(hf_dir / name))
            except Exception as error:  # noqa: BLE001 - safetensors raises its own untyped errors
                raise HfConversionError(f"{hf_dir / name}: unreadable safetensors file ({error})") from None
    elif (hf_dir / "pytorch_model.bin").exists():
        try:
            import torch
        except ImportError:
            raise HfConversionError(f"{hf_dir}: pytorch_model.bin needs torch (pip install torch), "
                                    "or convert it to model.safetensors") from None
        loaded = torch.load(hf_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
        state = {k: v.float().numpy() for k, v in loaded.items()}
    else:
        raise HfConversionError(f"{hf_dir}: no {MODEL_FILE} or pytorch_model.bin")
    return config, {k: np.asarray(v, np.float32) for k, v in state.items()}


def _shard_files(index: Path) -> list[str]:
    """The safetensors files a sharded folder's model.safetensors.index.json maps tensors to."""
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        files = sorted(set(weight_map.values()))
    except json.JSONDecodeError as error:
        raise HfConversionError(f"{index}: unreadable ({error})") from None
    except (KeyError, TypeError, AttributeError):
        raise HfConversionError(f"{index}: no weight_map of tensor name -> file") from None
    if not files or not all(isinstance(f, str) and f and Path(f).name == f for f in files):
        raise HfConversionError(f"{index}: weight_map must name safetensors files of the folder")
    return files


def _tensor_names(hf_dir: Path) -> list[str]:
    """Names of an HF folder's tensors, from the safetensors headers or the index (no tensor read)."""
    index = hf_dir / f"{MODEL_FILE}.index.json"
    if index.exists():
        _shard_files(index)  # a readable index with a weight_map, or HfConversionError
        return list(json.loads(index.read_text())["weight_map"])
    if (hf_dir / MODEL_FILE).exists():
        from safetensors import safe_open

        try:
            with safe_open(hf_dir / MODEL_FILE, "np") as handle:
                return list(handle.keys())
        except Exception as error:  # noqa: BLE001 - safetensors raises its own untyped errors
            raise HfConversionError(f"{hf_dir / MODEL_FILE}: unreadable safetensors file ({error})") from None
    return list(read_hf_folder(hf_dir)[1])


def hf_architecture(hf_dir: str | Path) -> str:
    """The HF class an HF BERT folder holds: config.json's `architectures[0]`, or, where the config
    names none (older or hand-written configs), BertForMaskedLM when it has the MLM head's
    cls.predictions.* tensors and BertForSequenceClassification when it has classifier.*."""
    hf_dir = Path(hf_dir)
    config_path = hf_dir / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except FileNotFoundError:
        raise HfConversionError(f"{hf_dir}: not a HuggingFace model folder (no config.json)") from None
    except json.JSONDecodeError as error:
        raise HfConversionError(f"{config_path}: unreadable ({error})") from None
    architectures = config.get("architectures") if isinstance(config, dict) else None
    if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
        return architectures[0]
    names = _tensor_names(hf_dir)
    if any(name.startswith("cls.predictions.") for name in names):
        return "BertForMaskedLM"
    if "classifier.weight" in names:
        return "BertForSequenceClassification"
    raise HfConversionError(f"{config_path}: no architectures, and the tensors hold neither an MLM head "
                            "(cls.predictions.*) nor a classifier (classifier.*)")


def require_special_tokens(tokenizer: GenomeTokenizer, where: str | Path, numbered: bool = False) -> dict[str, int]:
    """{name: id} of [PAD] [UNK] [CLS] [SEP] [MASK], looked up by name in the tokenizer's vocabulary;
    HfConversionError naming the ones missing. With `numbered`, they must also be ids 0-4, the
    numbering pretraining, next-k-mer and fine-tuning build their inputs with."""
    missing = [token for token in SPECIAL_TOKENS if token not in tokenizer.vocab]
    if missing:
        raise HfConversionError(f"{where}: the tokenizer lacks the special token(s) {', '.join(missing)} "
                                f"(a BERT tokenizer needs {' '.join(SPECIAL_TOKENS)})")
    ids = {token: tokenizer.vocab[token] for token in SPECIAL_TOKENS}
    if numbered and list(ids.values()) != list(range(len(SPECIAL_TOKENS))):
        raise HfConversionError(
            f"{where}: special tokens at ids {', '.join(f'{t}={i}' for t, i in ids.items())}; the programs here "
            f"need {', '.join(f'{t}={i}' for i, t in enumerate(SPECIAL_TOKENS))} "
            "(grover_jax.load() reads the HF folder as it is)")
    return ids


def _tokenizer_files(tokenizer_path: Path, model_max_length: int) -> dict[str, str]:
    specials = dict(zip(("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"), SPECIAL_TOKENS))
    return {
        "tokenizer.json": tokenizer_path.read_text(),
        # PreTrainedTokenizerFast reads tokenizer.json as is (normalizer, [CLS]/[SEP] template).
        "tokenizer_config.json": json.dumps({"tokenizer_class": "PreTrainedTokenizerFast",
                                             "model_max_length": model_max_length,
                                             "do_lower_case": False, **specials}, indent=2),
        "special_tokens_map.json": json.dumps(specials, indent=2),
    }


def _write_folder_atomically(out: Path, files: dict[str, str], tensors: dict[str, np.ndarray],
                             overwrite: bool) -> Path:
    from safetensors.numpy import save_file

    out = Path(out)
    if out.exists() and not overwrite:
        raise HfConversionError(f"{out} exists (pass --overwrite to replace it)")
    temporary = temporary_folder(out)
    save_file(tensors, temporary / MODEL_FILE, metadata={"format": "pt"})
    for name, text in files.items():
        (temporary / name).write_text(text)
    replace_folder(temporary, out)
    return out


def export_masked_lm(params: Any, model_config: BertConfig, tokenizer_path: str | Path, out: str | Path,
                     overwrite: bool = False, extra_files: dict[str, str] | None = None) -> Path:
    """Write a BertForMaskedLM folder for a BertForMaskedLM parameter tree; `extra_files` (name ->
    text, e.g. the model card README.md) go into the same folder before it is moved into place."""
    config = hf_config(model_config, "BertForMaskedLM")
    files = {"config.json": json.dumps(config, indent=2),
             **_tokenizer_files(Path(tokenizer_path), model_config.max_position_embeddings), **(extra_files or {})}
    return _write_folder_atomically(Path(out), files, flax_to_hf(params), overwrite)


def export_classifier(params: Any, model_config: ml_collections.ConfigDict | BertConfig, num_labels: int,
                      pooling: str, tokenizer_path: str | Path, out: str | Path,
                      overwrite: bool = False, class_names: list[str] | None = None,
                      extra_files: dict[str, str] | None = None) -> Path:
    """A fine-tuned `BertForSequenceClassification` tree (bert.py) as HF's class of that name;
    `class_names` (distinct strings, one per label) become config.json's id2label, else LABEL_i.

    Only "cls" pooling has an HF counterpart (pooler dense+tanh on [CLS], then the classifier);
    a "mean"-pooled head is refused rather than exported to a model that computes something else.
    """
    if pooling != "cls":
        raise HfConversionError(
            f"pooling={pooling!r}: HF BertForSequenceClassification classifies the pooled [CLS] "
            "token, so only pooling='cls' heads can be exported (export the encoder with export-hf instead)"
        )
    if "classifier" not in params or "pooler" not in params.get("bert", {}):
        raise HfConversionError("params: not a cls-pooled classifier tree (needs bert/pooler and classifier)")
    # A fine-tuning config may leave model.vocab_size at 0 (taken from the tokenizer at run time).
    vocab_size = params["bert"]["embeddings"]["word_embeddings"]["embedding"].shape[0]
    cfg = model_config if isinstance(model_config, BertConfig) else BertConfig.from_config(model_config, vocab_size)
    if params["classifier"]["bias"].shape != (num_labels,):
        raise HfConversionError(f"params: classifier has {params['classifier']['bias'].shape[0]} labels, "
                                f"num_labels={num_labels}")
    names = [str(name) for name in class_names or ()]
    if len(names) != num_labels or len(set(names)) != num_labels:
        names = [f"LABEL_{i}" for i in range(num_labels)]
    labels = dict(enumerate(names))
    config = hf_config(cfg, "BertForSequenceClassification", num_labels=num_labels,
                       id2label={str(i): name for i, name in labels.items()},
                       label2id={name: i for i, name in labels.items()}, classifier_dropout=None)
    files = {"config.json": json.dumps(config, indent=2),
             **_tokenizer_files(Path(tokenizer_path), cfg.max_position_embeddings), **(extra_files or {})}
    return _write_folder_atomically(Path(out), files, flax_to_hf(params), overwrite)


def _template(model: BertForMaskedLM | BertForSequenceClassification) -> Any:
    ids_1x1 = jnp.zeros((1, 1), jnp.int32)
    abstract = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), ids_1x1, ids_1x1))
    return nn.unbox(abstract["params"])


def masked_lm_from_hf(hf_dir: str | Path) -> tuple[Any, BertConfig]:
    """(BertForMaskedLM params, BertConfig) of an HF BERT MLM folder."""
    config, state = read_hf_folder(hf_dir)
    cfg = model_config_from_hf(config, f"{hf_dir}/config.json")
    params = hf_to_flax(state, _template(BertForMaskedLM(cfg)), str(hf_dir))
    return params, cfg


def classifier_from_hf(hf_dir: str | Path) -> tuple[Any, BertConfig, int]:
    """(BertForSequenceClassification params, BertConfig, num_labels) of an HF classifier folder."""
    config, state = read_hf_folder(hf_dir)
    cfg = model_config_from_hf(config, f"{hf_dir}/config.json")
    num_labels = config.get("num_labels", len(config.get("id2label") or {}) or 2)
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise HfConversionError(f"{hf_dir}/config.json: num_labels={num_labels!r} must be a whole number >= 1")
    params = hf_to_flax(state, _template(BertForSequenceClassification(cfg, num_labels, "cls")), str(hf_dir))
    return params, cfg, num_labels


def hf_class_names(hf_dir: str | Path) -> list[str] | None:
    """The labels of an HF classifier folder in logit order (config.json's id2label), or None
    when it names none, or not one for each of 0..n-1."""
    id2label = json.loads((Path(hf_dir) / "config.json").read_text()).get("id2label") or {}
    try:
        names = {int(i): str(name) for i, name in id2label.items()}
    except (TypeError, ValueError, AttributeError):
        return None
    return [names[i] for i in range(len(names))] if sorted(names) == list(range(len(names))) and names else None


# ---------------------------------------------------------------------------------------------
# Parity with PyTorch.


def parity_sequences(n_tokens: int) -> list[str]:
    """Two pieces of the bundled real chr20 slice, one filling `n_tokens` and one a third of it
    (so the check also covers padding)."""
    from grover_jax import bundled
    from grover_jax.genome import read_fasta

    record = read_fasta(bundled.FASTA, keep_soft_mask=False)[0]
    # ~4.1 nt per token on hg19; 3.5 nt per token leaves room to cut to exactly n_tokens.
    start = 1_000_000
    bases = record.sequence[start : start + int(3.5 * n_tokens) + 64].tobytes().decode("ascii")
    return [bases, bases[len(bases) // 2 : len(bases) // 2 + len(bases) // 3]]


def logits_parity(hf_dir: str | Path, params: Any, model_config: BertConfig, tokenizer_path: str | Path,
                  sequences: Iterable[str] | None = None) -> float:
    """Max |PyTorch logits − Flax logits| over real-token positions of `sequences` (default:
    `parity_sequences`), with the HF folder loaded by transformers' Auto classes, offline.
    The folder's architecture (MaskedLM or SequenceClassification, `hf_architecture`) picks the
    Flax model. The HF tokenizer must also give the ids the Flax model's own tokenizer
    (`tokenizer_path`) gives, else HfConversionError: equal logits on inputs the two sides
    would tokenize differently prove nothing about the folder a user loads."""
    import torch
    import transformers

    hf_dir = Path(hf_dir)
    architecture = hf_architecture(hf_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    max_len = model_config.max_position_embeddings
    texts = list(sequences) if sequences is not None else parity_sequences(max_len - 2)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="np")
    ids, mask = batch["input_ids"].astype(np.int32), batch["attention_mask"].astype(np.int32)
    ours = load_tokenizer(tokenizer_path)
    for row, text in enumerate(texts):
        expected = ours.encode(text)
        if len(expected) > max_len:  # truncated as HF truncates one sequence: [SEP] kept last
            expected = [*expected[: max_len - 1], expected[-1]]
        if ids[row, mask[row].astype(bool)].tolist() != expected:
            raise HfConversionError(f"{hf_dir}: AutoTokenizer's ids differ from {tokenizer_path}'s on "
                                    f"sequence {row} ({text[:20]}...)")
    if architecture == "BertForSequenceClassification":
        hf = transformers.AutoModelForSequenceClassification.from_pretrained(hf_dir, local_files_only=True)
        flax_model = BertForSequenceClassification(model_config, hf.config.num_labels, "cls")
    else:
        hf = transformers.AutoModelForMaskedLM.from_pretrained(hf_dir, local_files_only=True)
        flax_model = BertForMaskedLM(model_config)
    hf.eval()
    with torch.no_grad():
        torch_logits = hf(input_ids=torch.from_numpy(ids).long(),
                          attention_mask=torch.from_numpy(mask).long()).logits.numpy()
    # Full float32 matmuls: on GPUs/TPUs XLA's default precision (TF32/bf16 passes) alone would
    # exceed the tolerance against PyTorch's float32 CPU logits.
    with jax.default_matmul_precision("highest"):
        flax_logits = np.asarray(jax.jit(flax_model.apply)({"params": params}, ids, mask))
    if flax_logits.ndim == 3:  # padded positions' logits are not part of the model's answer
        real = mask.astype(bool)
        return float(np.abs(torch_logits[real] - flax_logits[real]).max())
    return float(np.abs(torch_logits - flax_logits).max())


def check_parity(hf_dir: str | Path, params: Any, model_config: BertConfig, tokenizer_path: str | Path,
                 tolerance: float = 1e-4) -> float | None:
    """`logits_parity` when torch and transformers are installed (None otherwise); raises
    HfConversionError above `tolerance`."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return None
    difference = logits_parity(hf_dir, params, model_config, tokenizer_path)
    if not difference <= tolerance:
        raise HfConversionError(f"{hf_dir}: PyTorch and Flax logits differ by {difference:.3g} (> {tolerance})")
    return difference
