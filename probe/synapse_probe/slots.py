"""The per-site slot layout and the preallocated buffer that hooks write their statistics into.

A slot is one float64 row per site (float64 so that counts stay exact up to 2**53). It holds
raw accumulators, not finished statistics: the encoder thread turns them into summary records,
so the training thread never spends time on that.
"""

from __future__ import annotations

import numpy as np
import torch

# Scalars of a slot.
NAN = 0  # NaN elements
INF = 1  # +-inf elements
SUM = 2  # sum of the finite elements
M2 = 3  # sums of (x - mean)^2, ^3, ^4 over the finite elements
M3 = 4
M4 = 5
MIN = 6  # over the finite elements
MAX = 7
SUM_ABS = 8  # sum of |x| over the finite elements
ZEROS = 9  # elements equal to zero
ABOVE = 10  # finite elements with |x| > threshold
NEURONS_ABOVE = 11  # neurons whose mean |x| is above the cut (the threshold, or its mode's cut)
N_SCALARS = 12
CUT = 12  # a relative threshold mode's cut on the neuron means (``selection``); else unused
ALL_NAN = 13  # a token-sampled row: NaN elements of the whole tensor (NAN counts the sample's)
ALL_INF = 14  # a token-sampled row: +-inf elements of the whole tensor
# Histogram: 64 symmetric-log2 bins, then one bin that collects the non-finite elements.
HIST = 16
HIST_BINS = 64
TRASH_BIN = HIST + HIST_BINS
TOP = TRASH_BIN + 1  # top_k neuron values (mean |x|), then their indices


def slot_width(top_k: int) -> int:
    """Float64 entries per activation slot for a given top-k (gradient slots have no top-k)."""
    return TOP + 2 * top_k


class SlotBuffer:
    """One flat float64 buffer on the device, copied off it in one go at the step's end.

    Layout: ``n_sites`` activation slots of ``width`` entries, ``n_sites`` gradient slots of
    ``TOP`` entries, then ``n_blocks`` per-block gradient norms.
    """

    def __init__(self, device: torch.device, n_sites: int, n_blocks: int, top_k: int) -> None:
        self.device = device
        self.n_sites = n_sites
        self.n_blocks = n_blocks
        self.top_k = top_k
        self.width = slot_width(top_k)
        self.flat = _zeros(device, self.size)
        activations = n_sites * self.width
        gradients = activations + n_sites * TOP
        self.activations = self.flat[:activations].view(n_sites, self.width)
        self.gradients = self.flat[activations:gradients].view(n_sites, TOP)
        self.norms = self.flat[gradients:]

    @property
    def size(self) -> int:
        """Float64 entries in the whole buffer."""
        return self.n_sites * (self.width + TOP) + self.n_blocks

    def resized(self, n_sites: int) -> SlotBuffer:
        """A buffer for more sites, keeping what was written so far (device-side copies)."""
        bigger = SlotBuffer(self.device, n_sites, self.n_blocks, self.top_k)
        bigger.activations[: self.n_sites].copy_(self.activations)
        bigger.gradients[: self.n_sites].copy_(self.gradients)
        bigger.norms.copy_(self.norms)
        return bigger

    def clear(self) -> None:
        """Zero every slot (one fill on the device, ordered after the last copy out)."""
        self.flat.zero_()


def _zeros(device: torch.device, size: int) -> torch.Tensor:
    if device.type == "cpu":
        # Built from numpy: reading it back later needs no torch-to-numpy call.
        return torch.from_numpy(np.zeros(size, np.float64))
    return torch.zeros(size, dtype=torch.float64, device=device)
