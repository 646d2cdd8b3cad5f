"""What makes the first minutes readable, without a display: the first window's size, the
metric plot's share of the overview, EMA smoothing, heatmap rows and columns, deep layouts."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from synapse_desktop.models.smoothing import ema
from synapse_desktop.models.thresholds import THRESHOLD_MODES
from synapse_desktop.models.topology import Site
from synapse_desktop.scene.layout import compute_layout, layers_per_row
from synapse_desktop.scene.steps import StepAxis, sampling_gap
from synapse_desktop.views.grid_adapters import label_step
from synapse_desktop.views.overview import MIN_METRIC_PX, group_rows, plot_heights, rows_per_pixel
from synapse_native.protocol import SiteKind, ThresholdMode


def tensorboard_ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing, written as its loop: debiased, non-finite values skipped."""
    out, last, n = [], 0.0, 0
    for x in values:
        if not np.isfinite(x):
            out.append(float("nan"))
            continue
        last, n = last * weight + (1 - weight) * x, n + 1
        out.append(last / (1 - weight**n))
    return out


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.95, 0.999])
def test_ema_is_tensorboards_smoothing(weight: float) -> None:
    rng = np.random.default_rng(1)
    values = 4 + rng.normal(size=700)
    values[[3, 200, 201]] = [np.nan, np.inf, -np.inf]
    np.testing.assert_allclose(
        ema(values, weight), tensorboard_ema(list(values), weight), rtol=1e-9
    )
    assert ema(values, weight)[0] == pytest.approx(values[0])  # debiased: starts on the data


def test_first_window_takes_at_most_ninety_percent_of_the_screen() -> None:
    from PySide6.QtCore import QRect

    from synapse_desktop.qt.layout_policy import first_geometry, fits

    small = first_geometry(QRect(0, 0, 1280, 800))
    assert (small.width(), small.height()) == (1152, 720)
    assert small.center() == QRect(0, 0, 1280, 800).center()
    large = first_geometry(QRect(0, 30, 2560, 1410))
    assert (large.width(), large.height()) == (1500, 950) and fits(large, QRect(0, 30, 2560, 1410))
    assert not fits(QRect(0, 0, 1500, 954), QRect(0, 0, 1366, 768))


@pytest.mark.parametrize("plots", [140.0, 172.0, 300.0, 700.0])
def test_the_metric_plot_stays_readable_and_the_heatmaps_share_the_rest(plots: float) -> None:
    metric, layers, grads = plot_heights(plots, grads=True)
    assert metric >= MIN_METRIC_PX or layers == grads == 20  # too small: the heatmaps' floors
    assert metric + layers + grads == pytest.approx(plots) and layers >= grads >= 20
    metric, layers, grads = plot_heights(plots, grads=False)  # no gradients: no empty strip
    assert grads == 0 and metric + layers == pytest.approx(plots)


def test_more_layers_than_pixels_merge_rows_keeping_spikes() -> None:
    values = np.full((80, 4), 1.0, np.float32)
    values[37, 2] = 9.0  # a spike in one layer
    values[79] = np.nan  # a layer not measured
    group = rows_per_pixel(80, 30.0)
    assert group == 3
    merged = group_rows(values, group)
    assert merged.shape == (27, 4) and merged[12, 2] == 9.0  # rows 36..38
    assert merged[26, 0] == 1.0  # rows 78, 79: the one measured
    assert group_rows(values, 1) is values


def test_sampled_steps_fill_their_columns() -> None:
    steps = np.arange(0, 400, 5)  # measured every 5th step
    assert sampling_gap(steps) == 5 and sampling_gap(np.array([7])) == 1
    axis = StepAxis.spanning(0, 395, 1024, least=sampling_gap(steps))
    assert axis.stride == 8  # every column holds a measured step
    assert len(np.unique(axis.columns(steps))) == axis.columns(np.array([395]))[0] + 1


def _sites(layers: int) -> list[Site]:
    kinds = (SiteKind.ATTN, SiteKind.MLP, SiteKind.RESIDUAL)
    return [
        Site(3 * layer + k, 3 * layer + k, layer, int(kind), f"l{layer}.{k}", 4096, 64, 64)
        for layer in range(layers)
        for k, kind in enumerate(kinds)
    ]


@pytest.mark.parametrize(
    ("layers", "rows"), [(32, 1), (40, 1), (48, 2), (64, 2), (80, 2), (128, 4)]
)
def test_deep_models_wrap_into_rows_and_thin_their_labels(layers: int, rows: int) -> None:
    per_row = layers_per_row(layers)
    assert -(-layers // per_row) == rows and per_row <= 40
    layout = compute_layout(_sites(layers))
    tops = sorted(set((layout.layer_z or {}).values()), reverse=True)
    assert len(tops) == rows
    lo, hi = layout.bounds
    assert (hi[0] - lo[0]) / (hi[2] - lo[2]) < 8  # a screen-like shape, not a bar
    bottoms = layout.quads()[:, :, 2].min(axis=1)
    row_top = np.array([layout.top_of(site.layer) for site in _sites(layers)])
    for upper, lower in itertools.pairwise(tops):  # rows of cards do not overlap
        assert bottoms[row_top == upper].min() > lower
    assert per_row / label_step(per_row) <= 16


def test_threshold_modes_show_their_units() -> None:
    top = THRESHOLD_MODES[ThresholdMode.TOP_FRACTION]
    assert top.shown(0.01) == pytest.approx(1.0) and top.wire(2.5) == pytest.approx(0.025)
    assert top.describe(0.01) == "top 1.00 %"
    assert THRESHOLD_MODES[ThresholdMode.SIGMA].describe(2.5) == "2.50 sigma"
    assert THRESHOLD_MODES[ThresholdMode.ABSOLUTE].describe(1.0) == "|x| > 1"
