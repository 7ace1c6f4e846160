"""The encoder's hyper-parameters as a frozen dataclass (hashable, so linen modules can hold it)."""

import dataclasses

import ml_collections


@dataclasses.dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    # HF BERT always has a 2-row token-type table; kept (fed all-zero ids) so export is a rename.
    type_vocab_size: int = 2
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    compute_dtype: str = "float32"
    remat: bool = False
    # "auto": cuDNN fused (flash) attention on GPUs with bf16 compute and no attention dropout,
    # "xla_cpu" on CPUs, XLA's elsewhere; "xla", "xla_cpu" (model/attention.py: a backward pass
    # written for XLA:CPU's matmuls), "cudnn" or "blockwise" (model/attention.py: O(L) saved
    # activations per head, recomputed in the backward pass) force one.
    attention_implementation: str = "auto"
    # Dropout masks: "hash" (a counter hash of each element's index, model/dropout.py) or
    # "threefry" (flax nn.Dropout). The blockwise attention needs "hash" for attention dropout.
    dropout_rng: str = "hash"

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"model.hidden_size={self.hidden_size} is not divisible by "
                f"model.num_heads={self.num_heads}"
            )
        if self.compute_dtype not in ("float32", "bfloat16"):
            raise ValueError(
                f"model.compute_dtype={self.compute_dtype!r}: use 'float32' or 'bfloat16'"
            )
        if self.attention_implementation not in ("auto", "xla", "xla_cpu", "cudnn", "blockwise"):
            raise ValueError(
                f"model.attention_implementation={self.attention_implementation!r}: "
                "use 'auto', 'xla', 'xla_cpu', 'cudnn' or 'blockwise'"
            )
        if self.dropout_rng not in ("hash", "threefry"):
            raise ValueError(f"model.dropout_rng={self.dropout_rng!r}: use 'hash' or 'threefry'")
        if self.vocab_size <= 0:
            raise ValueError("vocab_size must be positive (take it from the tokenizer)")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_config(cls, model_cfg: ml_collections.ConfigDict, vocab_size: int = 0) -> "BertConfig":
        """`config.model` with the tokenizer's `vocab_size` (0: use model_cfg.vocab_size). Every
        field is read by its name; one that `config.model` lacks (a run config written before the
        field existed) keeps its default, and keys that are no field here are someone else's."""
        values = {field.name: model_cfg[field.name] for field in dataclasses.fields(cls) if field.name in model_cfg}
        values["vocab_size"] = vocab_size or model_cfg.vocab_size
        return cls(**values)
