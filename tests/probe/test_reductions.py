"""On-device reductions (the torch path used on CUDA) against a float64 numpy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from probe_reference import bin_of, neuron_means, selected_neurons, summary

from synapse_native.protocol import ThresholdMode
from synapse_probe.kernels.reductions import histogram_bins, summarize_into
from synapse_probe.records import sparse_message, summary_records
from synapse_probe.slots import SlotBuffer

THRESHOLD = 1.0
# The torch path runs on CUDA in training; where a GPU is present, every test runs there too.
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


def measure(
    x: torch.Tensor, device: str, top_k: int = 8, threshold: float = THRESHOLD, mode: int = 0
):
    x = x.to(device)
    slots = SlotBuffer(x.device, n_sites=1, n_blocks=0, top_k=top_k)
    k = summarize_into(x, slots.activations[0], threshold, top_k, mode)
    row = slots.activations[0].cpu().numpy()
    neurons = [x.shape[-1]]
    record = summary_records(row[None, :], [0], [x.numel()], [False], threshold, mode, neurons)[0]
    return record, sparse_message(row, 0, k, threshold, mode)


FIELDS = ("mean", "std", "rms", "min", "max", "mean_abs", "skewness", "kurtosis")
FIELDS += ("frac_zero", "frac_above")


def check(record, expected, rtol: float = 1e-4) -> None:
    for name in ("count", "nan_count", "inf_count"):
        assert record[name] == expected[name], name
    for name in FIELDS:
        np.testing.assert_allclose(record[name], expected[name], rtol=rtol, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(record["hist"], expected["hist"], rtol=1e-6, atol=1e-7)


def test_matches_the_reference_on_a_skewed_tensor(device) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 16, 32, generator=g).exp() - 1.2  # skewed, crosses zero
    x[0, 0, :4] = 0.0
    record, _ = measure(x, device)
    check(record, summary(x.numpy(), THRESHOLD))
    assert record["threshold"] == THRESHOLD and record["flags"] == 0


def test_non_finite_values_are_counted_and_kept_out_of_the_statistics(device) -> None:
    x = torch.linspace(-3, 3, 64).reshape(2, 32)
    x[0, 1] = float("nan")
    x[1, 3] = float("inf")
    x[1, 4] = float("-inf")
    record, _ = measure(x, device)
    check(record, summary(x.numpy(), THRESHOLD))
    assert (record["nan_count"], record["inf_count"]) == (1, 2)
    assert record["hist"].sum() == pytest.approx(1.0)


def test_all_non_finite_gives_nan_statistics_and_an_empty_histogram(device) -> None:
    record, _ = measure(torch.full((2, 4), float("nan")), device)
    assert record["nan_count"] == 8
    assert np.isnan([record[f] for f in FIELDS]).all()
    assert record["hist"].sum() == 0


def test_constant_tensor_has_zero_skewness_and_kurtosis(device) -> None:
    record, _ = measure(torch.full((3, 5), 2.0), device)
    assert (record["std"], record["skewness"], record["kurtosis"]) == (0.0, 0.0, 0.0)
    assert record["mean"] == record["min"] == record["max"] == record["rms"] == 2.0


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs(dtype: torch.dtype, device) -> None:
    x = (torch.randn(8, 16, generator=torch.Generator().manual_seed(1)) * 3).to(dtype)
    record, _ = measure(x, device)
    check(record, summary(x.float().numpy(), THRESHOLD), rtol=1e-3)


def test_mean_far_from_zero_keeps_the_variance(device) -> None:
    x = 1000.0 + torch.randn(64, 32, generator=torch.Generator().manual_seed(2)) * 0.01
    record, _ = measure(x, device)
    expected = summary(x.numpy(), THRESHOLD)
    np.testing.assert_allclose(record["std"], expected["std"], rtol=1e-3)


def test_sparse_view_is_neurons_above_threshold_capped_at_top_k_in_index_order(device) -> None:
    x = torch.zeros(3, 4, 20)
    loud = {2: 5.0, 7: 3.0, 11: 9.0, 13: 1.5, 19: 2.0}
    for neuron, level in loud.items():
        x[..., neuron] = level
    x[0, 0, 7] = float("nan")  # a NaN counts as 0 in the neuron's mean
    _, sparse = measure(x, device, top_k=3, threshold=1.0)
    expected = neuron_means(x.numpy())
    assert sparse.n_above == 5
    assert sparse.indices.tolist() == [2, 7, 11]  # the three largest, ascending
    np.testing.assert_allclose(sparse.values, expected[[2, 7, 11]], rtol=1e-6)
    _, everything = measure(x, device, top_k=32, threshold=1.0)
    assert everything.indices.tolist() == sorted(loud)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False, width=32, allow_subnormal=True),
        min_size=1,
        max_size=40,
    )
)
def test_histogram_bins_follow_the_protocol_rule(values: list[float]) -> None:
    x = torch.tensor(values, dtype=torch.float32)
    bins = histogram_bins(x, torch.isfinite(x))
    assert bins.tolist() == [bin_of(v) for v in x.tolist()]


def test_histogram_edges() -> None:
    edges = [0.0, -0.0, 2.0**-15, -(2.0**-15), 2.0**-16, 1.0, -1.0, 1.5, 2.0**15, 3e38, 1e-45]
    x = torch.tensor([*edges, float("nan"), float("inf")])
    bins = histogram_bins(x, torch.isfinite(x)).tolist()
    assert bins[:-2] == [bin_of(v) for v in edges]
    assert bins[:3] == [32, 32, 33] and bins[-2:] == [64, 64]


@pytest.mark.parametrize(
    ("mode", "threshold"), [(ThresholdMode.SIGMA, 2.0), (ThresholdMode.TOP_FRACTION, 0.05)]
)
def test_relative_modes_light_each_site_by_its_own_scale(device, mode, threshold) -> None:
    g = torch.Generator().manual_seed(5)
    for scale in (0.01, 100.0):  # the same shape at any scale lights the same neurons
        x = torch.randn(4, 8, 200, generator=g) * torch.linspace(0.5, 2.0, 200) * scale
        record, sparse = measure(x, device, top_k=200, threshold=threshold, mode=mode)
        expected = selected_neurons(x.numpy(), mode, threshold)
        assert sparse.indices.tolist() == expected.tolist()
        assert sparse.n_above == expected.size > 0
        assert record["frac_above"] == pytest.approx(expected.size / 200)
        assert record["threshold"] == np.float32(threshold)  # the setting; the cut is sparse's
        assert (sparse.values > sparse.threshold).all()
        assert sparse.threshold > neuron_means(x.numpy()).mean()
