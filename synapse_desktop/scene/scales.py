"""How a statistic maps onto the colour map: a fixed range per statistic, log for magnitudes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Scale:
    """``log``: colour by log10 of the value; ``clim`` is in the scaled units."""

    label: str
    clim: tuple[float, float]
    log: bool = False

    def normalize(self, values: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """Values to 0..1 (clipped); NaN stays NaN."""
        v = np.asarray(values, np.float64)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.log10(np.abs(v))
        lo, hi = self.clim
        out = np.clip((v - lo) / (hi - lo), 0.0, 1.0)
        return out.astype(np.float32)

    def spread(self, by_rank: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        """The spread across ranks (rows) of each site (column) to 0..1: max - min of the
        scaled values (decades for a log scale) over ``SPREAD_SHARE`` of the range; NaN where
        fewer than two ranks have a value."""
        v = np.asarray(by_rank, np.float64)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.log10(np.abs(v))
        valid = np.isfinite(v)
        high = np.where(valid, v, -np.inf).max(axis=0, initial=-np.inf)
        low = np.where(valid, v, np.inf).min(axis=0, initial=np.inf)
        lo, hi = self.clim
        with np.errstate(invalid="ignore"):
            ratio = (high - low) / (SPREAD_SHARE * (hi - lo))
        out: npt.NDArray[np.float32] = np.clip(ratio, 0.0, 1.0).astype(np.float32)
        out[valid.sum(axis=0) < 2] = np.nan
        return out

    def describe_spread(self) -> str:
        lo, hi = self.clim
        unit = f"log10 {self.label} (decades)" if self.log else self.label
        return f"spread across ranks of {unit}: 0 .. {SPREAD_SHARE * (hi - lo):g}"

    def describe(self) -> str:
        lo, hi = self.clim
        return (
            f"log10 {self.label}: {lo:g} .. {hi:g}"
            if self.log
            else f"{self.label}: {lo:g} .. {hi:g}"
        )


SPREAD_SHARE = 0.125  # the spread that saturates the colour map, as a share of the range

SCALES = {
    "rms": Scale("rms", (-2.0, 2.0), log=True),
    "mean_abs": Scale("mean |x|", (-2.0, 1.5), log=True),
    "std": Scale("std", (-2.0, 2.0), log=True),
    "mean": Scale("mean", (-0.5, 0.5)),
    "max": Scale("max", (-1.0, 3.0), log=True),
    "frac_above": Scale("fraction above threshold", (0.0, 0.1)),
    "frac_zero": Scale("fraction of zeros", (0.0, 1.0)),
    "kurtosis": Scale("kurtosis", (0.0, 3.0), log=True),
}
