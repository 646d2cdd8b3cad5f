"""The fused Triton kernel used for CUDA tensors, against the float64 numpy reference.

On a machine with CUDA the kernels are compiled and run on the GPU. Elsewhere they run in
Triton's interpreter on CPU tensors (the same kernel source, the same launches), so the
statistics the probe sends from a GPU are checked on every machine that has Triton.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from probe_reference import neuron_means, selected_neurons, summary

pytest.importorskip("triton")

from synapse_native.protocol import ThresholdMode
from synapse_probe.kernels.cuda_kernel import summarize_with
from synapse_probe.records import sparse_message, summary_records
from synapse_probe.slots import SlotBuffer

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
THRESHOLD = 1.0
FIELDS = ("mean", "std", "rms", "min", "max", "mean_abs", "skewness", "kurtosis")
FIELDS += ("frac_zero", "frac_above")


@pytest.fixture(scope="module")
def kernels():
    """The kernel module: compiled on CUDA, run by Triton's interpreter elsewhere."""
    patch = pytest.MonkeyPatch()
    if not ON_GPU:
        assert os.environ.get("TRITON_INTERPRET") == "1", "set by conftest.py before triton loads"
        _index_reads_one_element_arrays(patch)
    from synapse_probe.kernels import _triton_stats

    yield _triton_stats
    patch.undo()


def _index_reads_one_element_arrays(patch: pytest.MonkeyPatch) -> None:
    """Triton 3.6's interpreter turns a scalar into an int with ``int(array)``, which NumPy
    >= 2.4 refuses for 1-element arrays; read the element instead (interpreter only)."""
    from triton.runtime import interpreter

    original = interpreter._patch_lang_tensor

    def patched(tensor, scope) -> None:
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    patch.setattr(interpreter, "_patch_lang_tensor", patched)


def measure(kernels, x: torch.Tensor, top_k: int = 8, threshold: float = THRESHOLD, mode: int = 0):
    x = x.to(DEVICE)
    slots = SlotBuffer(x.device, n_sites=1, n_blocks=0, top_k=top_k)
    k = summarize_with(kernels, x, slots.activations[0], threshold, top_k, mode)
    row = slots.activations[0].cpu().numpy()
    neurons = [x.shape[-1]]
    record = summary_records(row[None, :], [0], [x.numel()], [False], threshold, mode, neurons)[0]
    return record, sparse_message(row, 0, k, threshold, mode)


def check(record, expected, rtol: float = 1e-4) -> None:
    for name in ("count", "nan_count", "inf_count"):
        assert record[name] == expected[name], name
    for name in FIELDS:
        np.testing.assert_allclose(record[name], expected[name], rtol=rtol, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(record["hist"], expected["hist"], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shape", [(4, 16, 32), (3, 5), (2, 7, 300), (5,), (9, 1000)])
def test_matches_the_reference_on_skewed_tensors_of_many_shapes(kernels, shape) -> None:
    """Tiles that straddle rows and neurons, a width beyond one tile, a 1-D tensor."""
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g).exp() - 1.2
    record, _ = measure(kernels, x)
    check(record, summary(x.numpy(), THRESHOLD))


def test_non_finite_values_are_counted_and_kept_out(kernels) -> None:
    x = torch.linspace(-3, 3, 640).reshape(20, 32)
    x[0, 1] = float("nan")
    x[5, 3] = float("inf")
    x[19, 31] = float("-inf")
    record, sparse = measure(kernels, x)
    check(record, summary(x.numpy(), THRESHOLD))
    assert (record["nan_count"], record["inf_count"]) == (1, 2)
    means = neuron_means(x.numpy())
    np.testing.assert_allclose(sparse.values, means[sparse.indices], rtol=1e-6)


def test_all_non_finite_gives_nan_statistics(kernels) -> None:
    record, _ = measure(kernels, torch.full((2, 4), float("nan")))
    assert record["nan_count"] == 8
    assert np.isnan([record[f] for f in FIELDS]).all()
    assert record["hist"].sum() == 0


def test_mean_far_from_zero_keeps_the_variance(kernels) -> None:
    """Moments are merged from per-tile central moments, never from raw power sums."""
    x = 1000.0 + torch.randn(64, 300, generator=torch.Generator().manual_seed(2)) * 0.01
    record, _ = measure(kernels, x)
    expected = summary(x.numpy(), THRESHOLD)
    np.testing.assert_allclose(record["std"], expected["std"], rtol=1e-3)
    np.testing.assert_allclose(record["skewness"], expected["skewness"], atol=0.05)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_are_read_in_their_own_dtype(kernels, dtype) -> None:
    x = (torch.randn(8, 48, generator=torch.Generator().manual_seed(1)) * 3).to(dtype)
    record, _ = measure(kernels, x)
    check(record, summary(x.float().numpy(), THRESHOLD), rtol=1e-3)


def test_top_neurons_are_the_loudest_in_index_order(kernels) -> None:
    x = torch.zeros(3, 4, 20)
    loud = {2: 5.0, 7: 3.0, 11: 9.0, 13: 1.5, 19: 2.0}
    for neuron, level in loud.items():
        x[..., neuron] = level
    _, sparse = measure(kernels, x, top_k=3)
    assert sparse.n_above == 5
    assert sparse.indices.tolist() == [2, 7, 11]
    np.testing.assert_allclose(sparse.values, [5.0, 3.0, 9.0], rtol=1e-6)


def test_non_contiguous_input(kernels) -> None:
    x = torch.randn(16, 40, generator=torch.Generator().manual_seed(3)).t()
    record, _ = measure(kernels, x)
    check(record, summary(x.contiguous().numpy(), THRESHOLD))


@pytest.mark.parametrize(
    ("mode", "threshold"), [(ThresholdMode.SIGMA, 2.0), (ThresholdMode.TOP_FRACTION, 0.05)]
)
def test_relative_modes_select_on_the_device(kernels, mode, threshold) -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.randn(3, 5, 160, generator=g) * torch.linspace(0.5, 2.0, 160) * 30.0
    record, sparse = measure(kernels, x, top_k=160, threshold=threshold, mode=mode)
    expected = selected_neurons(x.numpy(), mode, threshold)
    assert sparse.indices.tolist() == expected.tolist() and sparse.n_above == expected.size
    assert record["frac_above"] == pytest.approx(expected.size / 160)
