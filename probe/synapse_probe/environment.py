"""What the training process would run with: torch, its CUDA device, Triton.

``python -m synapse_probe.environment`` prints it as one JSON object (``synapse info`` reads it
from a child process, since the app side never imports torch).
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError, version


def report() -> dict[str, str]:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        count = torch.cuda.device_count()
        cuda = f"{torch.version.cuda}; {count} device(s), {name}"
    elif torch.version.cuda:
        cuda = f"{torch.version.cuda} build, but no usable device (statistics run on the CPU)"
    else:
        cuda = "not in this torch build (statistics run on the CPU, in the C kernel)"
    try:
        triton = f"{version('triton')} (the fused kernel for CUDA tensors)"
    except PackageNotFoundError:
        triton = "not installed (CUDA tensors use torch's own reductions)"
    return {"torch": torch.__version__, "cuda": cuda, "triton": triton}


if __name__ == "__main__":
    print(json.dumps(report()))
    sys.exit(0)
