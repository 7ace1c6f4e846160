"""Interoperability with HuggingFace PyTorch BERT folders: `grover_jax.interop.hf` (export,
import, logits parity). Nothing is imported here, so the CLI can name the errors cheaply."""
