"""The fused statistics kernel for CUDA tensors, written in Triton.

The torch reductions (``reductions.summarize_into``) take some thirty passes over a tensor and
build the histogram with contended global atomics: about 3 ms per site of a 16M-element bf16
activation on an H100, twice the step time of a 1B model (docs/PERFORMANCE.md). Here one kernel
reads the tensor once, in its own dtype, as tiles of ``[rows, neurons]``; each tile writes its
counts, sum, central moments about its own mean, min, max and |x| sum to a row of partials, adds
its histogram (a private one per tile, then 65 atomic adds) and its per-neuron |x| sums (one
atomic add per neuron per tile) to scratch. A one-program kernel then merges the partials with
the exact pairwise formulas for central moments, turns neuron sums into means, and writes the
slot (see ``slots``) in float64. ``torch.topk`` picks the top-k neurons. Everything is launched
asynchronously: no host sync, a handful of launches per site.

``load`` returns None when Triton is missing; the probe then uses the torch reductions.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from synapse_serve.selection import relative

from ..slots import HIST, N_SCALARS
from .reductions import write_selection, write_top_k

TILE = 8192  # elements per program (with TILE_WARPS, the fastest of a sweep on an H100)
TILE_WARPS = 4
PARTIAL = 12  # float64 entries per tile: see _triton_stats
MERGE_BLOCK = 1024
HIST_BINS = 64  # finite bins; the 65th (non-finite) comes from the NaN and inf counts


class CudaKernel:
    """Slots of CUDA tensors filled by two Triton kernels (``summarize_into``'s contract)."""

    def __init__(self, kernels: Any) -> None:
        self._kernels = kernels

    @staticmethod
    def accepts(tensor: torch.Tensor) -> bool:
        return tensor.is_cuda and tensor.dtype in (torch.float32, torch.bfloat16, torch.float16)

    def summarize_into(
        self, x: torch.Tensor, row: torch.Tensor, threshold: float, top_k: int, mode: int = 0
    ) -> int:
        """Write the raw accumulators of ``x`` into the float64 slot ``row``; return the k used."""
        return summarize_with(self._kernels, x, row, threshold, top_k, mode)


def load() -> CudaKernel | None:
    """The kernel, or None when Triton cannot be imported."""
    if importlib.util.find_spec("triton") is None:
        return None
    try:
        from . import _triton_stats
    except ImportError:
        return None
    return CudaKernel(_triton_stats)


def summarize_with(
    kernels: Any, x: torch.Tensor, row: torch.Tensor, threshold: float, top_k: int, mode: int = 0
) -> int:
    """``summarize_into`` with the Triton kernels of ``kernels`` (also run by the interpreter in
    tests, on CPU tensors)."""
    values = x.detach()
    if not values.is_contiguous():
        values = values.contiguous()
    cols = values.shape[-1] if values.dim() else 1
    rows = values.numel() // cols
    block_c = min(256, _next_power_of_two(cols))
    block_r = max(1, TILE // block_c)
    grid = (-(-rows // block_r), -(-cols // block_c))
    device = values.device
    n_parts = grid[0] * grid[1]
    partials = torch.empty(PARTIAL, n_parts, dtype=torch.float64, device=device)
    scratch = torch.zeros(HIST_BINS + cols, dtype=torch.int32, device=device)  # one memset
    hist, neuron_means = scratch[:HIST_BINS], scratch[HIST_BINS:].view(torch.float32)
    kernels.tile_stats[grid](
        values, rows, cols, float(threshold), partials, n_parts, hist, neuron_means,
        BLOCK_R=block_r, BLOCK_C=block_c, num_warps=TILE_WARPS,
    )  # fmt: skip
    kernels.merge[(1,)](
        partials, n_parts, hist, neuron_means, cols, float(rows), float(threshold),
        row, N_SCALARS, HIST, BLOCK=MERGE_BLOCK,
    )  # fmt: skip
    if relative(mode):  # the kernels counted against the threshold itself: count again
        write_selection(neuron_means, row, mode, threshold)
    return write_top_k(neuron_means, row, top_k)


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())
