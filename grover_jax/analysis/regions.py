"""Region-average embeddings against functional annotation, with a held-out linear probe
against a k-mer-frequency probe (GROVER Fig. 6).

Regions are non-overlapping runs of `region_tokens` tokens inside one contig, each encoded alone
as [CLS] region [SEP] and averaged over its tokens (the API's pooling="mean"). A region's class is
that of its middle base, the first that applies of:

    promoter    within 1 kb of a TSS (either side; strand ignored)
    exon        inside an exon
    repeat      inside a RepeatMasker interval
    intron      inside a gene body
    intergenic  none of these

The probes (scikit-learn's multinomial logistic regression, classes weighted by inverse frequency,
C picked by cross-validation over blocks of train regions) are fitted on regions of the store's
train split and scored on its valid and test splits, so no probe sees sequence near what it is
tested on. The baseline's features are the region's k-mer frequencies.
"""

import itertools
from pathlib import Path

import numpy as np

from grover_jax import bundled
from grover_jax.analysis.annotation import contains, read_intervals, require_overlap
from grover_jax.analysis.errors import AnalysisError
from grover_jax.analysis.sampling import evenly_spaced_windows
from grover_jax.analysis.statistics import balanced_accuracy, logistic_probe, principal_components
from grover_jax.api import GroverModel
from grover_jax.atomic_files import csv_writer, save_figure
from grover_jax.store import TokenStore

CLASSES = ("promoter", "exon", "repeat", "intron", "intergenic")
PROMOTER_FLANK = 1000
TRAIN_SPLITS, TEST_SPLITS = ("train",), ("valid", "test")


def load_annotation(annotation_dir: str | Path, contigs: list[dict] | None = None
                    ) -> dict[str, dict[str, np.ndarray]]:
    """The four tables the classes need, from a folder holding {tss,exons,hg19_repeats,genes}.bed.gz;
    with a store's `contigs`, each table must have an interval on the store's sequence."""
    annotation_dir = Path(annotation_dir)
    tables = {}
    for name, file in (("tss", "tss"), ("exon", "exons"), ("repeat", "hg19_repeats"), ("intron", "genes")):
        path = annotation_dir / f"{file}.bed.gz"
        tables[name] = read_intervals(path)
        if contigs is not None:
            require_overlap(tables[name], contigs, path)
    tss = tables.pop("tss")
    return {
        "promoter": {c: np.stack([np.maximum(t[:, 0] - PROMOTER_FLANK, 0), t[:, 1] + PROMOTER_FLANK], 1)
                     for c, t in tss.items()},
        **tables,
    }


def region_class(annotation: dict[str, dict[str, np.ndarray]], chromosome: str, middle: int) -> int:
    for index, name in enumerate(CLASSES[:-1]):
        if contains(annotation[name], chromosome, np.array([middle]))[0]:
            return index
    return len(CLASSES) - 1


def kmer_frequencies(sequence: str, k: int) -> np.ndarray:
    """Frequencies of the 4^k k-mers (lexicographic order) among the sequence's ACGT k-mers."""
    index = {"".join(kmer): i for i, kmer in enumerate(itertools.product("ACGT", repeat=k))}
    counts = np.zeros(len(index))
    for start in range(len(sequence) - k + 1):
        i = index.get(sequence[start : start + k])
        if i is not None:
            counts[i] += 1
    return counts / max(counts.sum(), 1)


def analyze_regions(model: GroverModel, store: TokenStore, out: Path, region_tokens: int = 32,
                    max_regions: int = 4000, kmer: int = 4,
                    annotation_dir: str | Path = bundled.ANNOTATION) -> Path:
    """regions.csv (per region: interval, split, class, PC1, PC2), probe.csv (per probe:
    accuracy, balanced accuracy, majority-class accuracy), regions.png."""
    import matplotlib.pyplot as plt

    annotation = load_annotation(annotation_dir, store.contigs)
    id_to_token = model.tokenizer.id_to_token
    rows, embeddings, kmers = [], [], []
    for role, splits in (("train", TRAIN_SPLITS), ("test", TEST_SPLITS)):
        starts = evenly_spaced_windows(store, splits, region_tokens, max_regions // 2)
        chunks = [store.window(int(s), region_tokens) for s in starts]
        pieces = model.embed_chunks(chunks) if chunks else []
        for start, ids, hidden in zip(starts, chunks, pieces):
            interval = store.window_interval(int(start), region_tokens)
            split = store.contigs[store.contig_of(int(start))]["split"]
            label = region_class(annotation, interval.chromosome, (interval.start + interval.end) // 2)
            rows.append((interval.chromosome, interval.start, interval.end, split, role, label))
            embeddings.append(hidden.mean(axis=0))
            kmers.append(kmer_frequencies("".join(id_to_token[i] for i in ids), kmer))
    if not rows:
        raise AnalysisError(f"{store.path}: no region of {region_tokens} tokens in the store")
    labels = np.array([r[5] for r in rows])
    is_train = np.array([r[4] == "train" for r in rows])
    embeddings, kmers = np.stack(embeddings), np.stack(kmers)
    if is_train.all() or not is_train.any():
        raise AnalysisError(f"{store.path}: the probe needs regions in both the train and the valid/test splits")

    y_train, y_test = labels[is_train], labels[~is_train]
    majority = np.bincount(y_train, minlength=len(CLASSES)).argmax()
    results = []
    for name, features in (("embedding", embeddings), (f"{kmer}-mer frequency", kmers)):
        predicted = logistic_probe(features[is_train], y_train, features[~is_train])
        results.append((name, features.shape[1], float(np.mean(predicted == y_test)),
                        balanced_accuracy(y_test, predicted)))
    with csv_writer(out / "probe.csv") as writer:
        writer.writerow(["features", "n_features", "n_train", "n_test", "accuracy", "balanced_accuracy",
                         "majority_accuracy", "n_classes_test"])
        for name, n_features, accuracy, balanced in results:
            writer.writerow([name, n_features, int(is_train.sum()), int((~is_train).sum()), f"{accuracy:.6g}",
                             f"{balanced:.6g}", f"{np.mean(y_test == majority):.6g}", len(np.unique(y_test))])

    scores, explained = principal_components(embeddings, 2)
    with csv_writer(out / "regions.csv") as writer:
        writer.writerow(["chromosome", "start", "end", "split", "class", "pc1", "pc2"])
        for (chromosome, start, end, split, _, label), (pc1, pc2) in zip(rows, scores):
            writer.writerow([chromosome, start, end, split, CLASSES[label], f"{pc1:.6g}", f"{pc2:.6g}"])

    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5), constrained_layout=True)
    for index, name in enumerate(CLASSES):
        chosen = labels == index
        left.scatter(scores[chosen, 0], scores[chosen, 1], s=6, alpha=0.6, label=f"{name} ({chosen.sum()})")
    left.set(xlabel=f"PC1 ({explained[0]:.1%} of variance)", ylabel=f"PC2 ({explained[1]:.1%} of variance)",
             title=f"Mean embedding of {len(rows)} regions of {region_tokens} tokens, by class")
    left.legend(markerscale=3, title="class of the middle base (regions)")
    names = [f"{r[0]}\n({r[1]} features)" for r in results]
    positions = np.arange(len(results))
    right.bar(positions - 0.2, [r[2] for r in results], 0.4, label="accuracy")
    right.bar(positions + 0.2, [r[3] for r in results], 0.4, label="balanced accuracy")
    right.axhline(np.mean(y_test == majority), color="black", linestyle=":",
                  label="majority class of train (accuracy)")
    right.axhline(1 / len(np.unique(y_test)), color="grey", linestyle="--", label="chance (balanced accuracy)")
    right.set(xticks=positions, xticklabels=names, ylim=(0, 1), ylabel="score on valid+test regions",
              title=f"Linear probe for the class: trained on {int(is_train.sum())} train regions, "
                    f"scored on {int((~is_train).sum())}")
    right.legend(fontsize=8)
    save_figure(figure, out / "regions.png")
    return out / "probe.csv"
