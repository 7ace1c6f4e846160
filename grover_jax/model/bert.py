"""BERT in Flax linen, computing exactly what HF `BertForMaskedLM` (and
`BertForSequenceClassification`) compute.

Submodules carry HF's names, so a parameter path is HF's state-dict key with "." replaced by "/"
and the leaf renamed; export to PyTorch is this table, nothing else (D hidden, H heads, Dh head
dim; L = bert/encoder/layer/{i}):

    flax path                                  HF key                    tensor
    bert/embeddings/{word,position,token_type}_embeddings/embedding
                                               ….weight                  same
    …/LayerNorm/scale, …/LayerNorm/bias        …LayerNorm.weight, .bias  same
    L/attention/self/{query,key,value}/kernel  ….weight                  kernel.reshape(D, H*Dh).T
      [D, H, Dh]
    L/attention/self/{query,key,value}/bias    ….bias                    bias.reshape(H*Dh)
      [H, Dh]
    L/attention/output/dense/kernel [H, Dh, D] ….weight                  kernel.reshape(H*Dh, D).T
    any other …/kernel [in, out]               ….weight                  kernel.T
      (L/intermediate/dense, L/output/dense, cls/predictions/transform/dense,
       bert/pooler/dense, classifier)
    any other …/bias                           ….bias                    same
    cls/predictions/bias                       cls.predictions.bias      same
    HF ties cls.predictions.decoder.weight to the word embeddings and cls.predictions.decoder.bias
    to cls.predictions.bias; we store neither.

Attention projections keep heads and head_dim as separate axes so the sharding rules can split
heads over "tensor" by name; that is the only reshape in the mapping.

Numerics: float32 parameters always; with compute_dtype="bfloat16" matmuls and activations run in
bf16 while LayerNorm statistics, attention softmax and the MLM logits stay float32.
"""

from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from grover_jax.model.attention import attention
from grover_jax.model.config import BertConfig
from grover_jax.model.dropout import Dropout

Array = jax.Array


def _compute_dtype(cfg: BertConfig) -> Any:
    return jnp.bfloat16 if cfg.compute_dtype == "bfloat16" else jnp.float32


def _normal(cfg: BertConfig, *logical_axes: str | None) -> nn.initializers.Initializer:
    # HF BertPreTrainedModel._init_weights: N(0, initializer_range) for every Linear and Embedding.
    return nn.with_logical_partitioning(nn.initializers.normal(cfg.initializer_range), logical_axes)


def _zeros(*logical_axes: str | None) -> nn.initializers.Initializer:
    return nn.with_logical_partitioning(nn.initializers.zeros_init(), logical_axes)


def _layer_norm(cfg: BertConfig, name: str) -> nn.LayerNorm:
    # Statistics in float32 even under bf16 compute: post-LN BERT's residual stream grows with
    # depth and bf16 variance loses the small per-token differences. Two-pass variance as PyTorch.
    # Norm vectors stay replicated (None): fsdp-sharding a 768-vector saves nothing, costs a gather.
    return nn.LayerNorm(
        epsilon=cfg.layer_norm_eps,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        use_fast_variance=False,
        scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), (None,)),
        bias_init=_zeros(None),
        name=name,
    )


def _dense(
    cfg: BertConfig,
    features: int,
    kernel_axes: tuple[str | None, str | None],
    bias_axes: tuple[str | None],
    name: str,
) -> nn.Dense:
    return nn.Dense(
        features,
        dtype=_compute_dtype(cfg),
        param_dtype=jnp.float32,
        kernel_init=_normal(cfg, *kernel_axes),
        bias_init=_zeros(*bias_axes),
        name=name,
    )


class HeadsDense(nn.Module):
    """A dense layer whose kernel keeps heads and head_dim as axes: q/k/v and attention output.

    Spelled out rather than nn.DenseGeneral, which initialises a flattened 2-D kernel and
    reshapes it: its 3 logical names then meet a 2-D array when flax re-checks parameter shapes
    under active sharding rules.
    """

    cfg: BertConfig
    kernel_shape: tuple[int, int, int]
    kernel_axes: tuple[str | None, str | None, str | None]
    bias_axes: tuple[str | None, ...]
    equation: str  # einsum of input and kernel, e.g. "bld,dhk->blhk"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        dtype = _compute_dtype(self.cfg)
        n_out = len(self.bias_axes)
        kernel, bias = _heads_params(self)
        y = jnp.einsum(self.equation, x.astype(dtype), kernel.astype(dtype))
        return y + bias.astype(dtype)[(None,) * (y.ndim - n_out)]


class HeadsParams(nn.Module):
    """HeadsDense's kernel and bias without its matmul, for projections computed together."""

    cfg: BertConfig
    kernel_shape: tuple[int, int, int]
    kernel_axes: tuple[str | None, str | None, str | None]
    bias_axes: tuple[str | None, ...]

    @nn.compact
    def __call__(self) -> tuple[Array, Array]:
        return _heads_params(self)


def _heads_params(module: "HeadsDense | HeadsParams") -> tuple[Array, Array]:
    """Declare `kernel` and `bias` in `module`'s own scope (their paths are HF's state-dict keys)."""
    kernel = module.param(
        "kernel", _normal(module.cfg, *module.kernel_axes), module.kernel_shape, jnp.float32
    )
    n_out = len(module.bias_axes)
    bias = module.param("bias", _zeros(*module.bias_axes), module.kernel_shape[-n_out:], jnp.float32)
    return kernel, bias


def _gathered_table(table_NxD: Array) -> Array:
    """An embedding table made whole on every device before a lookup (FSDP's all-gather).

    A lookup into an fsdp-sharded table would come out sharded like the table, and the compiler
    then falls back to replicating and re-splitting it into the batch-sharded layout.
    """
    return nn.with_logical_constraint(table_NxD, (None, None))


def attention_path(cfg: BertConfig, dtype: Any, dropout_active: bool) -> str:
    """Which attention kernel (model/attention.py) runs: "cudnn", "xla_cpu", "blockwise" or "xla".

    auto: cuDNN's fused kernel on GPUs with half-precision inputs, "xla_cpu" on CPUs (the same
    attention with a backward pass written for XLA:CPU's matmuls), the spelled-out "xla" softmax
    everywhere else. cuDNN has no dropout on the probabilities, so
    attention dropout in training takes the XLA path; so does "blockwise" with threefry masks,
    which its backward pass cannot regenerate. "blockwise" keeps O(L) instead of O(L²)
    activations per head for the backward pass, at some cost in speed on a CPU (BENCHMARKS.md).
    """
    implementation = cfg.attention_implementation
    if implementation == "auto":
        backend = jax.default_backend()
        if backend == "gpu" and dtype in (jnp.bfloat16, jnp.float16):
            implementation = "cudnn"
        else:
            implementation = "xla_cpu" if backend == "cpu" else "xla"
    if dropout_active and (
        implementation == "cudnn" or (implementation == "blockwise" and cfg.dropout_rng != "hash")
    ):
        return "xla"
    return implementation


def _gelu(x: Array) -> Array:
    # HF hidden_act="gelu" is the exact erf form, not the tanh approximation, written as PyTorch
    # writes it: x/2 (1 + erf(x/√2)). jax.nn.gelu(approximate=False) goes through erfc, which
    # XLA:CPU evaluates with an exp and two polynomial branches (measurably slower per step).
    return x * 0.5 * (1.0 + jax.lax.erf(x * (2.0**-0.5)))


class BertEmbeddings(nn.Module):
    """word + absolute position + token type → LayerNorm → dropout (HF BertEmbeddings)."""

    cfg: BertConfig

    def setup(self):
        cfg = self.cfg
        self.word_embeddings = nn.Embed(
            cfg.vocab_size, cfg.hidden_size, embedding_init=_normal(cfg, "vocab", "embed")
        )
        self.position_embeddings = nn.Embed(
            cfg.max_position_embeddings,
            cfg.hidden_size,
            embedding_init=_normal(cfg, "position", "embed"),
        )
        self.token_type_embeddings = nn.Embed(
            cfg.type_vocab_size, cfg.hidden_size, embedding_init=_normal(cfg, None, "embed")
        )
        self.LayerNorm = _layer_norm(cfg, "LayerNorm")
        self.dropout = Dropout(cfg.hidden_dropout, cfg.dropout_rng)

    def __call__(
        self, input_ids_BxL: Array, token_type_ids_BxL: Array, deterministic: bool
    ) -> Array:
        length = input_ids_BxL.shape[1]
        word_VxD = _gathered_table(self.word_embeddings.embedding)
        position_PxD = _gathered_table(self.position_embeddings.embedding)
        token_type_TxD = _gathered_table(self.token_type_embeddings.embedding)
        h_BxLxD = (
            jnp.take(word_VxD, input_ids_BxL, axis=0)
            + position_PxD[None, :length]
            + jnp.take(token_type_TxD, token_type_ids_BxL, axis=0)
        )
        h_BxLxD = self.dropout(self.LayerNorm(h_BxLxD), deterministic)
        return nn.with_logical_constraint(
            h_BxLxD.astype(_compute_dtype(self.cfg)), ("batch", "length", "embed")
        )


class BertSelfAttention(nn.Module):
    """Multi-head attention over all non-padding keys (HF BertSelfAttention)."""

    cfg: BertConfig

    @nn.compact
    def __call__(self, h_BxLxD: Array, attention_mask_BxL: Array, deterministic: bool) -> Array:
        cfg = self.cfg
        activation_axes = ("batch", "length", "heads", "kv")

        # One [D, 3·H·K] matmul for query, key and value rather than three [D, H·K] ones (CPU
        # matmuls run closer to peak on the wider operand); the parameters stay HF's three.
        shape = (cfg.hidden_size, cfg.num_heads, cfg.head_dim)
        kernels, biases = zip(*(
            HeadsParams(cfg, shape, ("embed", "heads", "kv"), ("heads", "kv"), name=name)()
            for name in ("query", "key", "value")
        ))
        dtype = _compute_dtype(cfg)
        qkv_kernel_Dx3xHxK = jnp.stack(kernels, axis=1).astype(dtype)
        qkv_bias_3xHxK = jnp.stack(biases).astype(dtype)
        qkv_BxLx3xHxK = jnp.einsum("bld,dthk->blthk", h_BxLxD.astype(dtype), qkv_kernel_Dx3xHxK)
        qkv_BxLx3xHxK = qkv_BxLx3xHxK + qkv_bias_3xHxK[None, None]
        q_BxLxHxK, k_BxLxHxK, v_BxLxHxK = (qkv_BxLx3xHxK[:, :, i] for i in range(3))
        q_BxLxHxK = nn.with_logical_constraint(q_BxLxHxK, activation_axes)
        k_BxLxHxK = nn.with_logical_constraint(k_BxLxHxK, activation_axes)
        v_BxLxHxK = nn.with_logical_constraint(v_BxLxHxK, activation_axes)
        # Padding keys are excluded for every query (HF's extended attention mask); padded
        # queries still produce outputs, which the loss never reads.
        key_is_real_BxL = attention_mask_BxL.astype(bool)

        dropout_active = cfg.attention_dropout > 0.0 and not deterministic
        dropout_key = self.make_rng("dropout") if dropout_active else None
        out_BxLxHxK = attention(
            q_BxLxHxK, k_BxLxHxK, v_BxLxHxK, key_is_real_BxL,
            implementation=attention_path(cfg, q_BxLxHxK.dtype, dropout_active),
            dropout_rate=cfg.attention_dropout if dropout_active else 0.0,
            dropout_rng=cfg.dropout_rng, dropout_key=dropout_key,
        )
        return nn.with_logical_constraint(out_BxLxHxK, activation_axes)


class BertResidualOutput(nn.Module):
    """dense → dropout → LayerNorm(· + residual): HF BertSelfOutput and BertOutput."""

    cfg: BertConfig
    from_heads: bool  # input [B, L, H, Dh] (attention output) rather than [B, L, F]

    @nn.compact
    def __call__(self, x: Array, residual_BxLxD: Array, deterministic: bool) -> Array:
        cfg = self.cfg
        if self.from_heads:
            shape = (cfg.num_heads, cfg.head_dim, cfg.hidden_size)
            dense = HeadsDense(
                cfg, shape, ("heads", "kv", "embed"), (None,), "blhk,hkd->bld", name="dense"
            )
        else:
            dense = _dense(cfg, cfg.hidden_size, ("mlp", "embed"), (None,), "dense")
        h_BxLxD = dense(x)
        h_BxLxD = Dropout(cfg.hidden_dropout, cfg.dropout_rng)(h_BxLxD, deterministic)
        h_BxLxD = _layer_norm(cfg, "LayerNorm")(h_BxLxD + residual_BxLxD)
        return nn.with_logical_constraint(
            h_BxLxD.astype(_compute_dtype(cfg)), ("batch", "length", "embed")
        )


class BertAttention(nn.Module):
    cfg: BertConfig

    @nn.compact
    def __call__(self, h_BxLxD: Array, attention_mask_BxL: Array, deterministic: bool) -> Array:
        a_BxLxHxK = BertSelfAttention(self.cfg, name="self")(
            h_BxLxD, attention_mask_BxL, deterministic
        )
        return BertResidualOutput(self.cfg, from_heads=True, name="output")(
            a_BxLxHxK, h_BxLxD, deterministic
        )


class BertIntermediate(nn.Module):
    cfg: BertConfig

    @nn.compact
    def __call__(self, h_BxLxD: Array) -> Array:
        cfg = self.cfg
        m_BxLxF = _dense(cfg, cfg.intermediate_size, ("embed", "mlp"), ("mlp",), "dense")(h_BxLxD)
        return nn.with_logical_constraint(_gelu(m_BxLxF), ("batch", "length", "mlp"))


class BertLayer(nn.Module):
    """One post-LN encoder block (HF BertLayer)."""

    cfg: BertConfig

    @nn.compact
    def __call__(self, h_BxLxD: Array, attention_mask_BxL: Array, deterministic: bool) -> Array:
        a_BxLxD = BertAttention(self.cfg, name="attention")(
            h_BxLxD, attention_mask_BxL, deterministic
        )
        m_BxLxF = BertIntermediate(self.cfg, name="intermediate")(a_BxLxD)
        return BertResidualOutput(self.cfg, from_heads=False, name="output")(
            m_BxLxF, a_BxLxD, deterministic
        )


class BertLayerCollection(nn.Module):
    """Layers named "0", "1", … so paths read encoder/layer/{i}/… as HF's encoder.layer.{i}."""

    cfg: BertConfig

    @nn.compact
    def __call__(self, h_BxLxD: Array, attention_mask_BxL: Array, deterministic: bool) -> Array:
        # Rematerialising per layer trades one extra forward for storing only layer inputs;
        # `deterministic` (argument 3, counting self) must stay a Python bool inside.
        layer_cls = nn.remat(BertLayer, static_argnums=(3,)) if self.cfg.remat else BertLayer
        for i in range(self.cfg.num_layers):
            h_BxLxD = layer_cls(self.cfg, name=str(i))(h_BxLxD, attention_mask_BxL, deterministic)
        return h_BxLxD


class BertEncoder(nn.Module):
    cfg: BertConfig

    @nn.compact
    def __call__(self, h_BxLxD: Array, attention_mask_BxL: Array, deterministic: bool) -> Array:
        return BertLayerCollection(self.cfg, name="layer")(
            h_BxLxD, attention_mask_BxL, deterministic
        )


class BertPooler(nn.Module):
    """dense + tanh on the [CLS] position (HF BertPooler)."""

    cfg: BertConfig

    @nn.compact
    def __call__(self, h_BxLxD: Array) -> Array:
        cfg = self.cfg
        cls_BxD = _dense(cfg, cfg.hidden_size, ("embed", None), (None,), "dense")(h_BxLxD[:, 0])
        return jnp.tanh(cls_BxD)


class BertModel(nn.Module):
    """Embeddings + encoder (+ pooler): HF BertModel. Returns the last hidden states."""

    cfg: BertConfig
    add_pooling_layer: bool = False

    def setup(self):
        self.embeddings = BertEmbeddings(self.cfg)
        self.encoder = BertEncoder(self.cfg)
        if self.add_pooling_layer:
            self.pooler = BertPooler(self.cfg)

    def __call__(
        self,
        input_ids_BxL: Array,
        attention_mask_BxL: Array,
        token_type_ids_BxL: Array | None = None,
        deterministic: bool = True,
    ) -> Array:
        if token_type_ids_BxL is None:
            token_type_ids_BxL = jnp.zeros_like(input_ids_BxL)
        h_BxLxD = self.embeddings(input_ids_BxL, token_type_ids_BxL, deterministic)
        return self.encoder(h_BxLxD, attention_mask_BxL, deterministic)


class BertPredictionHeadTransform(nn.Module):
    cfg: BertConfig

    @nn.compact
    def __call__(self, h_BxLxD: Array) -> Array:
        cfg = self.cfg
        h_BxLxD = _dense(cfg, cfg.hidden_size, ("embed", None), (None,), "dense")(h_BxLxD)
        h_BxLxD = _layer_norm(cfg, "LayerNorm")(_gelu(h_BxLxD))
        return h_BxLxD.astype(_compute_dtype(cfg))


class BertLMPredictionHead(nn.Module):
    """transform → decoder tied to the word embeddings + own bias (HF BertLMPredictionHead)."""

    cfg: BertConfig

    @nn.compact
    def __call__(self, h_BxLxD: Array, word_embeddings_VxD: Array) -> Array:
        cfg = self.cfg
        h_BxLxD = BertPredictionHeadTransform(cfg, name="transform")(h_BxLxD)
        bias_V = self.param("bias", _zeros("vocab"), (cfg.vocab_size,), jnp.float32)
        # Logits accumulate in float32: the loss's log-softmax over ~600 tokens needs it.
        logits_BxLxV = jnp.einsum(
            "bld,vd->blv",
            h_BxLxD,
            _gathered_table(word_embeddings_VxD).astype(h_BxLxD.dtype),
            preferred_element_type=jnp.float32,
        )
        return nn.with_logical_constraint(
            logits_BxLxV + bias_V[None, None, :], ("batch", "length", "vocab")
        )


class BertOnlyMLMHead(nn.Module):
    cfg: BertConfig

    @nn.compact
    def __call__(self, h_BxLxD: Array, word_embeddings_VxD: Array) -> Array:
        return BertLMPredictionHead(self.cfg, name="predictions")(h_BxLxD, word_embeddings_VxD)


class BertForMaskedLM(nn.Module):
    """HF BertForMaskedLM: float32 logits [B, L, V] (and the last hidden states if asked)."""

    cfg: BertConfig

    def setup(self):
        self.bert = BertModel(self.cfg)
        self.cls = BertOnlyMLMHead(self.cfg)

    def __call__(
        self,
        input_ids_BxL: Array,
        attention_mask_BxL: Array,
        token_type_ids_BxL: Array | None = None,
        deterministic: bool = True,
        return_hidden: bool = False,
    ) -> Array | tuple[Array, Array]:
        h_BxLxD = self.encode(input_ids_BxL, attention_mask_BxL, token_type_ids_BxL, deterministic)
        logits_BxLxV = self.predict_tokens(h_BxLxD)
        return (logits_BxLxV, h_BxLxD) if return_hidden else logits_BxLxV

    def encode(
        self,
        input_ids_BxL: Array,
        attention_mask_BxL: Array,
        token_type_ids_BxL: Array | None = None,
        deterministic: bool = True,
    ) -> Array:
        """The last hidden states [B, L, D] (`apply(..., method="encode")`)."""
        return self.bert(input_ids_BxL, attention_mask_BxL, token_type_ids_BxL, deterministic)

    def predict_tokens(self, h_BxNxD: Array) -> Array:
        """MLM logits [B, N, V] for any N positions' hidden states (`method="predict_tokens"`):
        the pretraining step runs the head on the masked positions only, as BERT's TF code did."""
        return self.cls(h_BxNxD, self.bert.embeddings.word_embeddings.embedding)


class BertForSequenceClassification(nn.Module):
    """HF BertForSequenceClassification ("cls" pooling), or a masked mean over real tokens."""

    cfg: BertConfig
    num_labels: int
    pooling: Literal["cls", "mean"] = "cls"
    classifier_dropout: float | None = None  # None: hidden_dropout, as HF

    def setup(self):
        if self.pooling not in ("cls", "mean"):
            raise ValueError(f"pooling={self.pooling!r}: use 'cls' or 'mean'")
        self.bert = BertModel(self.cfg, add_pooling_layer=self.pooling == "cls")
        dropout = (
            self.cfg.hidden_dropout if self.classifier_dropout is None else self.classifier_dropout
        )
        self.dropout = Dropout(dropout, self.cfg.dropout_rng)
        self.classifier = _dense(self.cfg, self.num_labels, ("embed", None), (None,), "classifier")

    def __call__(
        self,
        input_ids_BxL: Array,
        attention_mask_BxL: Array,
        token_type_ids_BxL: Array | None = None,
        deterministic: bool = True,
    ) -> Array:
        h_BxLxD = self.bert(input_ids_BxL, attention_mask_BxL, token_type_ids_BxL, deterministic)
        if self.pooling == "cls":
            pooled_BxD = self.bert.pooler(h_BxLxD)
        else:
            real_BxLx1 = attention_mask_BxL[:, :, None].astype(jnp.float32)
            summed_BxD = jnp.sum(h_BxLxD.astype(jnp.float32) * real_BxLx1, axis=1)
            pooled_BxD = summed_BxD / jnp.maximum(jnp.sum(real_BxLx1, axis=1), 1.0)
        pooled_BxD = self.dropout(pooled_BxD, deterministic)
        return self.classifier(pooled_BxD).astype(jnp.float32)


def make_model(model_cfg: ml_collections.ConfigDict, vocab_size: int = 0) -> BertForMaskedLM:
    """The pretraining model; `vocab_size` is the tokenizer's (0: use model_cfg.vocab_size)."""
    return BertForMaskedLM(BertConfig.from_config(model_cfg, vocab_size))


def make_classifier(
    model_cfg: ml_collections.ConfigDict,
    vocab_size: int,
    num_labels: int,
    pooling: Literal["cls", "mean"] = "cls",
) -> BertForSequenceClassification:
    return BertForSequenceClassification(
        BertConfig.from_config(model_cfg, vocab_size), num_labels, pooling
    )
