"""Statistics of one tensor computed where it lives, written into a slot, without a host sync.

Every op here is launched asynchronously on the tensor's device and has a shape known from the
input's shape alone: no ``.item()``, no boolean indexing, no ``nonzero``, no ``bincount``. Used
for CUDA tensors, and for CPU tensors when the native kernel is not available.
"""

from __future__ import annotations

import math

import torch

from synapse_native.protocol import ThresholdMode
from synapse_serve.selection import relative, top_count

from ..slots import CUT, HIST, N_SCALARS, NEURONS_ABOVE, TOP, TRASH_BIN

# Symmetric-log2 histogram: |x| = m * 2**e (1 <= m < 2) falls in magnitude bin
# j = clamp(e + 16, 0, 31) (so j = 0 for |x| < 2**-15, zero and subnormals included); the bin
# is 32 + j for x >= 0 and 31 - j for x < 0. In float32 bits, e + 16 = exponent_field - 111.
_EXPONENT_OFFSET = 127 - 16
_MAX_GROUPS = 256  # private histograms per tensor on CUDA, to spread the atomic adds


def summarize_into(
    x: torch.Tensor, row: torch.Tensor, threshold: float, top_k: int, mode: int = 0
) -> int:
    """Write the raw accumulators of ``x`` into ``row`` (see ``slots``); return the k used.

    The last dimension of ``x`` is the neuron axis: its per-neuron mean |x| over every other
    dimension feeds the top-k and the threshold ``mode``'s selection. ``row`` must be a float64
    slot on ``x``'s device.
    """
    values = x.detach().reshape(-1)
    if values.dtype != torch.float32:
        values = values.float()
    neurons = x.shape[-1] if x.dim() else 1
    finite = torch.isfinite(values)
    n_nan = torch.isnan(values).sum()
    n_finite = finite.sum()
    total = torch.where(finite, values, 0.0).sum(dtype=torch.float64)
    mean = (total / n_finite.clamp(min=1)).float()
    # Non-finite elements take the mean: they then drop out of min/max and central moments.
    tamed = torch.where(finite, values, mean)
    low, high = torch.aminmax(tamed)
    deviation = tamed - mean
    squared = deviation * deviation
    magnitude = torch.where(finite, values.abs(), 0.0)
    scalars = [
        n_nan,
        values.numel() - n_finite - n_nan,
        total,
        squared.sum(dtype=torch.float64),
        (squared * deviation).sum(dtype=torch.float64),
        (squared * squared).sum(dtype=torch.float64),
        low,
        high,
        magnitude.sum(dtype=torch.float64),
        (values == 0).sum(),
        (magnitude > threshold).sum(),
    ]
    neuron_means = magnitude.view(-1, neurons).mean(dim=0)
    scalars.append((neuron_means > threshold).sum())
    row[:N_SCALARS].copy_(torch.stack(scalars))
    if relative(mode):
        write_selection(neuron_means, row, mode, threshold)
    _histogram_into(values, finite, row[HIST : TRASH_BIN + 1])
    return write_top_k(neuron_means, row, top_k)


def write_top_k(neuron_means: torch.Tensor, row: torch.Tensor, top_k: int) -> int:
    """Write the ``top_k`` largest neuron means and their indices into ``row``; return the k used
    (fixed by shapes alone, so no sync: the host sorts out the threshold later)."""
    k = min(top_k, neuron_means.numel())
    if k > 0:
        top = torch.topk(neuron_means, k, sorted=False)
        row[TOP : TOP + k].copy_(top.values)
        start = TOP + (row.numel() - TOP) // 2
        row[start : start + k].copy_(top.indices)
    return k


def device_cut(means: torch.Tensor, mode: int, value: float) -> torch.Tensor:
    """``selection.host_cut`` on the device: the cut of a relative ``mode`` on the float32
    neuron means, as a 0-d tensor."""
    if mode == ThresholdMode.SIGMA:
        std, mean = torch.std_mean(means, correction=0)
        return mean + value * std
    k = top_count(value, means.numel())
    if k == 0:
        return torch.full((), math.inf, dtype=means.dtype, device=means.device)
    kth = torch.topk(means, k, sorted=False).values.min()
    return torch.nextafter(kth, torch.full_like(kth, -math.inf))


def write_selection(means: torch.Tensor, row: torch.Tensor, mode: int, value: float) -> None:
    """In a relative ``mode``: write the site's cut and how many neurons are above it into the
    float64 slot ``row`` (device ops only)."""
    cut = device_cut(means, mode, value)
    row[CUT].copy_(cut)
    row[NEURONS_ABOVE].copy_((means > cut).sum())


def histogram_bins(values: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
    """The bin (0..63) of each float32 element; 64 for NaN and +-inf. Shape of ``values``."""
    exponent = (values.view(torch.int32) >> 23) & 0xFF
    magnitude_bin = (exponent - _EXPONENT_OFFSET).clamp_(0, 31)
    signed = torch.where(values < 0, 31 - magnitude_bin, magnitude_bin + 32)
    return torch.where(finite, signed, 64)


def _histogram_into(values: torch.Tensor, finite: torch.Tensor, out: torch.Tensor) -> None:
    """Add the 65 bin counts of ``values`` to ``out`` (float64, zeroed before the step)."""
    bins = histogram_bins(values, finite)
    groups = _groups(values) if values.is_cuda else 1
    if groups == 1:
        out.index_add_(0, bins, _ones(out, bins.shape))
        return
    # Many private histograms, then one sum: far fewer atomic collisions on the same bin.
    partial = torch.zeros(groups, out.numel(), dtype=out.dtype, device=out.device)
    grouped = bins.view(groups, -1).long()
    partial.scatter_add_(1, grouped, _ones(out, grouped.shape))
    out.add_(partial.sum(dim=0))


def _groups(values: torch.Tensor) -> int:
    """The largest power of two up to _MAX_GROUPS that divides the element count."""
    n = values.numel()
    groups = _MAX_GROUPS
    while groups > 1 and n % groups:
        groups //= 2
    return groups


def _ones(like: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    return torch.ones((), dtype=like.dtype, device=like.device).expand(shape)
