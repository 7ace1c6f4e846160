"""The README.md (a HuggingFace model card: YAML metadata, then Markdown) of an exported folder."""

import json
from pathlib import Path

from grover_jax.atomic_files import write_text


def masked_lm_card(name: str, config: dict, training: str, held_out: str, how_made: str) -> str:
    """A card for a BertForMaskedLM folder. `config` is the folder's config.json; the three texts are
    Markdown paragraphs: what it was trained on (genome, regions, steps), its held-out metrics, and
    the exact command and commit that made it."""
    shape = (f"{config['num_hidden_layers']} layers × {config['hidden_size']} hidden, "
             f"{config['num_attention_heads']} heads, {config['max_position_embeddings']} positions, "
             f"vocabulary {config['vocab_size']}")
    return f"""---
library_name: transformers
pipeline_tag: fill-mask
tags: [dna, genomics, bert, grover, hg19]
license: mit
---

# {name}

A GROVER-style DNA language model (BERT masked-token pretraining over a byte-pair-encoding
vocabulary of the human genome; Sanabria et al., Nature Machine Intelligence 6, 911-923, 2024),
trained with grover-jax. {shape}.

## Training

{training}

## Held-out metrics

{held_out}

## How it was made

{how_made}

## Use

```python
import grover_jax
model = grover_jax.load("{name}")                # or the path of this folder
vectors = model.embed(["ACGT..."], pooling="mean")

from transformers import AutoTokenizer, BertForMaskedLM   # PyTorch
tokenizer = AutoTokenizer.from_pretrained("path/to/{name}")
model = BertForMaskedLM.from_pretrained("path/to/{name}")
```

Weights are stored in float16; grover-jax and transformers load them as float32.

## Caveats

- **Strand.** The model reads the forward (reference) strand only, as GROVER: BPE tokens are
  direction-specific and the encoder is not reverse-complement symmetric. Score the reverse
  complement separately where strand does not matter.
- **Pooler.** Masked-token pretraining does not train BERT's pooler; `AutoModel`'s
  `pooler_output` is its random initialisation. Use mean-pooled hidden states or fine-tune.
- **Tokenization at the edges.** BPE tokens depend on their neighbours: tokenize a whole region
  and cut tokens, rather than tokenizing short pieces separately.
"""


def write_card(folder: str | Path, text: str) -> Path:
    path = Path(folder) / "README.md"
    write_text(path, text)
    return path


def read_config(folder: str | Path) -> dict:
    return json.loads((Path(folder) / "config.json").read_text())
