"""The README.md (a HuggingFace model card: YAML metadata, then Markdown) of an exported folder.

Written by `grover export-hf` (and `grover run`'s export) for every folder, masked LM or
fine-tuned classifier, and by scripts/reproduce.py for the shipped model. The texts about
training and metrics come from the caller, which knows the run; this module owns the layout and
the caveats every card states (strand, pooler, tokenization at the edges).
"""

import json
from pathlib import Path

from grover_jax.atomic_files import write_text

_PAPER = ("Sanabria et al., *DNA language model GROVER learns sequence context in the human genome*, "
          "Nature Machine Intelligence 6, 911-923, 2024")

_STRAND = """- **Strand.** The model is strand-specific: it reads the forward (reference) strand only, as
  GROVER: BPE tokens are direction-specific and the encoder is not reverse-complement symmetric
  (a sequence and its reverse complement get different embeddings). Score the reverse
  complement separately where strand does not matter."""

_EDGES = """- **Tokenization at the edges.** BPE tokens depend on their neighbours: tokenize a whole region
  and cut tokens, rather than tokenizing short pieces separately."""


def _shape(config: dict) -> str:
    return (f"{config['num_hidden_layers']} layers × {config['hidden_size']} hidden, "
            f"{config['num_attention_heads']} heads, {config['max_position_embeddings']} positions, "
            f"vocabulary {config['vocab_size']}")


def _metadata(pipeline_tag: str, tags: list[str], license: str | None) -> str:
    lines = ["---", "library_name: transformers", f"pipeline_tag: {pipeline_tag}",
             f"tags: [{', '.join(tags)}]"]
    if license:
        lines.append(f"license: {license}")
    return "\n".join(lines + ["---"])


def _weights_note(dtype: str) -> str:
    if dtype == "float16":
        return "Weights are stored in float16; grover-jax and transformers load them as float32."
    return f"Weights are stored in {dtype}."


def masked_lm_card(name: str, config: dict, training: str, held_out: str, how_made: str,
                   load_path: str | None = None, dtype: str = "float16",
                   tags: tuple[str, ...] = ("dna", "genomics", "bert", "grover", "hg19"),
                   license: str | None = "mit") -> str:
    """A card for a BertForMaskedLM folder. `config` is the folder's config.json; the three texts are
    Markdown paragraphs: what it was trained on (genome, regions, steps), its held-out metrics, and
    the exact command and commit that made it. `load_path` is what `grover_jax.load` takes (default:
    `name`, a model shipped with the package)."""
    where = load_path or name
    return f"""{_metadata("fill-mask", list(tags), license)}

# {name}

A GROVER-style DNA language model (BERT masked-token pretraining over a byte-pair-encoding
vocabulary learned on the genome; {_PAPER}),
trained with grover-jax. {_shape(config)}.

## Training

{training}

## Held-out metrics

{held_out}

## How it was made

{how_made}

## Use

```python
import grover_jax
model = grover_jax.load("{where}")                # or the path of this folder
vectors = model.embed(["ACGT..."], pooling="mean")

from transformers import AutoTokenizer, BertForMaskedLM   # PyTorch
tokenizer = AutoTokenizer.from_pretrained("path/to/{name}")
model = BertForMaskedLM.from_pretrained("path/to/{name}")
```

{_weights_note(dtype)}

## Caveats

{_STRAND}
- **Pooler.** Masked-token pretraining does not train BERT's pooler; `AutoModel`'s
  `pooler_output` is its random initialisation. Use mean-pooled hidden states or fine-tune.
{_EDGES}
"""


def classifier_card(name: str, config: dict, task: str, training: str, held_out: str, how_made: str,
                    load_path: str, tags: tuple[str, ...] = ("dna", "genomics", "bert", "grover")) -> str:
    """A card for a BertForSequenceClassification folder (a fine-tuned classifier); `config` is its
    config.json (with id2label), `task` the task's name, the texts as in `masked_lm_card`."""
    labels = ", ".join(f"{i} = `{label}`" for i, label in sorted(config.get("id2label", {}).items(),
                                                                    key=lambda item: int(item[0])))
    return f"""{_metadata("text-classification", [*tags, task], None)}

# {name}

A GROVER-style DNA language model (BERT over a byte-pair-encoding vocabulary of the genome;
{_PAPER}) fine-tuned with grover-jax to classify DNA sequences: task `{task}`, labels {labels}.
{_shape(config)}; HF's classification head (pooler on [CLS], then a linear layer).

## Training

{training}

## Held-out metrics

{held_out}

## How it was made

{how_made}

## Use

```python
import grover_jax
classifier = grover_jax.load("{load_path}")          # or the path of this folder
logits = classifier.predict(["ACGT..."])              # [n, num_labels]

from transformers import AutoTokenizer, BertForSequenceClassification   # PyTorch
tokenizer = AutoTokenizer.from_pretrained("path/to/{name}")
model = BertForSequenceClassification.from_pretrained("path/to/{name}")   # config.id2label names the classes
```

{_weights_note("float32")}

## Caveats

{_STRAND}
- **Pooler.** Here the pooler is trained: fine-tuning updates it with the classifier.
{_EDGES}
- **Input length.** Sequences longer than the encoder's {config['max_position_embeddings'] - 2} tokens
  are cut; fine-tuning saw inputs of the task's window only.
"""


def write_card(folder: str | Path, text: str) -> Path:
    path = Path(folder) / "README.md"
    write_text(path, text)
    return path


def read_config(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "config.json").read_text())
