"""Fused single-pass activation statistics for CPU tensors (the ``synapse_native._stats`` kernel).

The only module that touches the kernel's ffi. One :meth:`SiteStats.compute` reads a
``[rows, cols]`` matrix (rows = batch * tokens, cols = neurons) once and yields the raw sums of a
summary, the 64-bin histogram (``synapse_native.histogram``) and the per-neuron sum of ``|x|``;
:meth:`SiteStats.finish` writes the 336-byte summary record of the wire format and
:meth:`SiteStats.select` picks the neurons above a threshold. Every output lives in buffers the
:class:`SiteStats` allocates once, so the hot path allocates nothing but a few small cdata
handles. Inputs are float32, or uint16 arrays carrying bfloat16 / float16 bits with a dtype tag;
a torch CPU tensor goes in through :meth:`SiteStats.compute_ptr` with its ``data_ptr()``, so this
package never imports torch. The C code runs without the GIL.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from ._lib import stats_ffi as ffi
from ._lib import stats_lib as lib

RECORD_BYTES: int = lib.SYN_STATS_RECORD_BYTES
HIST_BINS: int = lib.SYN_STATS_HIST_BINS
MAX_THREADS: int = lib.SYN_STATS_MAX_THREADS
# Measured on 2 cores (bench/bench_stats.py): a second thread gives 1.6-1.9x on large tensors,
# less right after a torch op (its OpenMP threads still spin on the other core), and never
# loses: threads claim row shares as they come, so a late worker just leaves more to the
# caller. Below 2 x 64k elements the kernel stays on the calling thread.
DEFAULT_THREADS = 2


class InputDtype(IntEnum):
    """Element type of the input matrix."""

    F32 = lib.SYN_STATS_F32
    BF16 = lib.SYN_STATS_BF16  # uint16 array holding bfloat16 bits
    F16 = lib.SYN_STATS_F16  # float16 array, or uint16 array holding float16 bits


_IMPLS = {"generic": lib.SYN_STATS_IMPL_GENERIC, "avx2": lib.SYN_STATS_IMPL_AVX2}


@dataclass(frozen=True)
class RawStats:
    """A copy of the raw sums of the last call (moments are about ``pivot``)."""

    count: int
    finite_count: int
    nan_count: int
    inf_count: int
    zero_count: int
    above_count: int
    hist: tuple[int, ...]
    pivot: float
    sum_d1: float
    sum_d2: float
    sum_d3: float
    sum_d4: float
    sum_abs: float
    min: float
    max: float
    threshold: float
    threads_used: int


def _check(rc: int) -> None:
    if rc == lib.SYN_STATS_ETOOSMALL:
        raise RuntimeError("statistics scratch buffer too small")  # a bug here, not the caller's
    if rc != lib.SYN_STATS_OK:
        raise ValueError(f"statistics kernel rejected its arguments (code {rc})")


def _input_dtype(x: npt.NDArray[Any], dtype: InputDtype | None) -> InputDtype:
    if not x.dtype.isnative:
        raise ValueError(f"x must be in native byte order, got {x.dtype.str}")
    if x.dtype == np.float32:
        if dtype not in (None, InputDtype.F32):
            raise ValueError(f"a float32 array cannot be tagged {dtype!r}")
        return InputDtype.F32
    if x.dtype == np.float16:
        if dtype not in (None, InputDtype.F16):
            raise ValueError(f"a float16 array cannot be tagged {dtype!r}")
        return InputDtype.F16
    if x.dtype in (np.uint16, np.int16):
        if dtype not in (InputDtype.BF16, InputDtype.F16):
            raise ValueError("a 16-bit integer array needs dtype=InputDtype.BF16 or F16")
        return dtype
    raise TypeError(f"x must be float32, float16 or uint16 (bf16/f16 bits), got {x.dtype}")


class SiteStats:
    """Kernel outputs and scratch for one site of ``cols`` neurons, reused call after call.

    Attributes filled by the calls: ``neuron_abs`` (float32[cols]: per-neuron sum, or mean, of
    ``|x|`` over rows; non-finite elements count as 0), ``record`` (uint8[336]: the last
    :meth:`finish`), ``top_idx`` / ``top_val`` (uint32 / float32[top_k]: the last
    :meth:`select`). One instance must not be used by two threads at once.
    """

    def __init__(self, cols: int, *, top_k: int = 0, threads: int = DEFAULT_THREADS) -> None:
        if not 1 <= cols < 2**32:
            raise ValueError(f"cols must be in [1, 2^32), got {cols}")
        if not 1 <= threads <= MAX_THREADS:
            raise ValueError(f"threads must be in [1, {MAX_THREADS}], got {threads}")
        if not 0 <= top_k < 2**32:
            raise ValueError(f"top_k must be in [0, 2^32), got {top_k}")
        self.cols = cols
        self.threads = threads
        self.top_k = top_k
        self.neuron_abs = np.zeros(cols, np.float32)
        self.record = np.zeros(RECORD_BYTES, np.uint8)
        self.top_idx = np.zeros(top_k, np.uint32)
        self.top_val = np.zeros(top_k, np.float32)
        self._scratch_bytes = int(lib.syn_stats_scratch_bytes(cols, threads))
        self._scratch = np.zeros(self._scratch_bytes, np.uint8)
        self._raw = ffi.new("syn_stats_raw *")
        self._written = ffi.new("uint32_t *")
        # cdata views of our own buffers, made once (the arrays never move)
        self._p_neuron = ffi.from_buffer("float[]", self.neuron_abs)
        self._p_record = ffi.from_buffer(self.record)
        self._p_idx = ffi.from_buffer("uint32_t[]", self.top_idx)
        self._p_val = ffi.from_buffer("float[]", self.top_val)
        self._p_scratch = ffi.from_buffer(self._scratch)
        self._rows = 0

    def compute(
        self,
        x: npt.NDArray[Any],
        threshold: float,
        *,
        dtype: InputDtype | None = None,
        neuron_mean: bool = False,
        neuron_out: npt.NDArray[np.float32] | None = None,
    ) -> None:
        """One pass over the C-contiguous 2-D array ``x`` of shape ``[rows, cols]``.

        ``threshold``: ``frac_above`` counts finite ``|x| > threshold`` (NaN or +Inf counts none,
        a negative one every finite element). The per-neuron ``|x|`` goes to ``neuron_out`` if
        given, else to ``neuron_abs``; ``neuron_mean`` makes it a mean over rows, not a sum.
        """
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy array, got {type(x).__name__}")
        if x.ndim != 2 or x.shape[1] != self.cols:
            raise ValueError(f"x must have shape [rows, {self.cols}], got {list(x.shape)}")
        if not x.flags.c_contiguous:
            raise ValueError(
                f"x must be C-contiguous (strides {x.strides} for shape {list(x.shape)}); "
                "pass np.ascontiguousarray(x) or a contiguous tensor"
            )
        kind = _input_dtype(x, dtype)
        out = self._neuron_out(neuron_out)
        self._run(ffi.from_buffer(x), x.shape[0], kind, threshold, neuron_mean, out)

    def compute_ptr(
        self,
        address: int,
        rows: int,
        dtype: InputDtype,
        threshold: float,
        *,
        neuron_mean: bool = False,
        neuron_out: npt.NDArray[np.float32] | None = None,
    ) -> None:
        """As :meth:`compute`, on ``rows * cols`` contiguous elements at ``address`` (e.g. a CPU
        tensor's ``data_ptr()``). The caller keeps the memory alive and unchanged meanwhile."""
        if rows < 0 or (rows and not address):
            raise ValueError(f"bad pointer {address:#x} for {rows} rows")
        out = self._neuron_out(neuron_out)
        ptr = ffi.cast("const void *", address)
        self._run(ptr, rows, InputDtype(dtype), threshold, neuron_mean, out)

    def _neuron_out(self, neuron_out: npt.NDArray[np.float32] | None) -> Any:
        if neuron_out is None:
            return None
        if (
            not isinstance(neuron_out, np.ndarray)
            or neuron_out.dtype != np.float32
            or neuron_out.shape != (self.cols,)
            or not neuron_out.flags.c_contiguous
        ):
            raise ValueError(f"neuron_out must be a contiguous float32 array of {self.cols}")
        return ffi.from_buffer("float[]", neuron_out, require_writable=True)

    def _run(
        self, ptr: Any, rows: int, kind: InputDtype, threshold: float, mean: bool, out: Any
    ) -> None:
        scale = 1.0 / rows if mean and rows else 1.0
        rc = lib.syn_stats_compute(
            ptr,
            rows,
            self.cols,
            kind,
            threshold,
            self._p_neuron if out is None else out,
            scale,
            self._p_scratch,
            self._scratch_bytes,
            self.threads,
            self._raw,
        )
        _check(rc)
        self._rows = rows

    def finish(self, site_id: int, flags: int = 0, out: Any = None) -> npt.NDArray[np.uint8]:
        """Writes the summary record of the last call into ``out`` (any writable buffer of
        ``RECORD_BYTES`` bytes, e.g. a row of a record array) or into ``self.record``."""
        if not (0 <= site_id < 2**32 and 0 <= flags < 2**32):
            raise ValueError("site_id and flags are u32")
        if out is None:
            lib.syn_stats_finish(self._raw, site_id, flags, self._p_record)
            return self.record
        view = ffi.from_buffer(out, require_writable=True)
        if len(view) < RECORD_BYTES:
            raise ValueError(f"out holds {len(view)} bytes, a record needs {RECORD_BYTES}")
        lib.syn_stats_finish(self._raw, site_id, flags, view)
        return np.frombuffer(ffi.buffer(view, RECORD_BYTES), np.uint8)

    def select(self, threshold: float, k: int | None = None) -> tuple[int, int]:
        """Neurons whose ``neuron_abs`` is above ``threshold``, capped to the ``k`` (default
        ``top_k``) largest, ascending index order, into ``top_idx`` / ``top_val``. Returns
        ``(written, above)``."""
        k = self.top_k if k is None else k
        if not 0 <= k <= self.top_k:
            raise ValueError(f"k must be in [0, {self.top_k}], got {k}")
        above = lib.syn_stats_select(
            self._p_neuron, self.cols, threshold, k, self._p_idx, self._p_val, self._written
        )
        return int(self._written[0]), int(above)

    def raw(self) -> RawStats:
        """The raw sums of the last call."""
        r = self._raw
        return RawStats(
            count=int(r.count),
            finite_count=int(r.finite_count),
            nan_count=int(r.nan_count),
            inf_count=int(r.inf_count),
            zero_count=int(r.zero_count),
            above_count=int(r.above_count),
            hist=tuple(int(v) for v in r.hist),
            pivot=float(r.pivot),
            sum_d1=float(r.sum_d1),
            sum_d2=float(r.sum_d2),
            sum_d3=float(r.sum_d3),
            sum_d4=float(r.sum_d4),
            sum_abs=float(r.sum_abs),
            min=float(r.min),
            max=float(r.max),
            threshold=float(r.threshold),
            threads_used=int(r.threads_used),
        )


def select_top(
    values: npt.NDArray[np.float32],
    threshold: float,
    k: int,
    idx_out: npt.NDArray[np.uint32],
    val_out: npt.NDArray[np.float32],
) -> tuple[int, int]:
    """:meth:`SiteStats.select` on any float32 vector; returns ``(written, above)``."""
    if values.dtype != np.float32 or values.ndim != 1 or not values.flags.c_contiguous:
        raise ValueError("values must be a contiguous 1-D float32 array")
    if idx_out.dtype != np.uint32 or val_out.dtype != np.float32:
        raise ValueError("idx_out must be uint32 and val_out float32")
    if not 0 <= k <= min(idx_out.size, val_out.size) or values.size >= 2**32:
        raise ValueError(f"k={k} does not fit the outputs, or values is too long")
    written = ffi.new("uint32_t *")
    above = lib.syn_stats_select(
        ffi.from_buffer("float[]", values),
        values.size,
        threshold,
        k,
        ffi.from_buffer("uint32_t[]", idx_out, require_writable=True),
        ffi.from_buffer("float[]", val_out, require_writable=True),
        written,
    )
    return int(written[0]), int(above)


def set_impl(name: str) -> str:
    """Chooses the kernel build for later calls: "auto" (the best the CPU runs), "avx2" or
    "generic"; returns the one now active. Meant for tests and benchmarks."""
    if name == "auto":
        request = lib.SYN_STATS_IMPL_AVX2
    elif name in _IMPLS:
        request = _IMPLS[name]
    else:
        raise ValueError(f"unknown implementation {name!r}")
    return active_impl(lib.syn_stats_impl(request))


def active_impl(code: int | None = None) -> str:
    """Name of the active kernel build."""
    code = lib.syn_stats_impl(lib.SYN_STATS_IMPL_QUERY) if code is None else code
    return next(name for name, value in _IMPLS.items() if value == code)
