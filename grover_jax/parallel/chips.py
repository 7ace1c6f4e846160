"""Accelerator chips' dense bf16 peak FLOP/s: the one table that MFU (`grover pretrain`) and the
step-time estimate of `grover compile` read."""

# Per chip, from the vendors' data sheets (Google Cloud's TPU system-architecture pages, "Peak
# compute per chip (bf16)"; NVIDIA's, dense, without sparsity). Keys are matched against JAX's
# `device_kind` in this order, so a longer name comes before a name it contains.
PEAK_BF16_FLOPS = {
    "H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12,
    "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12, "TPU v5": 459e12,
    "TPU v6 lite": 918e12, "TPU v6e": 918e12,
}


def peak_bf16_flops(device_kind: str) -> float | None:
    """The peak of the first chip whose name `device_kind` contains (None: not in the table)."""
    for name, flops in PEAK_BF16_FLOPS.items():
        if name.lower() in device_kind.lower():
            return flops
    return None
