"""`grover export-hf` and `grover run`'s export: a pretraining run (BertForMaskedLM) or a fine-tuned
folder (BertForSequenceClassification) as a HuggingFace folder with its model card, then the
PyTorch logits parity check where torch and transformers are installed.

Besides HF's files the folder holds:
    README.md            the model card (interop/model_card.py): what the model is, genome and
                         regions, config, tokenizer, steps, valid metrics, how to load it, caveats
    grover_export.json   what it was exported from (folder, step, tokenizer sha256) and the parity
                         found, so `grover run` can tell an export that is up to date from one to redo
Both are written into the folder before it is moved into place, so an export is whole or absent.
"""

import dataclasses
import importlib.metadata
import json
import math
import shutil
from pathlib import Path
from typing import Any, Literal

from grover_jax.atomic_files import write_text
from grover_jax.errors import GroverError
from grover_jax.evaluation import METRICS
from grover_jax.interop import hf
from grover_jax.interop.errors import HfConversionError
from grover_jax.interop.model_card import classifier_card, masked_lm_card
from grover_jax.programs.finetune import read_results
from grover_jax.runs import Pretrained, is_finetuned_folder, load_pretrained, read_finetuned
from grover_jax.store import open_store
from grover_jax.tokenizer import load_tokenizer

EXPORT_RECORD = "grover_export.json"
TORCH_HINT = 'pip install -e ".[torch]"'


@dataclasses.dataclass(frozen=True)
class Export:
    out: Path
    architecture: str
    parity: float | None  # max |PyTorch - Flax logits|; None when not checked
    checked: bool  # False: --no-check, or torch/transformers missing


def parity_line(difference: float | None, checked: bool = True) -> str:
    """The line every command that checks an HF folder against PyTorch prints."""
    if difference is not None:
        return f"parity: max |PyTorch - Flax logits| = {difference:.3g} on real chr20 sequence"
    if not checked:
        return "parity: not checked (--no-check)"
    return f"parity: torch/transformers not installed, skipped (to check the PyTorch logits: {TORCH_HINT})"


def export_hf(checkpoint: str | Path, out: str | Path, step: int | Literal["best", "latest"] = "best",
              overwrite: bool = False, check: bool = True) -> Export:
    """`grover export-hf`: a fine-tuned folder as a classifier, anything `load_pretrained` reads as
    a masked LM."""
    if is_finetuned_folder(checkpoint):
        if step != "best":
            raise HfConversionError(f"{checkpoint}: a fine-tuning folder keeps its best parameters only "
                                       f"(--step {step})")
        return export_classifier(checkpoint, out, overwrite, check)
    return export_masked_lm(load_pretrained(checkpoint, step), out, overwrite, check)


def export_masked_lm(pretrained: Pretrained, out: str | Path, overwrite: bool = False,
                     check: bool = True) -> Export:
    out = Path(out)
    config = hf.hf_config(pretrained.model_config, "BertForMaskedLM")
    training, held_out = _pretraining_texts(pretrained)
    card = masked_lm_card(
        out.name, config, training=training, held_out=held_out,
        how_made=f"`grover export-hf` (grover-jax {_version()}) of `{pretrained.run_dir}`"
                 + (f", pretraining step {pretrained.step:,}." if pretrained.step else "."),
        load_path=str(out), dtype="float32", tags=("dna", "genomics", "bert", "grover"), license=None)
    record = {"source": str(Path(pretrained.run_dir).resolve()), "architecture": "BertForMaskedLM",
              "step": pretrained.step, "tokenizer_sha256": pretrained.tokenizer_sha256}
    out = hf.export_masked_lm(pretrained.params, pretrained.model_config, pretrained.tokenizer_path, out,
                              overwrite, extra_files=_extras(card, record))
    return _verify(out, "BertForMaskedLM", pretrained.params, pretrained.model_config,
                   pretrained.tokenizer_path, check)


def export_classifier(ft_dir: str | Path, out: str | Path, overwrite: bool = False, check: bool = True) -> Export:
    out = Path(out)
    finetuned = read_finetuned(ft_dir)
    names = [str(n) for n in finetuned.class_names or ()]
    if len(names) != finetuned.num_classes or len(set(names)) != finetuned.num_classes:
        names = [f"LABEL_{i}" for i in range(finetuned.num_classes)]  # as hf.export_classifier labels them
    config = {**hf.hf_config(finetuned.encoder, "BertForSequenceClassification"),
              "id2label": {str(i): name for i, name in enumerate(names)}}
    task = finetuned.meta.get("task", {}).get("task") or finetuned.meta["config"].get("task", {}).get("name", "?")
    training, held_out = _finetuning_texts(finetuned.meta, read_results(ft_dir))
    card = classifier_card(out.name, config, task, training=training, held_out=held_out,
                           how_made=f"`grover export-hf` (grover-jax {_version()}) of the fine-tuned folder "
                                    f"`{finetuned.path}` (its best parameters, `best/params.npz`).",
                           load_path=str(out))
    record = {"source": str(finetuned.path.resolve()), "architecture": "BertForSequenceClassification",
              "step": None, "tokenizer_sha256": load_tokenizer(finetuned.tokenizer_path).sha256}
    params = finetuned.params()
    out = hf.export_classifier(params, finetuned.encoder, finetuned.num_classes, finetuned.pooling,
                               finetuned.tokenizer_path, out, overwrite, class_names=finetuned.class_names,
                               extra_files=_extras(card, record))
    export = _verify(out, "BertForSequenceClassification", params, finetuned.encoder, finetuned.tokenizer_path,
                     check)
    finetuned.warn_if_unfinished()
    return export


def read_export_record(out: str | Path) -> dict[str, Any] | None:
    """grover_export.json of an export folder; None where there is none or it is unreadable."""
    try:
        return json.loads((Path(out) / EXPORT_RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_current(out: str | Path, pretrained: Pretrained) -> bool:
    """Whether `out` is a whole export of exactly this pretrained run's step and tokenizer."""
    record = read_export_record(out)
    return (record is not None and (Path(out) / hf.MODEL_FILE).exists()
            and record.get("architecture") == "BertForMaskedLM"
            and record.get("source") == str(Path(pretrained.run_dir).resolve())
            and record.get("step") == pretrained.step
            and record.get("tokenizer_sha256") == pretrained.tokenizer_sha256)


# ---------------------------------------------------------------- parity


def _verify(out: Path, architecture: str, params: Any, model_config: Any, tokenizer_path: Path,
            check: bool) -> Export:
    """The parity check on the folder as written (PyTorch loads it from disk); its result joins
    grover_export.json. A folder whose logits disagree is removed: no export that failed its check
    is left behind to be used."""
    difference = None
    if check:
        try:
            difference = hf.check_parity(out, params, model_config, tokenizer_path)
        except GroverError:
            shutil.rmtree(out, ignore_errors=True)
            raise
        record = {**(read_export_record(out) or {}), "parity": difference}
        write_text(out / EXPORT_RECORD, json.dumps(record, indent=1))
    return Export(out, architecture, difference, check)


def _extras(card: str, record: dict) -> dict[str, str]:
    return {"README.md": card, EXPORT_RECORD: json.dumps({**record, "parity": None}, indent=1)}


# ---------------------------------------------------------------- the card's texts


def _version() -> str:
    try:
        return importlib.metadata.version("grover-jax")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def _pretraining_texts(pretrained: Pretrained) -> tuple[str, str]:
    """(training, held-out) paragraphs of a masked LM's card, from its run folder."""
    if not pretrained.step:  # an HF folder or a shipped model: no run folder to read
        training = (f"Exported from the HuggingFace folder `{pretrained.run_dir}`; see its own card for "
                    f"how it was trained.\n\n{_tokenizer_text(pretrained.tokenizer_path)}")
        return training, "Not recorded here (see the source folder's card)."
    config, train = pretrained.config, pretrained.config.train
    recipe = (f"Masked-token pretraining with grover-jax; this is step {pretrained.step:,} of "
              f"{train.num_steps:,}. Batches of {train.batch_size} windows of {config.data.seq_len} tokens, "
              f"mask rate {config.data.mask_rate} (BERT's 80/10/10 replacement), learning rate "
              f"{train.learning_rate}, seed {config.seed}. The whole run config is the run folder's "
              "`config.json`; `grover config show` explains every field.")
    training = "\n\n".join([recipe, _genome_text(config.data.store), _tokenizer_text(pretrained.tokenizer_path)])
    return training, _valid_text(Path(pretrained.run_dir) / "metrics.jsonl", pretrained.step)


def _genome_text(store_path: str) -> str:
    try:
        store = open_store(store_path)
    except (GroverError, OSError):
        return f"Genome: the token store `{store_path}` is not readable here, so its genome is not recorded."
    index = store.index
    files = ", ".join(f"`{Path(s['path']).name}` (sha256 {s['sha256'][:12]}…)" for s in index.get("sources", []))
    by_split: dict[str, dict[str, int]] = {}
    for contig in store.contigs:
        chromosomes = by_split.setdefault(contig["split"], {})
        chromosomes[contig["chromosome"]] = chromosomes.get(contig["chromosome"], 0) + contig["end"] - contig["start"]
    parts = [f"{split}: " + ", ".join(f"{c} {n:,} bases" for c, n in chromosomes.items())
             for split, chromosomes in by_split.items()]
    return (f"Genome: {files or 'files not recorded'}; splits `{index.get('split_spec') or 'none'}` (regions "
            f"named are held out, the rest is train). Trained on the train split only; "
            + "; ".join(parts) + ".")


def _tokenizer_text(tokenizer_path: Path) -> str:
    tokenizer = load_tokenizer(tokenizer_path)
    kind = (f"fixed non-overlapping {tokenizer.kmer}-mers" if tokenizer.kmer
            else f"byte-pair encoding in GROVER cycles, {len(tokenizer.merges)} merges")
    return (f"Tokenizer: `tokenizer.json`, {kind}, {tokenizer.vocab_size} tokens with [PAD] [UNK] [CLS] "
            f"[SEP] [MASK] at ids 0-4 (sha256 {tokenizer.sha256[:12]}…).")


def _valid_text(metrics_path: Path, step: int) -> str:
    rows = []
    if metrics_path.exists():
        for line in metrics_path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("kind") == "valid" and row.get("step", math.inf) <= step:
                rows.append(row)
    if not rows:
        return f"No valid evaluation is recorded in `{metrics_path.name}` up to step {step:,}."
    row = rows[-1]
    return (f"Valid split at step {row['step']:,}, with BERT's 80/10/10 masking (a tenth of targets "
            f"stay visible, so this is not a fill-in score): loss {row['loss']:.4f}, masked-token accuracy "
            f"{row['accuracy']:.4f} (always answering the commonest train token: "
            f"{row.get('unigram_accuracy', float('nan')):.4f}), perplexity {row['perplexity']:.2f}. "
            "`grover mlm-eval` measures fill-in on held-out sequence against count baselines.")


def _finetuning_texts(meta: dict, results: dict | None) -> tuple[str, str]:
    """(training, held-out) paragraphs of a classifier's card, from its fine-tuned folder."""
    config, task = meta.get("config", {}), meta.get("task", {})
    train = config.get("train", {})
    source = ", ".join(Path(f).name for f in task.get("fasta", ())) or "the bundled hg19 chr20 slice"
    annotation = f" with the annotation `{task['annotation']}`" if task.get("annotation") else ""
    data = (f"Fine-tuned on task `{task.get('task') or config.get('task', {}).get('name', '?')}`: sequences of "
            f"{task.get('window', '?')} bp from {source}{annotation}, split by "
            f"{task.get('block_size', '?')}-bp genome blocks, so no base is in two splits.")
    recipe = (f"Starting encoder: `{meta.get('checkpoint', '?')}` (pretraining step "
              f"{meta.get('pretrained_step', '?')}). AdamW, learning rate {train.get('learning_rate', '?')}, "
              f"batch {train.get('batch_size', '?')}, early stopping on valid "
              f"{train.get('selection_metric', '?')}; the exported parameters are the best on valid.")
    training = f"{data}\n\n{recipe}"
    if results is None:
        return training, "No `results.json` in the fine-tuned folder: the run did not finish."
    name, entry = next(iter(results["models"].items()))
    valid = entry.get("valid", {})
    test_task = results.get("task", {})
    level = int(results.get("ci_level", 0.95) * 100)
    rows = [f"Best valid (step {entry.get('best_step', '?')} of {entry.get('steps', '?')}): "
            + ", ".join(f"{m} {valid[m]:.3f}" for m in METRICS if m in valid) + ".",
            "",
            (f"Test split ({test_task.get('test_examples', '?')} examples, labels "
             f"{test_task.get('labels', {}).get('test', '?')}), {level} % bootstrap intervals:"),
            "",
            "| model | " + " | ".join(METRICS) + " |",
            "|---|" + "---|" * len(METRICS)]
    for model, values in results["models"].items():
        cells = [_interval(values["test"], m) for m in METRICS]
        rows.append(f"| {model}{' (this model)' if model == name else ''} | " + " | ".join(cells) + " |")
    return training, "\n".join(rows)


def _interval(entry: dict, metric: str) -> str:
    value, (low, high) = entry["metrics"][metric], entry["ci"][metric]
    return "–" if value is None or math.isnan(value) else f"{value:.3f} [{low:.3f}, {high:.3f}]"
