"""The fused statistics kernel against a float64 numpy reference, and the histogram reader."""

from __future__ import annotations

import os
import select
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from synapse_native import histogram, stats
from synapse_native._activation_wire import SUMMARY_DTYPE
from synapse_native.stats import InputDtype, SiteStats

pytestmark = pytest.mark.timeout(120)

IMPLS = ["generic"] + (["avx2"] if stats.set_impl("auto") == "avx2" else [])
FLOAT_FIELDS = ("mean", "std", "rms", "min", "max", "mean_abs", "skewness", "kurtosis")


@pytest.fixture(params=IMPLS)
def impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a test once per kernel build the CPU can run."""
    assert stats.set_impl(request.param) == request.param
    yield request.param
    stats.set_impl("auto")


def reference(values: npt.ArrayLike, threshold: float) -> dict[str, Any]:
    """Every summary field of ``values`` computed in float64 the textbook way."""
    v = np.asarray(values, dtype=np.float64).ravel()
    f = v[np.isfinite(v)]
    out: dict[str, Any] = {
        "count": v.size,
        "nan_count": int(np.isnan(v).sum()),
        "inf_count": int(np.isinf(v).sum()),
        "threshold": np.float32(threshold),
    }
    if f.size == 0:
        out.update(dict.fromkeys((*FLOAT_FIELDS, "frac_zero", "frac_above"), np.nan))
        out["hist"] = np.zeros(histogram.HIST_BINS)
        return out
    mean = f.mean()
    c = f - mean
    m2 = (c**2).mean()
    out.update(
        mean=mean,
        std=np.sqrt(m2),
        rms=np.sqrt((f**2).mean()),
        min=f.min(),
        max=f.max(),
        mean_abs=np.abs(f).mean(),
        skewness=(c**3).mean() / m2**1.5 if m2 > 0 else 0.0,
        kurtosis=(c**4).mean() / m2**2 - 3 if m2 > 0 else 0.0,
        frac_zero=(f == 0).mean(),
        frac_above=(np.abs(f) > threshold).mean(),
        hist=histogram.histogram(f) / f.size,
    )
    return out


def summarize(
    x: npt.NDArray[Any], threshold: float = 1.0, dtype: InputDtype | None = None, threads: int = 2
) -> tuple[np.void, SiteStats]:
    s = SiteStats(x.shape[1], threads=threads)
    s.compute(x, threshold, dtype=dtype)
    return s.finish(7, 3).copy().view(SUMMARY_DTYPE)[0], s


def assert_matches(rec: np.void, ref: dict[str, Any]) -> None:
    assert rec["site_id"] == 7 and rec["flags"] == 3
    for name in ("count", "nan_count", "inf_count"):
        assert rec[name] == ref[name], name
    assert rec["threshold"] == ref["threshold"]
    if np.isnan(ref["mean"]):
        for name in (*FLOAT_FIELDS, "frac_zero", "frac_above"):
            assert np.isnan(rec[name]), name
        assert not rec["hist"].any()
        return
    scale = abs(ref["mean"]) + ref["std"]
    assert abs(rec["mean"] - ref["mean"]) <= 1e-6 * scale + 1e-30
    for name in ("std", "rms", "mean_abs"):
        assert rec[name] == pytest.approx(ref[name], rel=1e-5, abs=1e-37), name
    assert rec["min"] == np.float32(ref["min"]) and rec["max"] == np.float32(ref["max"])
    assert rec["skewness"] == pytest.approx(ref["skewness"], rel=1e-5, abs=1e-4)
    assert rec["kurtosis"] == pytest.approx(ref["kurtosis"], rel=1e-5, abs=1e-3)
    assert rec["frac_zero"] == pytest.approx(ref["frac_zero"], rel=1e-6)
    assert rec["frac_above"] == pytest.approx(ref["frac_above"], rel=1e-6)
    np.testing.assert_allclose(rec["hist"], ref["hist"], rtol=1e-6)


def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# ---- summaries against the reference ----


@pytest.mark.parametrize("shape", [(64, 1024), (37, 200), (1, 13), (9, 2050), (130, 8)])
@pytest.mark.parametrize("threads", [1, 2])
def test_normal_data_matches_reference(impl: str, shape: tuple[int, int], threads: int) -> None:
    x = rng().standard_normal(shape).astype(np.float32)
    rec, s = summarize(x, 0.7, threads=threads)
    assert_matches(rec, reference(x, 0.7))
    assert s.raw().finite_count == x.size


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda g, s: g.standard_t(3, s), id="student-t3"),
        pytest.param(lambda g, s: g.standard_cauchy(s), id="cauchy"),
        pytest.param(lambda g, s: g.exponential(1.0, s) ** 3, id="skewed"),
        pytest.param(lambda g, s: 10.0 + g.standard_normal(s), id="mean-10x-std"),
        pytest.param(lambda g, s: -1e4 + 1e3 * g.standard_normal(s), id="mean-minus-10x-std"),
        pytest.param(lambda g, s: 300.0 + g.exponential(30.0, s), id="mean-10x-std-skewed"),
        pytest.param(lambda g, s: np.maximum(g.standard_normal(s), 0), id="relu"),
    ],
)
def test_hard_distributions_match_reference(impl: str, make: Any) -> None:
    x = make(rng(), (96, 700)).astype(np.float32)
    rec, _ = summarize(x, 1.5)
    assert_matches(rec, reference(x, 1.5))


def test_mean_far_above_std_keeps_skewness_and_kurtosis() -> None:
    # Raw power sums would cancel ~10^4-fold here; the pivot keeps the shape statistics exact.
    x = (10.0 + rng().exponential(1.0, (256, 1024))).astype(np.float32)
    rec, _ = summarize(x)
    ref = reference(x, 1.0)
    assert rec["skewness"] == pytest.approx(ref["skewness"], rel=1e-5)
    assert rec["kurtosis"] == pytest.approx(ref["kurtosis"], rel=1e-5)


def test_massive_activations_in_the_first_row_do_not_spoil_the_moments() -> None:
    # Transformers put huge values in a few channels of the first token, the first row here.
    x = rng().standard_normal((512, 1024)).astype(np.float32)
    x[0, :300] = 3e3
    rec, _ = summarize(x)
    assert_matches(rec, reference(x, 1.0))


def test_nan_and_inf_are_counted_and_left_out(impl: str) -> None:
    x = rng().standard_normal((50, 333)).astype(np.float32)
    flat = x.ravel()
    flat[rng().choice(flat.size, 400, replace=False)] = np.nan
    flat[::97] = np.inf
    flat[5::101] = -np.inf
    flat[7] = -np.nan
    rec, s = summarize(x, 0.5)
    assert_matches(rec, reference(x, 0.5))
    raw = s.raw()
    assert raw.finite_count + raw.nan_count + raw.inf_count == x.size
    assert sum(raw.hist) == raw.finite_count


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nothing_finite_gives_nan_fields(value: float) -> None:
    x = np.full((3, 17), value, np.float32)
    rec, _ = summarize(x)
    assert_matches(rec, reference(x, 1.0))


def test_all_zero(impl: str) -> None:
    x = np.zeros((40, 300), np.float32)
    x[::3] = -0.0
    rec, s = summarize(x, 0.0)
    assert_matches(rec, reference(x, 0.0))
    assert rec["frac_zero"] == 1 and rec["frac_above"] == 0 and rec["hist"][32] == 1
    assert rec["skewness"] == 0 and rec["kurtosis"] == 0
    assert not s.neuron_abs.any()


def test_single_element() -> None:
    rec, s = summarize(np.array([[-2.5]], np.float32), 2.0)
    assert (rec["mean"], rec["std"], rec["rms"], rec["min"], rec["max"]) == (
        -2.5,
        0,
        2.5,
        -2.5,
        -2.5,
    )
    assert rec["frac_above"] == 1 and rec["hist"][31 - 17] == 1
    assert s.neuron_abs[0] == 2.5


def test_empty_input() -> None:
    s = SiteStats(5)
    s.neuron_abs[:] = 1
    s.compute(np.zeros((0, 5), np.float32), 1.0)
    rec = s.finish(1).view(SUMMARY_DTYPE)[0]
    assert rec["count"] == 0 and np.isnan(rec["mean"]) and not rec["hist"].any()
    assert not s.neuron_abs.any()


def test_huge_and_tiny_values(impl: str) -> None:
    big = np.float32(3e38)
    x = np.array([[big, big, -big, 1.0], [1e-45, -1e-40, 1e-38, 2.0**-15]], np.float32)
    rec, s = summarize(x)
    assert_matches(rec, reference(x, 1.0))
    assert np.isfinite(rec["std"]) and np.isfinite(rec["kurtosis"])
    np.testing.assert_array_equal(s.neuron_abs, np.abs(x.astype(np.float64)).sum(0))


def test_overflowing_squares_in_a_large_tensor(impl: str) -> None:
    x = rng().standard_normal((64, 512)).astype(np.float32)
    x[3, 100] = 1e30
    x[40, 7] = -1e25
    rec, s = summarize(x)
    assert_matches(rec, reference(x, 1.0))
    np.testing.assert_allclose(s.neuron_abs, np.abs(x.astype(np.float64)).sum(0), rtol=2e-6)


# ---- 16-bit inputs ----


def test_bfloat16_bits_match_the_upcast_values(impl: str) -> None:
    values = rng().standard_normal((33, 515)).astype(np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    bits.ravel()[::50] = 0x7FC0  # NaN
    bits.ravel()[3::77] = 0xFF80  # -Inf
    bits.ravel()[4::91] = 0x8000  # -0
    bits.ravel()[6::93] = 0x0001  # subnormal
    upcast = (bits.astype(np.uint32) << 16).view(np.float32)
    rec, s = summarize(bits, 0.3, InputDtype.BF16)
    assert_matches(rec, reference(upcast, 0.3))
    ref_neurons = np.nansum(np.where(np.isfinite(upcast), np.abs(upcast), 0), axis=0)
    np.testing.assert_allclose(s.neuron_abs, ref_neurons, rtol=2e-6)


@pytest.mark.parametrize("as_bits", [False, True])
def test_float16_matches_the_upcast_values(impl: str, as_bits: bool) -> None:
    values = (rng().standard_normal((40, 301)) * 100).astype(np.float16)
    values.ravel()[::61] = np.inf
    values.ravel()[1::67] = np.nan
    values.ravel()[2::71] = np.float16(2.0**-24)  # smallest subnormal
    values.ravel()[3::73] = np.float16(-(2.0**-15))  # a subnormal on a bin edge
    x = values.view(np.uint16) if as_bits else values
    rec, _ = summarize(x, 50.0, InputDtype.F16)
    assert_matches(rec, reference(values.astype(np.float32), 50.0))


def test_every_float16_and_bfloat16_value_is_binned_exactly(impl: str) -> None:
    bits = np.arange(1 << 16, dtype=np.uint16).reshape(256, 256)
    f16 = bits.view(np.float16)
    _, s = summarize(bits, dtype=InputDtype.F16)
    np.testing.assert_array_equal(s.raw().hist, histogram.histogram(f16))
    bf16 = (bits.astype(np.uint32) << 16).view(np.float32)
    _, s = summarize(bits, dtype=InputDtype.BF16)
    np.testing.assert_array_equal(s.raw().hist, histogram.histogram(bf16))


# ---- histogram ----


def edge_values() -> npt.NDArray[np.float32]:
    """Every bin edge, its float32 neighbours, zeros, subnormals and the extremes."""
    edges = np.ldexp(np.float32(1), np.arange(-15, 16)).astype(np.float32)
    up = np.nextafter(edges, np.float32(np.inf))
    down = np.nextafter(edges, np.float32(0))
    special = np.array([0.0, 1e-45, 1e-40, 1.1754942e-38, 3.4028235e38, 2.0**20], np.float32)
    mags = np.concatenate([edges, up, down, special])
    return np.concatenate([mags, -mags, [np.float32(-0.0)]]).astype(np.float32)


def test_histogram_counts_edges_exactly(impl: str) -> None:
    v = edge_values()
    x = np.resize(v, (7, v.size))  # several rows, with an odd width
    _, s = summarize(x)
    np.testing.assert_array_equal(s.raw().hist, histogram.histogram(x))


def test_bin_index_reference_by_hand() -> None:
    x = [0.0, -0.0, 2.0**-15, -(2.0**-15), 2.0**-16, 0.75, 1.0, -1.0, 2.0**15, 1e30, -1e30]
    assert histogram.bin_index(x).tolist() == [32, 32, 33, 30, 32, 47, 48, 15, 63, 63, 0]
    assert histogram.bin_index([np.nan, np.inf, -np.inf]).tolist() == [-1, -1, -1]
    edges = histogram.bin_edges()
    assert edges.size == 65 and edges[32] == 0 and edges[33] == 2.0**-15 and edges[63] == 2.0**15
    assert np.all(np.diff(edges) > 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
        elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
    ),
    threshold=st.floats(-1.0, 1e6, width=32),
)
def test_any_float32_input_counts_exactly(data: npt.NDArray[np.float32], threshold: float) -> None:
    _, s = summarize(data, threshold, threads=1)
    raw, ref = s.raw(), reference(data, threshold)
    np.testing.assert_array_equal(raw.hist, histogram.histogram(data))
    finite = data[np.isfinite(data)]
    assert (raw.nan_count, raw.inf_count) == (ref["nan_count"], ref["inf_count"])
    assert raw.zero_count == np.count_nonzero(finite == 0)
    assert raw.above_count == np.count_nonzero(np.abs(finite) > np.float32(threshold))
    if finite.size:
        assert (raw.min, raw.max) == (finite.min(), finite.max())
        with np.errstate(over="ignore"):  # sums beyond float32 become Inf on both sides
            expect = np.abs(np.where(np.isfinite(data), data, 0).astype(np.float64)).sum(0)
            expect32 = expect.astype(np.float32)
        np.testing.assert_allclose(s.neuron_abs, expect32, rtol=2e-6)


# ---- per-neuron sums and selection ----


def test_neuron_sums_and_means(impl: str) -> None:
    x = (rng().standard_normal((300, 77)) * np.arange(1, 78)).astype(np.float32)
    x[5, 3] = np.nan  # non-finite elements count as 0
    s = SiteStats(77)
    s.compute(x, 1.0)
    expect = np.nansum(np.abs(x.astype(np.float64)), axis=0)
    np.testing.assert_allclose(s.neuron_abs, expect, rtol=2e-6)
    out = np.zeros(77, np.float32)
    s.compute(x, 1.0, neuron_mean=True, neuron_out=out)
    np.testing.assert_allclose(out, expect / 300, rtol=2e-6)


def test_select_caps_to_the_largest_in_index_order() -> None:
    s = SiteStats(10, top_k=4)
    s.neuron_abs[:] = [0.1, 5.0, 3.0, 3.0, 9.0, 0.2, 3.0, np.nan, 4.0, 1.0]
    assert s.select(2.0) == (4, 6)  # above 2: 1, 2, 3, 4, 6, 8; ties at 3.0 keep the lowest
    assert s.top_idx.tolist() == [1, 2, 4, 8]
    assert s.top_val.tolist() == [5.0, 3.0, 9.0, 4.0]
    assert s.select(2.0, k=2) == (2, 6)
    assert s.top_idx[:2].tolist() == [1, 4]
    assert s.select(0.5, k=0) == (0, 7)
    assert s.select(100.0) == (0, 0)
    assert s.select(float("nan")) == (0, 0)


def test_select_without_cap_and_with_all_ties() -> None:
    values = np.array([2.0, 2.0, 2.0, 1.0, 2.0], np.float32)
    idx, val = np.zeros(5, np.uint32), np.zeros(5, np.float32)
    assert stats.select_top(values, 1.5, 5, idx, val) == (4, 4)
    assert idx[:4].tolist() == [0, 1, 2, 4]
    assert stats.select_top(values, 1.5, 3, idx, val) == (3, 4)
    assert idx[:3].tolist() == [0, 1, 2] and val[:3].tolist() == [2.0, 2.0, 2.0]


def test_select_matches_sorting_on_random_values() -> None:
    g = rng()
    values = g.exponential(1.0, 5000).astype(np.float32)
    s = SiteStats(5000, top_k=100)
    s.neuron_abs[:] = values
    written, above = s.select(1.0)
    assert above == np.count_nonzero(values > 1.0) and written == 100
    expect = np.sort(np.argsort(-values, kind="stable")[:100])
    assert s.top_idx.tolist() == expect.tolist()
    assert s.top_val.tolist() == values[expect].tolist()


# ---- wrapper behaviour ----


def test_record_goes_into_a_caller_buffer_and_pointer_input_works() -> None:
    x = rng().standard_normal((20, 64)).astype(np.float32)
    s = SiteStats(64)
    s.compute_ptr(x.ctypes.data, 20, InputDtype.F32, 1.0)
    records = np.zeros(3, SUMMARY_DTYPE)
    s.finish(11, out=records[1:2])
    assert records[1]["site_id"] == 11 and records[0]["site_id"] == 0
    assert_matches_site = reference(x, 1.0)
    assert records[1]["max"] == np.float32(assert_matches_site["max"])
    assert records[1]["count"] == 1280


def test_bad_inputs_are_rejected_clearly() -> None:
    s = SiteStats(8)
    x = np.zeros((4, 16), np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        s.compute(x[:, ::2], 1.0)
    with pytest.raises(ValueError, match="shape"):
        s.compute(x, 1.0)
    with pytest.raises(ValueError, match="shape"):
        s.compute(np.zeros(8, np.float32), 1.0)
    with pytest.raises(ValueError, match="BF16 or F16"):
        s.compute(np.zeros((2, 8), np.uint16), 1.0)
    with pytest.raises(ValueError, match="cannot be tagged"):
        s.compute(np.zeros((2, 8), np.float32), 1.0, dtype=InputDtype.BF16)
    with pytest.raises(TypeError, match="float32"):
        s.compute(np.zeros((2, 8), np.float64), 1.0)
    with pytest.raises(ValueError, match="byte order"):
        s.compute(np.zeros((2, 8), ">f4"), 1.0)
    with pytest.raises(ValueError, match="bytes"):
        s.finish(1, out=bytearray(100))
    with pytest.raises(ValueError, match="cols"):
        SiteStats(0)
    with pytest.raises(ValueError, match="implementation"):
        stats.set_impl("avx512")


def test_record_layout_is_the_wire_layout() -> None:
    assert SUMMARY_DTYPE.itemsize == stats.RECORD_BYTES == 336
    assert SUMMARY_DTYPE.fields is not None
    assert SUMMARY_DTYPE.fields["hist"][1] == 80 and SUMMARY_DTYPE.fields["count"][1] == 8


def test_concurrent_callers_each_get_their_own_result() -> None:
    # A caller that finds the pool busy runs its shares itself: same shares, same bits.
    inputs = [rng().standard_normal((2048, 256)).astype(np.float32) + i for i in range(4)]
    expect = [bytes(summarize(x)[1].finish(i)) for i, x in enumerate(inputs)]
    results: dict[int, list[bytes]] = {i: [] for i in range(4)}

    def work(i: int) -> None:
        s = SiteStats(256)
        for _ in range(10):
            s.compute(inputs[i], 1.0)
            results[i].append(bytes(s.finish(i)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert results[i] == [expect[i]] * 10


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_gets_a_working_pool() -> None:
    x = rng().standard_normal((4096, 256)).astype(np.float32)
    s = SiteStats(256, threads=2)
    s.compute(x, 1.0)  # the parent's pool is running now
    expect = bytes(s.finish(1))
    r, w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads running
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            s.compute(x, 1.0)
            os.write(w, b"1" if bytes(s.finish(1)) == expect else b"0")
        finally:
            os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], 30)
    got = os.read(r, 1) if ready else b"hang"
    os.close(r)
    if not ready:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    assert got == b"1"


# ---- percentiles from the histogram ----


def test_percentiles_of_symmetric_data_center_on_zero() -> None:
    x = rng().standard_normal(200_000)
    hist = histogram.histogram(x)
    p5, p50, p95 = histogram.percentiles(hist, [0.05, 0.5, 0.95], lo=x.min(), hi=x.max())
    assert abs(p50) < 0.05
    true5, true95 = np.quantile(x, [0.05, 0.95])
    # within the octave bin that holds it, and roughly symmetric
    assert p5 == pytest.approx(true5, rel=0.25) and p95 == pytest.approx(true95, rel=0.25)
    assert p5 == pytest.approx(-p95, rel=0.05)


def test_percentiles_of_magnitudes_are_ordered_and_close() -> None:
    x = np.abs(rng().standard_normal(100_000))
    qs = [0.05, 0.25, 0.5, 0.75, 0.95]
    got = histogram.percentiles(histogram.histogram(x) / x.size, qs)
    assert np.all(np.diff(got) > 0)
    np.testing.assert_allclose(got, np.quantile(x, qs), rtol=0.2)


def test_percentiles_edge_cases() -> None:
    assert np.isnan(histogram.percentiles(np.zeros(64), [0.5])).all()
    one_bin = np.zeros(64)
    one_bin[48] = 10  # everything in [1, 2)
    lo, mid, hi = histogram.percentiles(one_bin, [0.0, 0.5, 1.0])
    assert (lo, hi) == (1.0, 2.0) and mid == pytest.approx(np.sqrt(2))
    assert histogram.percentiles(one_bin, [0.5], lo=1.2, hi=1.3)[0] == pytest.approx(np.sqrt(1.56))
    with pytest.raises(ValueError):
        histogram.percentiles(one_bin, [1.5])
    with pytest.raises(ValueError):
        histogram.percentiles(np.ones(10), [0.5])
