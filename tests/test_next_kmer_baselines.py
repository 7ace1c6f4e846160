"""`grover next-k-mer`'s baselines, watched inside a tiny run on the bundled store: the majority
class and the Markov model are fit on the train split only, and scored on exactly the test
examples the fine-tuned model is scored on."""

import numpy as np

from grover_jax.configuration import load_config
from grover_jax.data import next_kmer as data
from grover_jax.programs import next_kmer as program
from grover_jax.store import open_store
from grover_jax.tokenizer import load_tokenizer

K = 2
TINY_RUN = [f"next_kmer.ks=({K},)", "next_kmer.n_train=300", "next_kmer.n_valid=60", "next_kmer.n_test=120",
            "next_kmer.markov_order=3", "train.num_steps=2", "train.eval_every=2", "train.batch_size=16",
            "train.warmup_steps=1"]


def _inside(examples: data.NextKmerExamples, contigs: list, input_bases: int) -> bool:
    """Every example's input and label lie in one of `contigs`."""
    return all(any(c["chromosome"] == chromosome and c["start"] <= end - input_bases and end + K <= c["end"]
                   for c in contigs) for chromosome, end in zip(examples.chromosome, examples.end))


def test_baselines_are_fit_on_train_and_scored_on_the_models_test_examples(pretrained_run, bundled_store,
                                                                             tmp_path, monkeypatch):
    sampled, majority_fits, markov_fits, markov_scored, model_scored = {}, [], [], [], []
    sample_examples, majority_class, predict_classes = data.sample_examples, data.majority_class, program.predict_classes
    markov_model = data.MarkovNextKmer

    def spy_sample(store, tokenizer, split, *args):
        sampled[split] = sample_examples(store, tokenizer, split, *args)
        return sampled[split]

    def spy_majority(train_labels):
        majority_fits.append(np.array(train_labels))
        return majority_class(train_labels)

    class SpyMarkov(markov_model):
        def __init__(self, train_contigs, order, k):
            markov_fits.append([np.array(codes) for codes in train_contigs])
            super().__init__(train_contigs, order, k)

        def predict(self, input_codes_NxL):
            markov_scored.append(np.array(input_codes_NxL))
            return super().predict(input_codes_NxL)

    def spy_predict(apply_fn, params, inputs, *args):
        model_scored.append(np.array(inputs["input_ids"]))
        return predict_classes(apply_fn, params, inputs, *args)

    for module in (program, data):  # wherever the program looks them up
        for name, spy in (("sample_examples", spy_sample), ("majority_class", spy_majority),
                          ("MarkovNextKmer", SpyMarkov), ("predict_classes", spy_predict)):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, spy)

    config = load_config("next_kmer", TINY_RUN)
    (row,) = program.run_next_kmer(pretrained_run, tmp_path, config, bundled_store, progress=False)

    store = open_store(bundled_store)
    tokenizer = load_tokenizer(store.tokenizer.path)
    nk = config.next_kmer
    assert sorted(sampled) == ["test", "train", "valid"]
    train, test = sampled["train"], sampled["test"]
    assert _inside(train, store.split_contigs("train"), nk.input_bases)
    assert _inside(test, store.split_contigs("test"), nk.input_bases)
    assert (len(train), len(test)) == (300, 120)

    # Fit on train: the majority class on the train examples' labels, Markov on the train contigs.
    (majority_labels,) = majority_fits
    np.testing.assert_array_equal(majority_labels, train.labels(K))
    (markov_contigs,) = markov_fits
    train_contigs = [data.contig_base_codes(store, c, tokenizer) for c in store.split_contigs("train")]
    assert len(markov_contigs) == len(train_contigs)
    assert all(np.array_equal(a, b) for a, b in zip(markov_contigs, train_contigs))

    # Scored on the model's test examples: the model's last prediction is of the test inputs, and
    # the Markov model predicts those same examples.
    np.testing.assert_array_equal(model_scored[-1], data.tokenize_inputs(test, tokenizer, nk.seq_len)[0])
    (markov_inputs,) = markov_scored
    np.testing.assert_array_equal(markov_inputs, test.input_codes)
    test_labels = test.labels(K)
    assert row["n_test"] == len(test_labels)
    assert row["majority_accuracy"] == np.mean(test_labels == np.bincount(train.labels(K)).argmax())
    markov = markov_model(train_contigs, nk.markov_order, K)
    assert row["markov_accuracy"] == np.mean(markov.predict(test.input_codes) == test_labels)
