"""`grover next-kmer`: fine-tune a pretrained encoder to predict the k bases after a window.

A program of its own (it imports neither the pretraining nor the fine-tuning program; it trains with
the classifier trainer, train/classifier.py): for each k it puts a 4^k-way head on the encoder,
fine-tunes on train-split examples, picks the evaluation with the best valid accuracy, and reports
top-1 accuracy on the test split beside two baselines scored on the very same test examples: the
commonest train k-mer, and a Markov model of the preceding bases fit on the whole train split
(data/next_kmer.py).
"""

import json
import math
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
from flax.training.train_state import TrainState

from grover_jax.atomic_files import write_text
from grover_jax.data.next_kmer import (
    MarkovNextKmer,
    NextKmerExamples,
    contig_base_codes,
    majority_class,
    sample_examples,
    tokenize_inputs,
)
from grover_jax.evaluation.bootstrap import paired_bootstrap
from grover_jax.model import make_classifier
from grover_jax.parallel import make_mesh
from grover_jax.parallel.rules import replicated
from grover_jax.progress import progress_bar
from grover_jax.runs import Pretrained, PretrainedError, load_pretrained
from grover_jax.store import TokenStore, open_store
from grover_jax.tokenizer import load_tokenizer
from grover_jax.train.classifier import (
    bert_apply,
    classifier_params,
    head_only,
    predict_classes,
    step_batches,
    train_loop,
)
from grover_jax.train.optimizer import make_optimizer

RESULTS_FILE = "next_kmer.json"


def _classifier_config(pretrained: Pretrained, dropout: float) -> ml_collections.ConfigDict:
    model_cfg = ml_collections.ConfigDict(pretrained.config.model.to_dict())
    model_cfg.hidden_dropout = dropout
    model_cfg.attention_dropout = dropout
    return model_cfg


class NextKmerData:
    """The three splits' examples, tokenized once and shared by every k."""

    def __init__(self, store: TokenStore, nk: ml_collections.ConfigDict, seed: int):
        tokenizer = load_tokenizer(store.tokenizer.path)
        max_k = max(nk.ks)
        self.examples: dict[str, NextKmerExamples] = {}
        self.inputs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for offset, (name, split, n) in enumerate([("train", nk.train_split, nk.n_train),
                                                   ("valid", nk.valid_split, nk.n_valid),
                                                   ("test", nk.test_split, nk.n_test)]):
            self.examples[name] = sample_examples(store, tokenizer, split, n, nk.input_bases, max_k, seed + offset)
            self.inputs[name] = tokenize_inputs(self.examples[name], tokenizer, nk.seq_len)
        self.train_contigs = [contig_base_codes(store, c, tokenizer) for c in store.split_contigs(nk.train_split)]


def fine_tune_k(pretrained: Pretrained, data: NextKmerData, k: int, config: ml_collections.ConfigDict,
                mesh, progress: bool) -> dict:
    nk, train_cfg = config.next_kmer, config.train
    model = make_classifier(_classifier_config(pretrained, nk.dropout), pretrained.model_config.vocab_size,
                            4**k, nk.pooling)
    apply = bert_apply(model)
    params = classifier_params(model, pretrained.encoder_params, config.seed + k, head_init="flax")
    optimizer = make_optimizer(train_cfg)
    state = TrainState.create(apply_fn=apply, params=params,
                              tx=optimizer if nk.train_encoder else head_only(optimizer))

    ids, mask = data.inputs["train"]
    labels = {name: data.examples[name].labels(k) for name in data.examples}
    train = {"input_ids": ids, "attention_mask": mask, "labels": labels["train"].astype(np.int32)}
    valid_inputs, test_inputs = ({"input_ids": data.inputs[name][0], "attention_mask": data.inputs[name][1]}
                                 for name in ("valid", "test"))

    def evaluate(params) -> dict[str, float]:
        predictions = predict_classes(apply, params, valid_inputs, train_cfg.batch_size, mesh)
        return {"accuracy": float(np.mean(predictions == labels["valid"]))}

    bar = progress_bar(step_batches(train, train_cfg.batch_size, train_cfg.num_steps, config.seed + 1000 * k),
               total=train_cfg.num_steps, desc=f"next-{k}-mer", unit="step", disable=not progress, leave=False)
    started = time.perf_counter()
    result = train_loop(state, bar, train_cfg.num_steps, evaluate, selection_metric="accuracy",
                        eval_every=train_cfg.eval_every, patience=math.inf,
                        class_weights_K=np.ones(4**k, np.float32), seed=config.seed + k, mesh=mesh,
                        log=bar.set_postfix_str)
    bar.close()
    test_predictions = predict_classes(apply, jax.device_put(result.params, replicated(mesh)), test_inputs,
                                       train_cfg.batch_size, mesh)
    order_k = config.next_kmer.markov_order or k
    markov = MarkovNextKmer(data.train_contigs, order_k, k)
    test_labels = labels["test"]
    correct = {"model": test_predictions == test_labels,
               "majority class": test_labels == majority_class(labels["train"]),
               "Markov": markov.predict(data.examples["test"].input_codes) == test_labels}
    best_baseline = max(("majority class", "Markov"), key=lambda name: correct[name].mean())
    # Paired over the same test examples: the interval is of the difference, not of two accuracies.
    difference = paired_bootstrap(correct["model"], correct[best_baseline], seed=config.seed)
    return {
        "k": k,
        "classes": 4**k,
        "accuracy": float(correct["model"].mean()),
        "majority_accuracy": float(correct["majority class"].mean()),
        "markov_accuracy": float(correct["Markov"].mean()),
        "markov_order": order_k,
        "best_baseline": best_baseline,
        "model_minus_best_baseline": difference["difference"],
        "model_minus_best_baseline_ci": [difference["low"], difference["high"]],
        "chance": 4.0**-k,
        "valid_accuracy": result.valid["accuracy"],
        "best_step": result.best_step,
        "n_train": len(ids),
        "n_test": len(test_labels),
        "seconds": round(time.perf_counter() - started, 1),
    }


def results_markdown(rows: list[dict], title: str) -> str:
    lines = [f"### {title}", "",
             ("| k | classes | model | majority class | Markov (order) | model − best baseline [95 % CI] "
              "| chance | best step | n train | n test |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        low, high = r["model_minus_best_baseline_ci"]
        lines.append(f"| {r['k']} | {r['classes']} | {r['accuracy']:.4f} | {r['majority_accuracy']:.4f} | "
                     f"{r['markov_accuracy']:.4f} ({r['markov_order']}) | {r['model_minus_best_baseline']:+.4f} "
                     f"[{low:+.4f}, {high:+.4f}] ({r['best_baseline']}) | {r['chance']:.5f} | {r['best_step']} | "
                     f"{r['n_train']} | {r['n_test']} |")
    return "\n".join(lines) + "\n"


def run_next_kmer(checkpoint: str | Path, out_dir: str | Path, config: ml_collections.ConfigDict,
                  store_path: str | Path | None = None, progress: bool = True) -> list[dict]:
    """Fine-tune and score every k of `config.next_kmer.ks`; writes next_kmer.json and next_kmer.md.

    A k already in out_dir/next_kmer.json from the same checkpoint, store and config is not redone.
    """
    pretrained = load_pretrained(checkpoint)
    store = open_store(store_path or pretrained.config.data.store)
    if store.tokenizer_sha256 != pretrained.tokenizer_sha256:
        raise PretrainedError(f"{store.path}: its tokenizer is not the one {pretrained.run_dir} was trained with")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # What a finished k's number depends on: not the list of ks (asking for another k must not
    # invalidate the finished ones), nor other programs' sections sharing the config (a sweep's).
    settings = {key: json.loads(config[key].to_json_best_effort()) for key in ("next_kmer", "train")}
    settings["seed"] = config.seed
    settings["next_kmer"].pop("ks")
    identity = {"checkpoint": str(pretrained.run_dir), "step": pretrained.step, "store": str(store.path),
                "config": settings}
    results_path = out_dir / RESULTS_FILE
    previous = json.loads(results_path.read_text()) if results_path.exists() else {}
    done = {r["k"]: r for r in previous.get("results", [])} if previous.get("identity") == identity else {}

    mesh = make_mesh(ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1}))
    data = None
    for k in config.next_kmer.ks:
        if k in done:
            continue
        data = data or NextKmerData(store, config.next_kmer, config.seed)
        done[k] = fine_tune_k(pretrained, data, k, config, mesh, progress)
        rows = [done[key] for key in sorted(done)]
        write_text(results_path, json.dumps({"identity": identity, "results": rows}, indent=1))
        if progress:
            r = done[k]
            print(f"next-{k}-mer: accuracy {r['accuracy']:.4f} (majority {r['majority_accuracy']:.4f}, "
                  f"Markov order {r['markov_order']} {r['markov_accuracy']:.4f}, chance {r['chance']:.5f})")
    rows = [done[k] for k in sorted(done) if k in config.next_kmer.ks]
    write_text(out_dir / "next_kmer.md", results_markdown(rows, f"Next-k-mer accuracy: {pretrained.run_dir}"))
    return rows

