"""The special tokens and the text pipeline every vocabulary here shares in its tokenizer.json.

Whatever the model (BPE merges or fixed k-mers): lowercase (soft-masked) bases are uppercased, runs
of non-ACGT characters are isolated (each becomes one [UNK]), single sequences are wrapped as
[CLS] … [SEP], decoding concatenates tokens, and the five special tokens take ids 0-4 (DNABERT's
order, which GROVER's code descends from).
"""

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))


def genome_tokenizer(model, *pre_tokenizer_steps: pre_tokenizers.PreTokenizer) -> Tokenizer:
    """A `tokenizers.Tokenizer` around `model` with the shared pipeline; extra pre-tokenizer steps
    run after the split at non-ACGT runs."""
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Sequence([normalizers.Replace(b.lower(), b) for b in "ACGTN"])
    split_at_non_acgt = pre_tokenizers.Split(Regex("[^ACGT]+"), behavior="isolated")
    tokenizer.pre_tokenizer = (pre_tokenizers.Sequence([split_at_non_acgt, *pre_tokenizer_steps])
                               if pre_tokenizer_steps else split_at_non_acgt)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)],
    )
    tokenizer.decoder = decoders.Fuse()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return tokenizer
