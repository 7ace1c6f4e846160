"""Fine-tuning a pretrained encoder on a sequence-classification task (`grover finetune`).

GROVER's fine-tuning hyper-parameters are not published (docs/GROVER_METHOD.md §5: "not found");
these are choices for the tiny CPU model, each a field to override with `--set`.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.task = ml_collections.ConfigDict()
    config.task.name = "prom300"  # prom300 | promscan | ctcf | promoter_gc | user (with task.csv or task.bed)
    config.task.fasta = ""  # genome FASTA (empty: the bundled chr20 slice); comma-separated for several
    config.task.annotation = ""  # folder with tss.bed.gz and CTCF.bed.gz (empty: bundled annotation)
    config.task.motif = ""  # JASPAR .pfm for ctcf (empty: bundled MA0139.1)
    config.task.csv = ""
    config.task.bed = ""
    config.task.window = 0  # promscan / ctcf window in bp; 0: the task's default (1000 / 300)
    config.task.span = 0  # promscan: bp tiled around each TSS; 0: 10 x window (paper: 10 kb)
    config.task.ctcf_pvalue = 1e-5
    # Label efficiency: a class-stratified fraction of the train split (drawn with `seed`), the same
    # valid and test splits (grover_jax/data/tasks/label_fraction.py).
    config.task.train_fraction = 1.0
    config.task.seed = 0  # draws of the task's examples (prom300 shuffles, promoter_gc backgrounds); not `seed`
    config.task.block_size = 250_000  # split blocks (see grover_jax/data/tasks/regions.py)
    config.task.data_dir = ""  # where the array_record datasets are built; empty: $GROVER_JAX_TASKS, else ~/.cache/grover_jax/tasks

    config.model = ml_collections.ConfigDict()
    config.model.pooling = "cls"  # "cls" (HF BertForSequenceClassification) or "mean"
    config.model.pretrained = True  # false: the same encoder randomly initialised (does pretraining help?)
    config.model.classifier_dropout = 0.1
    config.model.max_tokens = 0  # 0: the encoder's max_position_embeddings

    config.train = ml_collections.ConfigDict()
    config.train.batch_size = 32
    config.train.learning_rate = 5e-4
    config.train.warmup_fraction = 0.1
    config.train.weight_decay = 0.01
    config.train.clip_norm = 1.0
    config.train.max_epochs = 30
    config.train.max_steps = 0  # > 0: stop after this many steps (a budget in updates, not epochs)
    config.train.eval_every = 0  # steps between valid evaluations; 0: once per epoch
    config.train.patience = 5  # evaluations without a better valid score before stopping
    config.train.selection_metric = "mcc"  # valid metric that picks the best checkpoint (GROVER reports MCC)
    config.train.class_weighted = False  # weight the loss by inverse class frequency (unbalanced tasks)

    config.eval = ml_collections.ConfigDict()
    config.eval.bootstrap = 1000
    config.eval.ci_level = 0.95

    config.baselines = ml_collections.ConfigDict()
    config.baselines.kmer_k = 4  # k-mer counts for the logistic regression
    config.baselines.c_grid = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # inverse L2 strength, picked on valid
    config.baselines.cnn_channels = 64
    config.baselines.cnn_kernel = 9
    config.baselines.cnn_learning_rate = 1e-3
    config.baselines.cnn_max_epochs = 30

    config.mesh = ml_collections.ConfigDict()
    config.mesh.data = -1
    config.mesh.fsdp = 1
    config.mesh.tensor = 1
    if arg == "pipeline":  # `grover run`'s fine-tuning stage: minutes on 2 CPU cores
        config.train.max_epochs = 6
        config.train.patience = 2
        config.eval.bootstrap = 300
        config.baselines.cnn_max_epochs = 6
    return config
