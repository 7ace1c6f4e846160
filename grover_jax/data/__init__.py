"""Batch pipelines: masked-token windows from the token store (more tasks arrive with later stages)."""
