"""Next-k-mer prediction (GROVER's vocabulary-selection task, docs/GROVER_METHOD.md §2).

GROVER: 50-nt inputs from chr21, 500,000 sequences, k = 2..6, top-1 accuracy over 4^k classes.
Documented choices where the paper is silent (UNVERIFIED there): a [CLS]-pooled head (HF pooler +
linear, as BertForSequenceClassification), the encoder fine-tuned with it, AdamW with linear
warm-up/decay, train examples from the store's train split, model selection on valid, accuracy
reported on test (held-out regions/chromosomes). The defaults fit a CPU: GROVER's 500k examples
is `--set next_kmer.n_train=400000 --set next_kmer.n_test=100000`.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    nk = config.next_kmer = ml_collections.ConfigDict()
    nk.ks = (2, 3, 4, 5, 6)
    nk.input_bases = 50  # [S8]
    nk.seq_len = 64  # tokens incl. [CLS]/[SEP]: 50 nt never make more than 52
    nk.n_train = 40_000
    nk.n_valid = 4_000
    nk.n_test = 10_000
    nk.train_split = "train"
    nk.valid_split = "valid"
    nk.test_split = "test"
    nk.pooling = "cls"  # "cls" (HF pooler) or "mean" over real tokens
    nk.train_encoder = True  # False: only the head learns (a linear probe of the frozen encoder)
    # Order of the Markov baseline: the bar is a 10-base context (unseen contexts back off to shorter
    # ones); 0 = k (a k-th order model for next-k-mer).
    nk.markov_order = 10
    nk.dropout = 0.1  # encoder and head dropout while fine-tuning

    train = config.train = ml_collections.ConfigDict()
    train.batch_size = 64
    train.num_steps = 1_500  # per k
    train.learning_rate = 1e-4
    train.warmup_steps = 100
    train.decay = "linear"
    train.b1 = 0.9
    train.b2 = 0.999
    train.eps = 1e-8
    train.weight_decay = 0.01
    train.clip_norm = 1.0
    train.eval_every = 250

    if arg == "pipeline":  # `grover run`'s evaluation stage: minutes on 2 CPU cores
        nk.n_train, nk.n_valid, nk.n_test = 16_000, 1_000, 4_000
        train.num_steps = 300
        train.learning_rate = 1e-3
        train.warmup_steps = 30
        train.eval_every = 150
    return config
