"""The threshold modes as the control panel offers them: labels, ranges, and how a value shows.

A TOP_FRACTION threshold travels as a fraction and shows as a percentage; the other modes show
their wire value. Defaults are the probe's (about 1 % of a site lit in the relative modes).
"""

from __future__ import annotations

from dataclasses import dataclass

from synapse_native.protocol import ThresholdMode


@dataclass(frozen=True, slots=True)
class ThresholdChoice:
    mode: ThresholdMode
    label: str
    tip: str
    default: float  # wire units
    maximum: float  # wire units
    step: float  # shown units
    decimals: int
    suffix: str
    percent: bool = False

    def shown(self, value: float) -> float:
        """The spin box's value for a wire value."""
        return value * 100.0 if self.percent else value

    def wire(self, shown: float) -> float:
        """The wire value for a spin box's value."""
        return shown / 100.0 if self.percent else shown

    def describe(self, value: float) -> str:
        """A wire value in a few words, e.g. "2.50 sigma", "top 1.00 %", "|x| > 1"."""
        if self.mode == ThresholdMode.SIGMA:
            return f"{value:.2f} sigma"
        if self.percent:
            return f"top {self.shown(value):.2f} %"
        return f"|x| > {value:.3g}"


THRESHOLD_MODES: dict[int, ThresholdChoice] = {
    ThresholdMode.SIGMA: ThresholdChoice(
        ThresholdMode.SIGMA,
        "k sigma above each site's mean",
        "Light the neurons whose mean |x| is more than k standard deviations above the mean "
        "of their site's neurons: each site by its own scale",
        2.5,
        100.0,
        0.25,
        2,
        " sigma",
    ),
    ThresholdMode.TOP_FRACTION: ThresholdChoice(
        ThresholdMode.TOP_FRACTION,
        "top fraction of each site",
        "Light this share of each site's neurons: those with the largest mean |x|",
        0.01,
        1.0,
        0.5,
        2,
        " %",
        percent=True,
    ),
    ThresholdMode.ABSOLUTE: ThresholdChoice(
        ThresholdMode.ABSOLUTE,
        "mean |x| above a value",
        "Light the neurons whose mean |x| is above this value, the same for every site",
        1.0,
        1e6,
        0.05,
        3,
        "",
    ),
}
