"""How the scene looks: what Qt widgets write and the VisPy adapters read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from synapse_desktop.models.history import FIELDS
from synapse_desktop.models.signal import Signal
from synapse_desktop.models.smoothing import MAX_WEIGHT

STATISTICS = ("rms", "mean_abs", "std", "mean", "max", "frac_above", "frac_zero", "kurtosis")
HEATMAP_STATISTICS = FIELDS
HEATMAP_KINDS = ("attn", "mlp", "residual", "mean")  # the overview's site kind per layer
COLORMAPS = ("inferno", "viridis", "plasma", "fire", "ice", "coolwarm", "grays")
THEMES = ("dark", "light")


@dataclass(frozen=True, slots=True)
class ViewValues:
    """Every view setting; replaced as a whole so listeners see consistent values."""

    statistic: str = "rms"
    colormap: str = "inferno"
    theme: str = "dark"
    glow: bool = True
    points: bool = True
    layer_spacing: float = 1.0  # a factor of the default spacing
    heatmap_statistic: str = "rms"
    rank_spread: bool = False  # colour the planes by the spread of the statistic across ranks
    heatmap_kind: str = "residual"
    overview_metric: str = "loss"  # a TRAINING_METRICS name
    metric_smoothing: float = 0.6  # EMA weight of the metric plot's smoothed line (0: none)
    metric_log: bool = False  # the metric plot's y axis in log scale


class ViewSettings:
    """``changed(name, value)`` fires once per field that ``set`` really changed."""

    def __init__(self) -> None:
        self.changed = Signal()
        self.values = ViewValues()

    def set(self, **changes: Any) -> None:
        """Change some fields; unknown names raise ``TypeError``, bad values ``ValueError``."""
        new = dataclasses.replace(self.values, **changes)
        _validate(new)
        old, self.values = self.values, new
        for name, value in changes.items():
            if getattr(old, name) != value:
                self.changed.emit(name, value)


def _validate(values: ViewValues) -> None:
    for name, allowed in (
        ("statistic", STATISTICS),
        ("heatmap_statistic", HEATMAP_STATISTICS),
        ("heatmap_kind", HEATMAP_KINDS),
        ("colormap", COLORMAPS),
        ("theme", THEMES),
    ):
        if getattr(values, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(values, name)!r}")
    if not 0.1 <= values.layer_spacing <= 10:
        raise ValueError(f"layer_spacing must be within 0.1..10, got {values.layer_spacing}")
    if not 0.0 <= values.metric_smoothing <= MAX_WEIGHT:
        raise ValueError(f"metric_smoothing must be within 0..{MAX_WEIGHT}")
    if not values.overview_metric:
        raise ValueError("overview_metric must name a metric")
