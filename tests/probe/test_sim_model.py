"""The synthetic model behind ``synapse sim``: shapes, realism, evolution, and its statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synapse_native.protocol import HIST_BINS, SUMMARY_DTYPE
from synapse_serve.sim.model import (
    HIDDEN,
    INTERMEDIATE,
    MASSIVE_CHANNELS,
    SimModel,
)
from synapse_serve.sim.stats import histogram_bins, summarize


@pytest.fixture(scope="module")
def model() -> SimModel:
    return SimModel(32, "attn+mlp+residual", seed=3)


def test_llama_8b_shapes(model: SimModel) -> None:
    assert len(model.sites) == 96
    widths = {site.kind: site.neurons for site in model.sites}
    assert widths == {"attn": HIDDEN, "mlp": INTERMEDIATE, "residual": HIDDEN}
    assert [s.index for s in model.sites] == list(range(96))
    assert len(SimModel(4, "residual").sites) == 4
    with pytest.raises(ValueError):
        SimModel(4, "mlp-only")


def test_residual_norm_grows_with_depth(model: SimModel) -> None:
    residual = [s for s in model.sites if s.kind == "residual"]
    norms = [float(np.linalg.norm(model.magnitudes(s, 0))) for s in residual]
    assert norms[-1] > 5 * norms[0]
    assert np.corrcoef(np.arange(len(norms)), norms)[0, 1] > 0.9


def test_massive_channels_stand_out(model: SimModel) -> None:
    site = next(s for s in model.sites if s.kind == "residual" and s.layer == 10)
    profile = model.profile(site)
    assert profile[MASSIVE_CHANNELS].min() > 10 * np.median(profile)
    sample = model.samples([site], 0, 2048)[0]
    assert model.massive_peak(site, 0) > 10 * np.abs(sample).max()
    assert model.massive_peak(model.sites[0], 0) == 0.0  # attention has none
    last = next(s for s in model.sites if s.kind == "residual" and s.layer == 31)
    assert model.massive_peak(last, 0) == 0.0  # gone by the last block


def test_mlp_is_heavy_tailed(model: SimModel) -> None:
    site = next(s for s in model.sites if s.kind == "mlp")
    records = summarize(model.samples([site], 0, 4096), np.array([site.index]), 0.5)
    assert records["kurtosis"][0] > 3.0  # excess kurtosis of a Gaussian is 0


def test_statistics_evolve_and_sparse_patterns_drift() -> None:
    model = SimModel(4, seed=1)
    site = model.sites[1]  # an MLP site
    first = model.above(site, 0, 0.1, 65536)[0]
    means = []
    for step in range(200):
        model.advance(step)
        means.append(float(model.magnitudes(site, step).mean()))
    last = model.above(site, 199, 0.1, 65536)[0]
    assert means[-1] > means[0] * 1.1  # the training trend
    overlap = len(np.intersect1d(first, last)) / max(len(first), len(last))
    assert 0.2 < overlap < 0.95  # drifted, slowly


def test_spikes_happen_rarely() -> None:
    model = SimModel(2, "residual", seed=5)
    spikes = 0
    for step in range(3000):
        model.advance(step)
        scales = [model.scale(s, step) for s in model.sites]
        spikes += max(scales) > 4 * min(scales)
    assert 3 <= spikes <= 60


def test_above_is_capped_ascending_and_counts_all(model: SimModel) -> None:
    site = model.sites[2]
    indices, values, n_above = model.above(site, 0, 0.05, 100)
    assert n_above > 100 and len(indices) == 100 == len(values)
    assert (np.diff(indices.astype(np.int64)) > 0).all()
    magnitudes = model.magnitudes(site, 0)
    assert values.min() >= np.sort(magnitudes)[-100]  # the largest were kept
    np.testing.assert_array_equal(values, magnitudes[indices])


def _reference_bin(x: float) -> int:
    if x == 0:
        return 32
    exponent = math.frexp(abs(x))[1] - 1  # |x| = m * 2**exponent, 1 <= m < 2
    j = min(max(exponent + 16, 0), 31)
    return 32 + j if x > 0 else 31 - j


def test_histogram_bins_follow_the_protocol_rule() -> None:
    values = np.array(
        [0.0, -0.0, 1.0, -1.0, 1.5, 2.0, 3e-5, 2**-15, 2**-16, 1e30, -1e30, 65535.0, 65536.0],
        dtype=np.float32,
    )
    expected = [_reference_bin(float(v)) for v in values]
    assert histogram_bins(values).tolist() == expected


def test_summarize_matches_direct_statistics() -> None:
    rng = np.random.default_rng(0)
    samples = rng.standard_t(4, (3, 1000)).astype(np.float32)
    samples[0, :10] = 0.0
    records = summarize(samples, np.array([7, 8, 9]), 0.5, np.array([10, 20, 30]))
    assert records.dtype == SUMMARY_DTYPE
    assert records["site_id"].tolist() == [7, 8, 9]
    assert records["count"].tolist() == [10, 20, 30]
    x = samples[1].astype(np.float64)
    r = records[1]
    assert r["mean"] == pytest.approx(x.mean(), rel=1e-5)
    assert r["std"] == pytest.approx(x.std(), rel=1e-5)
    assert r["rms"] == pytest.approx(np.sqrt((x**2).mean()), rel=1e-5)
    assert r["mean_abs"] == pytest.approx(np.abs(x).mean(), rel=1e-5)
    assert r["min"] == x.min() and r["max"] == x.max()
    z = (x - x.mean()) / x.std()
    assert r["skewness"] == pytest.approx((z**3).mean(), rel=1e-4)
    assert r["kurtosis"] == pytest.approx((z**4).mean() - 3, rel=1e-4)
    assert r["frac_above"] == pytest.approx((np.abs(x) > 0.5).mean())
    assert records[0]["frac_zero"] == pytest.approx(0.01)
    assert records["hist"].shape == (3, HIST_BINS)
    np.testing.assert_allclose(records["hist"].sum(axis=1), 1.0, rtol=1e-5)
    counts = np.bincount([_reference_bin(float(v)) for v in samples[2]], minlength=64)
    np.testing.assert_allclose(records[2]["hist"], counts / 1000, rtol=1e-6)
