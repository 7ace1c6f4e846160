"""What ships inside the package (see resources/README.md): the real genome slice used when no --fasta is
given, its annotation, and the pretrained models loadable by name."""

from pathlib import Path

RESOURCES = Path(__file__).parent / "resources"
FASTA = RESOURCES / "hg19_chr20_32-37Mb.fa.gz"
ANNOTATION = RESOURCES / "annotation"
CTCF_MATRIX = RESOURCES / "JASPAR2022_MA0139.1_CTCF.pfm"
# Two 500 kb held-out blocks of the 5 Mb slice, away from its assembly gap at 34.90 Mb.
SPLIT_SPEC = "valid=chr20:35500001-36000000;test=chr20:36500001-37000000"


def annotation(table: str) -> Path:
    """Path of a bundled BED table: tss, genes, exons, CpG_islands, CTCF, hg19_repeats."""
    return ANNOTATION / f"{table}.bed.gz"


# Pretrained models shipped as HuggingFace BertForMaskedLM folders (fp16 safetensors, tokenizer,
# model card): `grover_jax.load(NAME)`, `--checkpoint NAME`. Each card says how it was made.
MODELS = {"grover-small-hg19-chr20": RESOURCES / "models" / "grover-small-hg19-chr20"}


def model_folder(name_or_path: str | Path) -> Path | None:
    """The folder of a shipped model named `name_or_path`, or None when it names none (a path
    that exists is always taken as a path, so a user's folder can never be shadowed)."""
    if Path(name_or_path).exists():
        return None
    return MODELS.get(str(name_or_path))
