"""Which neurons a threshold selects in each ``ThresholdMode`` (docs/PROTOCOL.md, 5.5).

A mode turns the CONTROL threshold into a per-site *cut* on the neurons' mean |x|; the neurons
above the cut are the site's sparse points. ABSOLUTE: the threshold itself. SIGMA: the mean of
the site's neuron means plus ``threshold`` standard deviations. TOP_FRACTION: just below the
``ceil(threshold x neurons)``-th largest neuron mean. The cut is computed where the means live:
with torch ops on their device (no host sync: ``reductions.write_selection``), or with numpy
here, on the encoder thread and in the simulator (which must not need torch).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from synapse_native.protocol import ThresholdMode


def relative(mode: int) -> bool:
    """Whether ``mode`` cuts each site by its own distribution (not one absolute value)."""
    return mode != ThresholdMode.ABSOLUTE


def top_count(fraction: float, neurons: int) -> int:
    """Neurons a TOP_FRACTION of ``fraction`` selects (ties at the cut aside)."""
    return min(neurons, max(0, math.ceil(fraction * neurons)))


def host_cut(means: npt.NDArray[np.float32], mode: int, value: float) -> float:
    """``device_cut`` in numpy (the native CPU kernel's means, the simulator's)."""
    if not relative(mode):
        return value
    if mode == ThresholdMode.SIGMA:
        return float(np.float32(means.mean(dtype=np.float64) + value * means.std(dtype=np.float64)))
    k = top_count(value, means.size)
    if k == 0:
        return math.inf
    kth = np.partition(means, means.size - k)[means.size - k]
    return float(np.nextafter(np.float32(kth), np.float32(-np.inf)))
