"""GROVER's foundation model as published (Sanabria et al. 2024), see docs/GROVER_METHOD.md §3.

Numbers marked UNVERIFIED in GROVER.md are documented choices here, each a config field:
heads=12, FFN 3072, GELU, dropout 0.1, LN eps 1e-12 (BERT-base / DNABERT defaults); 80/10/10
replacement (DNABERT's `mask_tokens`); AdamW betas (0.9, 0.98), eps 1e-6, weight decay 0.01,
10k warm-up then linear decay (DNABERT's pretraining command, which GROVER's code descends from).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.seed = 0

    # Genome and vocabulary (stages `grover bpe` / `grover store`).
    config.genome = ml_collections.ConfigDict()
    config.genome.splits = ""  # empty: the genome's default split spec (see grover_jax/genome/splits.py)
    config.bpe = ml_collections.ConfigDict()
    config.bpe.cycles = 600  # GROVER's choice [S8, S10]
    config.bpe.max_token_length = 0  # 0 = no cap (exact GROVER cycles); [S18] mentions a 16 bp cap

    config.model = ml_collections.ConfigDict()
    config.model.vocab_size = 0  # 0 = taken from the tokenizer / token store at run time
    config.model.hidden_size = 768
    config.model.num_layers = 12
    config.model.num_heads = 12  # UNVERIFIED (BERT-base default)
    config.model.intermediate_size = 3072  # derived from the 348 MB checkpoint
    config.model.max_position_embeddings = 512
    config.model.hidden_dropout = 0.1
    config.model.attention_dropout = 0.1
    config.model.layer_norm_eps = 1e-12
    config.model.initializer_range = 0.02
    config.model.compute_dtype = "float32"  # "bfloat16": bf16 compute, f32 params and loss
    config.model.remat = False
    config.model.attention_implementation = "auto"  # cuDNN on GPUs with bf16, xla_cpu on CPUs, XLA elsewhere (model/config.py)
    config.model.dropout_rng = "hash"  # counter-hash dropout masks (model/dropout.py); "threefry": flax's

    config.data = ml_collections.ConfigDict()
    config.data.store = ""  # token store directory; empty = <workdir>/../store or the pipeline's
    config.data.seq_len = 512  # 510 BPE tokens + [CLS] + [SEP] [S8, S11]
    config.data.min_window_tokens = 20  # windows of 20-510 tokens ... [S8]
    config.data.full_window_fraction = 0.5  # ... 50 % fixed at 510 [S8]
    config.data.mask_rate = 0.022  # 2.2 % of tokens, as printed in the paper [S8, S9]
    config.data.mask_token_fraction = 0.8  # of the selected: [MASK]
    config.data.random_token_fraction = 0.1  # of the selected: a random token (the rest unchanged); UNVERIFIED
    config.data.eval_batches = 20

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 64  # [S8]
    config.train.grad_accum_steps = 1
    config.train.num_steps = 200_000  # UNVERIFIED (DNABERT)
    config.train.learning_rate = 4e-4  # [S8, S9]
    config.train.warmup_steps = 10_000  # UNVERIFIED (DNABERT)
    config.train.decay = "linear"  # linear decay to 0 after warm-up; "cosine" also accepted
    config.train.b1 = 0.9
    config.train.b2 = 0.98  # UNVERIFIED (DNABERT)
    config.train.eps = 1e-6  # UNVERIFIED (DNABERT)
    config.train.weight_decay = 0.01  # UNVERIFIED (DNABERT)
    config.train.clip_norm = 1.0
    # MLM head (transform + decoder) on the masked positions only, as BERT's TF code; same loss
    config.train.mlm_head_on_targets = True
    config.train.peak_flops = 0.0  # per-device peak FLOP/s for MFU; 0 = the known chip's bf16 data-sheet peak
    config.train.log_every = 50
    config.train.eval_every = 2_000
    config.train.checkpoint_every = 2_000
    config.train.keep_checkpoints = 3

    # Mesh: parallelism per axis, one may be -1 (= fill with the remaining devices).
    config.mesh = ml_collections.ConfigDict()
    config.mesh.data = 1
    config.mesh.fsdp = -1
    config.mesh.tensor = 1
    config.mesh.dcn_data = 1  # slices / hosts along data (multi-slice TPU, multi-node GPU)

    return config
