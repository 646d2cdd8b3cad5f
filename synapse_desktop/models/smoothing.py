"""Exponential moving average of a training metric, as TensorBoard draws its smoothed curves.

``smoothed[i] = (w * last + (1 - w) * x[i])``, debiased by ``1 - w^(n + 1)`` for the ``n``
finite values before it (so the curve starts on the data, not at 0). Non-finite values are
skipped (NaN at their place). Vectorised in blocks: each block is a cumulative sum with powers
of ``w`` that stay within float64 range, and the last value carries to the next block.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

MAX_WEIGHT = 0.999
_BLOCK = 128

Values = npt.NDArray[np.float64]


def ema(values: Values, weight: float) -> Values:
    """The debiased EMA of ``values`` with smoothing ``weight`` in [0, MAX_WEIGHT]."""
    values = np.asarray(values, np.float64)
    weight = min(max(float(weight), 0.0), MAX_WEIGHT)
    finite = np.isfinite(values)
    out = np.full(values.shape, np.nan)
    if weight == 0.0:
        out[finite] = values[finite]
        return out
    x = values[finite]
    smoothed = np.empty_like(x)
    k = np.arange(_BLOCK, dtype=np.float64)
    down, up, left = weight**-k, weight**k, weight ** (k + 1)  # within float64 for a block
    carry = 0.0
    for start in range(0, len(x), _BLOCK):
        block = x[start : start + _BLOCK]
        n = len(block)
        raw = left[:n] * carry + (1.0 - weight) * up[:n] * np.cumsum(block * down[:n])
        smoothed[start : start + n] = raw / (1.0 - weight**start * left[:n])
        carry = float(raw[-1])
    out[finite] = smoothed
    return out
