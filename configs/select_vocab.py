"""`grover select-vocab`: GROVER's vocabulary selection (docs/GROVER_METHOD.md §2), sized for a CPU.

GROVER swept 100-5,000 BPE cycles, pretrained a BERT per vocabulary and compared next-k-mer
accuracy (k = 2..6); 600 won. Every arm here gets the same pretraining budget (steps x batch x
window) and the same next-k-mer examples (identical genome positions, since examples are drawn by
coordinate), so the arms differ only in the vocabulary. The default budget runs on the bundled
5 Mb slice on 2 quiet CPU cores in about 20 minutes; `get_config("quick")` is the test's few-minute
version, and paper scale is a larger genome plus `pretrain_overrides` for grover_base.
"""

import ml_collections

from grover_jax.configs import next_kmer


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = next_kmer.get_config()
    sweep = config.sweep = ml_collections.ConfigDict()
    sweep.cycles = (50, 200, 600, 1200)
    sweep.kmers = (4, 6)  # fixed non-overlapping k-mer vocabularies, GROVER's comparison models
    sweep.pretrain_config = "tiny"
    # Same for every arm: the pretraining budget and the model.
    sweep.pretrain_overrides = ("train.num_steps=600", "train.warmup_steps=60", "train.eval_every=300",
                                "train.checkpoint_every=300")
    sweep.select_by = "mean"  # the arm with the best next-k-mer accuracy averaged over ks

    config.next_kmer.n_train = 16_000
    config.next_kmer.n_valid = 1_000
    config.next_kmer.n_test = 4_000
    config.train.num_steps = 300
    config.train.learning_rate = 1e-3
    config.train.warmup_steps = 30
    config.train.eval_every = 150

    if arg == "quick":
        sweep.cycles = (20, 100)
        sweep.kmers = (3,)
        sweep.pretrain_overrides = (
            "model.hidden_size=32", "model.num_layers=1", "model.num_heads=2", "model.intermediate_size=64",
            "model.max_position_embeddings=64", "data.seq_len=64", "train.batch_size=16", "data.eval_batches=2",
            "train.num_steps=40", "train.warmup_steps=5", "train.eval_every=40", "train.checkpoint_every=40")
        config.next_kmer.ks = (2, 3)
        config.next_kmer.n_train, config.next_kmer.n_valid, config.next_kmer.n_test = 2_000, 300, 600
        config.train.num_steps = 60
        config.train.warmup_steps = 5
        config.train.eval_every = 30
        config.train.batch_size = 32
    return config
