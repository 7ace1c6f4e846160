"""The Flax BERT computes what HF BertForMaskedLM computes, and declares how to shard itself."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from grover_jax.configs import tiny
from grover_jax.model import make_model

VOCAB = 609
QKV = ("query", "key", "value")



@pytest.fixture(autouse=True)
def _no_implicit_rank_promotion():
    """The model code must broadcast explicitly; scoped to this module's tests (a global switch
    would also bind every test collected after it)."""
    with jax.numpy_rank_promotion("raise"):
        yield


def small_model_config():
    cfg = tiny.get_config().model
    cfg.hidden_size = 64
    cfg.num_layers = 2
    cfg.num_heads = 4
    cfg.intermediate_size = 128
    cfg.max_position_embeddings = 32
    return cfg


def padded_batch(rng: np.random.Generator, lengths: list[int], max_len: int):
    ids = np.zeros((len(lengths), max_len), np.int32)  # 0 = [PAD]
    mask = np.zeros((len(lengths), max_len), np.int32)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(5, VOCAB, n)
        mask[row, :n] = 1
    return ids, mask


def flax_to_hf_state_dict(params) -> dict[str, np.ndarray]:
    """The documented mapping of grover_jax/model/bert.py: rename, reshape heads, transpose."""
    state = {}
    for path, leaf in flatten_dict(params).items():
        *modules, leaf_name = path
        x = np.array(leaf, np.float32)
        if leaf_name == "kernel":
            # [D, H, Dh] (q/k/v) or [H, Dh, D] (attention output) or [in, out] → torch [out, in].
            x = x.reshape(x.shape[0], -1) if modules[-1] in QKV else x.reshape(-1, x.shape[-1])
            x, leaf_name = x.T, "weight"
        elif leaf_name in ("scale", "embedding"):
            leaf_name = "weight"
        elif leaf_name == "bias":
            x = x.reshape(-1)
        state[".".join([*modules, leaf_name])] = x
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    return state


def test_logits_match_hf_bert_for_masked_lm_on_padded_inputs():
    torch = pytest.importorskip("torch", reason="HF parity needs torch")
    transformers = pytest.importorskip("transformers", reason="HF parity needs transformers")
    cfg = small_model_config()
    model = make_model(cfg, VOCAB)
    ids, mask = padded_batch(np.random.default_rng(0), [24, 17, 5], 24)
    params = nn.unbox(model.init(jax.random.key(0), ids, mask)["params"])
    # Init leaves biases at 0 and LayerNorms at 1, which would hide a bias or norm mapped to the
    # wrong place, and its small activations hide tanh-vs-erf GELU: perturb every tensor.
    leaves, treedef = jax.tree.flatten(params)
    noise = [
        0.2 * jax.random.normal(k, x.shape)
        for k, x in zip(jax.random.split(jax.random.key(1), len(leaves)), leaves, strict=True)
    ]
    params = jax.tree.unflatten(treedef, [x + n for x, n in zip(leaves, noise, strict=True)])
    logits = np.asarray(model.apply({"params": params}, ids, mask))

    hf = transformers.BertForMaskedLM(
        transformers.BertConfig(
            vocab_size=VOCAB,
            hidden_size=cfg.hidden_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            intermediate_size=cfg.intermediate_size,
            hidden_act="gelu",
            max_position_embeddings=cfg.max_position_embeddings,
            layer_norm_eps=cfg.layer_norm_eps,
        )
    ).eval()
    state = {k: torch.from_numpy(v.copy()) for k, v in flax_to_hf_state_dict(params).items()}
    assert set(state) == set(hf.state_dict())
    hf.load_state_dict(state, strict=True)
    with torch.no_grad():
        hf_logits = hf(
            input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask).long()
        ).logits.numpy()

    real = mask.astype(bool)
    assert np.max(np.abs(logits[real] - hf_logits[real])) <= 1e-4


def test_every_parameter_carries_logical_axis_names():
    model = make_model(small_model_config(), VOCAB)
    ids, mask = padded_batch(np.random.default_rng(0), [8, 4], 8)
    boxed = model.init(jax.random.key(0), ids, mask)["params"]
    leaves = jax.tree_util.tree_leaves_with_path(
        boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned)
    )
    assert len(leaves) == 2 * 16 + 5 + 5  # 16 per layer, 5 embedding, 5 MLM head
    for path, leaf in leaves:
        assert isinstance(leaf, nn.Partitioned), jax.tree_util.keystr(path)
        assert len(leaf.names) == leaf.value.ndim, jax.tree_util.keystr(path)


def test_bfloat16_compute_is_close_to_float32_and_keeps_float32_params():
    cfg = small_model_config()
    ids, mask = padded_batch(np.random.default_rng(1), [16, 9], 16)
    model_f32 = make_model(cfg, VOCAB)
    params = nn.unbox(model_f32.init(jax.random.key(0), ids, mask)["params"])
    cfg.compute_dtype = "bfloat16"
    model_bf16 = make_model(cfg, VOCAB)
    assert all(
        x.dtype == jnp.float32
        for x in jax.tree.leaves(nn.unbox(model_bf16.init(jax.random.key(0), ids, mask)["params"]))
    )

    logits_f32 = np.asarray(model_f32.apply({"params": params}, ids, mask))
    logits_bf16 = model_bf16.apply({"params": params}, ids, mask)
    assert logits_bf16.dtype == jnp.float32
    real = mask.astype(bool)
    # bf16 keeps 8 mantissa bits: ~1 % of the logit scale after two layers.
    scale = np.max(np.abs(logits_f32[real]))
    assert np.max(np.abs(np.asarray(logits_bf16)[real] - logits_f32[real])) <= 0.03 * scale


def test_attention_with_dropout_path_equals_fused_attention_when_nothing_is_dropped():
    cfg = small_model_config()
    ids, mask = padded_batch(np.random.default_rng(2), [12, 7], 12)
    params = nn.unbox(make_model(cfg, VOCAB).init(jax.random.key(0), ids, mask)["params"])
    # A rate that rounds to "keep everything" in float32 still takes the explicit-softmax path.
    cfg.attention_dropout = 1e-12
    model = make_model(cfg, VOCAB)
    fused = model.apply({"params": params}, ids, mask, deterministic=True)
    explicit = model.apply(
        {"params": params}, ids, mask, deterministic=False, rngs={"dropout": jax.random.key(3)}
    )
    real = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(explicit)[real], np.asarray(fused)[real], atol=1e-5)


def test_remat_changes_memory_not_values_or_gradients():
    cfg = small_model_config()
    ids, mask = padded_batch(np.random.default_rng(4), [10, 6], 10)
    plain = make_model(cfg, VOCAB)
    params = nn.unbox(plain.init(jax.random.key(0), ids, mask)["params"])
    cfg.remat = True
    remat = make_model(cfg, VOCAB)

    def loss(model):
        value_and_grad = jax.value_and_grad(
            lambda p: jnp.sum(model.apply({"params": p}, ids, mask) ** 2)
        )
        return jax.jit(value_and_grad)(params)

    (value, grads), (value_remat, grads_remat) = loss(plain), loss(remat)
    np.testing.assert_allclose(value_remat, value, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grads_remat), jax.tree.leaves(grads), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
