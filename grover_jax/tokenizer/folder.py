"""The folder every vocabulary here is saved as (BPE or k-mer): tokenizer.json plus the transformers
configs that let `AutoTokenizer` load it."""

import json
from pathlib import Path

from tokenizers import Tokenizer

from grover_jax.atomic_files import write_text

TOKENIZER_FILE = "tokenizer.json"


def write_tokenizer_files(tokenizer: Tokenizer, out_dir: str | Path) -> Path:
    """tokenizer.json plus the transformers configs that let `AutoTokenizer` load the folder."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / TOKENIZER_FILE, tokenizer.to_str(pretty=True))
    write_text(out_dir / "tokenizer_config.json", json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 512,
        "do_lower_case": False,
        "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]",
    }, indent=2))
    write_text(out_dir / "special_tokens_map.json", json.dumps({
        "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]",
    }, indent=2))
    return out_dir / TOKENIZER_FILE
