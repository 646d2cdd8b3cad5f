"""The native single-pass statistics kernel (``synapse_native.stats``) applied to CPU tensors.

The kernel reads a contiguous tensor in place through ``data_ptr()`` (no copy, no torch-to-numpy
conversion) and writes the wire record directly. ``load`` returns None when the native extension
is not built; the probe then uses the torch reductions on CPU as well.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from synapse_native.protocol import SparseActivations, SummaryFlag

_INPUT_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}


class CpuKernel:
    """Summaries of CPU tensors, one reusable kernel context per (site, direction)."""

    def __init__(self, stats: Any, threads: int | None = None) -> None:
        self._stats = stats  # the synapse_native.stats module
        self.threads = threads or stats.DEFAULT_THREADS
        self._contexts: dict[tuple[int, bool], Any] = {}

    def accepts(self, tensor: torch.Tensor) -> bool:
        """Whether the kernel can summarize ``tensor`` (a floating-point CPU tensor)."""
        return tensor.is_floating_point() and tensor.device.type == "cpu"

    def summarize(
        self,
        tensor: torch.Tensor,
        threshold: float,
        site_id: int,
        gradient: bool,
        record: npt.NDArray[np.void],
        neuron_means: npt.NDArray[np.float32] | None,
    ) -> None:
        """Write ``tensor``'s summary record into ``record``, and its per-neuron mean |x| into
        ``neuron_means`` when given. The last dimension is the neuron axis."""
        x = tensor.detach()
        if x.dtype not in _INPUT_DTYPES:
            x = x.float()
        if not x.is_contiguous():
            x = x.contiguous()
        cols = x.shape[-1] if x.dim() else 1
        context = self._context(site_id, gradient, cols)
        dtype = self._stats.InputDtype[_INPUT_DTYPES[x.dtype]]
        rows = x.numel() // cols
        context.compute_ptr(x.data_ptr(), rows, dtype, threshold, neuron_mean=True)
        flags = int(SummaryFlag.GRADIENT) if gradient else 0
        context.finish(site_id, flags, out=record)
        if neuron_means is not None:
            np.copyto(neuron_means, context.neuron_abs)

    def select(
        self, means: npt.NDArray[np.float32], site_id: int, threshold: float, top_k: int
    ) -> SparseActivations:
        """The sparse frame of one site: neurons above ``threshold``, at most ``top_k``."""
        k = min(top_k, means.size)
        indices = np.empty(k, np.uint32)
        values = np.empty(k, np.float32)
        written, above = self._stats.select_top(means, threshold, k, indices, values)
        return SparseActivations(site_id, threshold, above, indices[:written], values[:written])

    def _context(self, site_id: int, gradient: bool, cols: int) -> Any:
        key = (site_id, gradient)
        context = self._contexts.get(key)
        if context is None or context.cols != cols:
            context = self._contexts[key] = self._stats.SiteStats(cols, threads=self.threads)
        return context


def load(threads: int | None = None) -> CpuKernel | None:
    """The kernel (using up to ``threads`` threads per call, default the native package's), or
    None when the native extension is not available."""
    try:
        from synapse_native import stats
    except ImportError:
        return None
    return CpuKernel(stats, threads)
