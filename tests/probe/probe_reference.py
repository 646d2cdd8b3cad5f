"""Reference statistics in float64 numpy, written from the protocol's definitions."""

from __future__ import annotations

import math

import numpy as np


def bin_of(x: float) -> int:
    """The symmetric-log2 histogram bin of a finite value (docs/PROTOCOL.md)."""
    magnitude = abs(x)
    if magnitude < 2.0**-15:
        j = 0
    else:
        _, exponent = math.frexp(magnitude)  # magnitude = m * 2**exponent, 0.5 <= m < 1
        j = min(max(exponent - 1 + 16, 1), 31)
    return 32 + j if x >= 0 else 31 - j


def summary(values: np.ndarray, threshold: float) -> dict[str, float | np.ndarray]:
    """Every summary field of ``values`` (any shape, float), over its finite elements."""
    x = values.astype(np.float64).ravel()
    finite = x[np.isfinite(x)]
    n = finite.size
    mean = finite.mean()
    var = ((finite - mean) ** 2).mean()
    hist = np.zeros(64)
    for v in values.astype(np.float32).ravel()[np.isfinite(x)]:
        hist[bin_of(float(v))] += 1
    return {
        "count": x.size,
        "nan_count": int(np.isnan(x).sum()),
        "inf_count": int(np.isinf(x).sum()),
        "mean": mean,
        "std": math.sqrt(var),
        "rms": math.sqrt((finite**2).mean()),
        "min": finite.min(),
        "max": finite.max(),
        "mean_abs": np.abs(finite).mean(),
        "skewness": ((finite - mean) ** 3).mean() / var**1.5,
        "kurtosis": ((finite - mean) ** 4).mean() / var**2 - 3.0,
        "frac_zero": (finite == 0).sum() / n,
        "frac_above": (np.abs(finite) > threshold).sum() / n,
        "hist": hist / n,
    }


def neuron_means(values: np.ndarray) -> np.ndarray:
    """Mean |x| per neuron (last axis) over every other axis, non-finite counted as 0."""
    x = values.astype(np.float64)
    x = np.where(np.isfinite(x), np.abs(x), 0.0)
    return x.reshape(-1, x.shape[-1]).mean(axis=0)


def selected_neurons(values: np.ndarray, mode: int, threshold: float) -> np.ndarray:
    """Indices of the neurons a relative threshold mode selects (docs/PROTOCOL.md 5.5), from
    float64 neuron means: SIGMA above mean + k std, TOP_FRACTION the ceil(f x n) largest."""
    means = neuron_means(values)
    if mode == 1:
        return np.flatnonzero(means > means.mean() + threshold * means.std())
    k = int(np.ceil(threshold * means.size))
    return np.sort(np.argsort(-means, kind="stable")[:k])
