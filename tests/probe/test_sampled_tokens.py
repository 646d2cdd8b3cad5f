"""``sample_fraction``: statistics of every n-th token, NaN and inf still counted on every element,
the record marked SAMPLED; on the native CPU path and on the device path alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from probe_models import batch, llama_like, lm_loss
from probe_reference import summary

import synapse_probe
from synapse_native.protocol import LayerSummaryBatch, SummaryFlag
from synapse_probe.collector import StepCollector, sampled
from synapse_probe.encoder import Encoder
from synapse_probe.kernels import cpu_kernel

FIELDS = ("mean", "std", "min", "max", "mean_abs", "skewness", "kurtosis", "frac_zero")
KERNELS = [None, *([cpu_kernel.load()] if cpu_kernel.load() is not None else [])]


class Collect:
    def __init__(self) -> None:
        self.messages: list = []

    def broadcast_step(self, messages, *, step: int) -> int:
        self.messages.extend(messages)
        return len(messages)

    def report_stats(self, probe_ns: int, steps_sampled: int, steps_seen: int) -> None:
        pass


def records_of(x: torch.Tensor, kernel, fraction: float) -> np.ndarray:
    collector = StepCollector(1, None, kernel)
    collector.sample_fraction = fraction
    assert collector.begin(step=0, threshold=1.0, top_k=4)
    collector.record(0, x, gradient=False)
    snapshot = collector.finish()
    assert snapshot is not None
    sink = Collect()
    encoder = Encoder(sink, kernel)
    encoder.submit(snapshot)
    encoder.close()
    (batch_message,) = [m for m in sink.messages if isinstance(m, LayerSummaryBatch)]
    return batch_message.records


@pytest.mark.parametrize("kernel", KERNELS, ids=["torch", "native"][: len(KERNELS)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_statistics_of_the_sample_counts_of_the_whole(kernel, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(5)
    x = (torch.randn(4, 32, 48, generator=g) * 3).exp().to(dtype)  # skewed: moments differ
    x[1, 3, 7] = float("nan")  # token 35: not in the sample (every 4th token)
    x[2, 9, 0] = float("inf")  # token 73: not in the sample
    x[3, 8, 5] = float("-inf")  # token 104: in it
    (record,) = records_of(x, kernel, 0.25)
    sample = x.reshape(-1, 48)[::4].float().numpy()
    expected = summary(sample, 1.0)
    assert record["flags"] & SummaryFlag.SAMPLED
    assert (record["count"], record["nan_count"], record["inf_count"]) == (x.numel(), 1, 2)
    for name in FIELDS:
        np.testing.assert_allclose(record[name], expected[name], rtol=2e-4, err_msg=name)
    np.testing.assert_allclose(record["hist"], expected["hist"], atol=1e-6)
    (whole,) = records_of(x, kernel, 1.0)
    assert not whole["flags"] & SummaryFlag.SAMPLED and whole["mean"] != record["mean"]


def test_small_or_flat_tensors_are_not_sampled() -> None:
    x = torch.ones(3, 8)
    assert sampled(x, 0.25) is x  # 3 tokens: fewer than two strides
    assert sampled(torch.ones(40), 0.25).shape == (40,)  # no token axis
    assert sampled(torch.ones(2, 8, 8), 0.25).shape == (4, 8)
    assert sampled(torch.ones(2, 8, 8), 0.6).shape == (8, 8)  # round(1 / 0.6) = 2


def test_attach_marks_sampled_records_and_refuses_a_bad_fraction(server) -> None:
    model = llama_like(n_layers=1)
    with synapse_probe.attach(model, server=server, sample_fraction=0.5, budget=None) as probe:
        lm_loss(model, *batch()).backward()
        assert probe.flush()
    (_, records), *_ = server.summaries()
    assert (records["flags"] & SummaryFlag.SAMPLED).all()
    assert (records["count"] == 2 * 8 * 16).all()  # every element counted
    with pytest.raises(ValueError, match="sample_fraction"):
        synapse_probe.attach(model, server=server, sample_fraction=0.0)
