"""The native CPU kernel path and the torch path give the same records and sparse frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from probe_reference import selected_neurons, summary

from synapse_native.protocol import ThresholdMode
from synapse_probe.collector import StepCollector
from synapse_probe.encoder import Encoder
from synapse_probe.kernels import cpu_kernel

KERNEL = cpu_kernel.load()
pytestmark = pytest.mark.skipif(KERNEL is None, reason="synapse_native.stats is not built")

FIELDS = ("mean", "std", "rms", "min", "max", "mean_abs", "skewness", "kurtosis")
FIELDS += ("frac_zero", "frac_above")


class Collect:
    """Broadcasts kept in a list."""

    def __init__(self) -> None:
        self.messages: list = []

    def broadcast_step(self, messages, *, step: int) -> int:
        self.messages.extend(messages)
        return len(messages)

    def report_stats(self, probe_ns: int, steps_sampled: int, steps_seen: int) -> None:
        pass


def encode_one(
    x: torch.Tensor, kernel, threshold: float = 0.8, top_k: int = 5, mode: int = 0
) -> list:
    """The messages of one step measuring ``x`` as site 3 (activation and gradient)."""
    collector = StepCollector(4, None, kernel)
    assert collector.begin(step=7, threshold=threshold, top_k=top_k, mode=mode)
    collector.record(3, x, gradient=False)
    collector.record(3, x * 2, gradient=True)
    snapshot = collector.finish()
    assert snapshot is not None
    sink = Collect()
    encoder = Encoder(sink, kernel)
    encoder.submit(snapshot)
    encoder.close()
    return sink.messages


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_native_and_torch_paths_agree(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(4, 6, 24, generator=g) * torch.linspace(0.1, 3, 24)).to(dtype)
    x[0, 0, 0] = float("nan")
    native, fallback = encode_one(x, KERNEL), encode_one(x, None)
    records = native[0].records, fallback[0].records
    for a, b in zip(*records, strict=True):
        assert (a["site_id"], a["flags"], a["count"]) == (b["site_id"], b["flags"], b["count"])
        assert (a["nan_count"], a["inf_count"]) == (b["nan_count"], b["inf_count"])
        for name in FIELDS:
            np.testing.assert_allclose(a[name], b[name], rtol=2e-4, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(a["hist"], b["hist"], atol=1e-7)
    expected = summary(x.float().numpy(), 0.8)
    np.testing.assert_allclose(records[0][0]["kurtosis"], expected["kurtosis"], rtol=1e-3)
    sparse_native, sparse_torch = native[1], fallback[1]
    assert sparse_native.n_above == sparse_torch.n_above
    assert sparse_native.indices.tolist() == sparse_torch.indices.tolist()
    np.testing.assert_allclose(sparse_native.values, sparse_torch.values, rtol=1e-5)
    assert len(native) == len(fallback) == 2  # gradients have no sparse frame


@pytest.mark.parametrize(
    ("mode", "threshold"), [(ThresholdMode.SIGMA, 1.5), (ThresholdMode.TOP_FRACTION, 0.1)]
)
def test_native_and_torch_paths_select_the_same_neurons_in_relative_modes(mode, threshold) -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(4, 6, 40, generator=g) * torch.linspace(0.1, 3, 40) * 50.0
    native, fallback = (encode_one(x, k, threshold, 40, mode) for k in (KERNEL, None))
    expected = selected_neurons(x.numpy(), mode, threshold)
    for messages in (native, fallback):
        activation, gradient = messages[0].records
        assert messages[1].indices.tolist() == expected.tolist()
        assert activation["frac_above"] == pytest.approx(expected.size / 40)
        doubled = selected_neurons(2 * x.numpy(), mode, threshold)  # the gradient: x * 2
        assert gradient["frac_above"] == pytest.approx(doubled.size / 40)
    assert native[1].threshold == pytest.approx(fallback[1].threshold, rel=1e-5)


def test_non_contiguous_and_double_tensors_are_measured() -> None:
    x = torch.randn(6, 8, dtype=torch.float64).t()  # non-contiguous float64
    messages = encode_one(x, KERNEL)
    record = messages[0].records[0]
    assert record["count"] == 48
    np.testing.assert_allclose(record["mean"], x.mean().item(), rtol=1e-5, atol=1e-7)
