"""Per-site activation statistics of a step: LAYER_SUMMARY_BATCH (3) and SPARSE_ACTIVATIONS (4).

A summary batch carries one ``SUMMARY_DTYPE`` record per site (moments, extremes, counts, a
64-bin histogram); a sparse frame carries the neurons of one site above the threshold.
``docs/PROTOCOL.md`` sections 5.3 and 5.4 specify the bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from ._layout import (
    Payload,
    as_records,
    as_vector,
    check_fixed,
    fail_size,
    field_codes,
    pack_fields,
)
from ._wire import HEADER_SIZE, HIST_BINS, MAX_SITES, MsgType, ProtocolError

P = HEADER_SIZE  # payload offset inside the frame

SUMMARY_FIXED = struct.Struct("<IHHQ")  # then the records
SUMMARY_FIELDS = ("n_sites", "n_bins", "reserved", "reserved")
SUMMARY_DTYPE = np.dtype(
    [
        ("site_id", "<u4"),
        ("flags", "<u4"),
        ("count", "<u8"),
        ("nan_count", "<u8"),
        ("inf_count", "<u8"),
        ("mean", "<f4"),
        ("std", "<f4"),
        ("rms", "<f4"),
        ("min", "<f4"),
        ("max", "<f4"),
        ("mean_abs", "<f4"),
        ("skewness", "<f4"),
        ("kurtosis", "<f4"),
        ("frac_zero", "<f4"),
        ("frac_above", "<f4"),
        ("threshold", "<f4"),
        ("reserved", "<u4"),
        ("hist", "<f4", (HIST_BINS,)),
    ],
    align=True,
)

SPARSE_FIXED = struct.Struct("<IfII")  # then indices[n], values[n]
SPARSE_FIELDS = ("site_id", "threshold", "n", "n_above")
INDEX_DTYPE = np.dtype("<u4")
VALUE_DTYPE = np.dtype("<f4")

assert len(field_codes(SUMMARY_FIXED)) == len(SUMMARY_FIELDS)
assert len(field_codes(SPARSE_FIXED)) == len(SPARSE_FIELDS)
assert SUMMARY_FIXED.size == 16 and SUMMARY_DTYPE.itemsize == 336
assert SUMMARY_DTYPE.fields is not None and SUMMARY_DTYPE.fields["hist"][1] == 80
assert SPARSE_FIXED.size == 16


@dataclass(frozen=True, slots=True, eq=False)
class LayerSummaryBatch:
    """Per-site statistics of one step: a 1-D array of ``SUMMARY_DTYPE`` records."""

    TYPE: ClassVar[MsgType] = MsgType.LAYER_SUMMARY_BATCH

    records: npt.NDArray[np.void]


@dataclass(frozen=True, slots=True, eq=False)
class SparseActivations:
    """Neurons of one site whose mean |x| is above ``threshold`` (at most top-k of them)."""

    TYPE: ClassVar[MsgType] = MsgType.SPARSE_ACTIVATIONS

    site_id: int
    threshold: float
    n_above: int
    indices: npt.NDArray[np.uint32]
    values: npt.NDArray[np.float32]


def summary_records(n: int) -> npt.NDArray[np.void]:
    """``n`` zeroed ``SUMMARY_DTYPE`` records for a producer to fill."""
    return np.zeros(n, SUMMARY_DTYPE)


def encode_summary_batch(m: LayerSummaryBatch) -> Payload:
    """LAYER_SUMMARY_BATCH payload: its size and the pieces to join."""
    records = as_records(m.records, SUMMARY_DTYPE, "LAYER_SUMMARY_BATCH records")
    if len(records) > MAX_SITES:
        raise ProtocolError(f"LAYER_SUMMARY_BATCH has {len(records)} sites (limit {MAX_SITES})")
    fixed = SUMMARY_FIXED.pack(len(records), HIST_BINS, 0, 0)
    return SUMMARY_FIXED.size + records.nbytes, [fixed, records.data]


def encode_sparse(m: SparseActivations) -> Payload:
    """SPARSE_ACTIVATIONS payload: its size and the pieces to join."""
    indices = as_vector(m.indices, INDEX_DTYPE, "SPARSE_ACTIVATIONS indices")
    values = as_vector(m.values, VALUE_DTYPE, "SPARSE_ACTIVATIONS values")
    n = len(indices)
    if len(values) != n:
        raise ProtocolError(f"SPARSE_ACTIVATIONS has {n} indices but {len(values)} values")
    if n > m.n_above:
        raise ProtocolError(f"SPARSE_ACTIVATIONS carries {n} neurons but n_above is {m.n_above}")
    if n > 1 and not (indices[1:] > indices[:-1]).all():
        raise ProtocolError("SPARSE_ACTIVATIONS indices not strictly ascending")
    fixed_values = (m.site_id, m.threshold, n, m.n_above)
    fixed = pack_fields(SPARSE_FIXED, "SPARSE_ACTIVATIONS", SPARSE_FIELDS, fixed_values)
    return SPARSE_FIXED.size + 8 * n, [fixed, indices.data, values.data]


def decode_summary_batch(frame: memoryview, size: int) -> LayerSummaryBatch:
    """LAYER_SUMMARY_BATCH from a whole frame whose payload is ``size`` bytes."""
    check_fixed("LAYER_SUMMARY_BATCH", size, SUMMARY_FIXED.size)
    n_sites, n_bins, _, _ = SUMMARY_FIXED.unpack_from(frame, P)
    if n_bins != HIST_BINS:
        raise ProtocolError(
            f"LAYER_SUMMARY_BATCH has {n_bins} histogram bins, {HIST_BINS} expected"
        )
    if n_sites > MAX_SITES:
        raise ProtocolError(f"LAYER_SUMMARY_BATCH announces {n_sites} sites (limit {MAX_SITES})")
    if size != SUMMARY_FIXED.size + n_sites * SUMMARY_DTYPE.itemsize:
        raise fail_size("LAYER_SUMMARY_BATCH", size, f"16 + {n_sites} x 336")
    records = np.frombuffer(frame, SUMMARY_DTYPE, n_sites, P + SUMMARY_FIXED.size)
    return LayerSummaryBatch(records)


def decode_sparse(frame: memoryview, size: int) -> SparseActivations:
    """SPARSE_ACTIVATIONS from a whole frame whose payload is ``size`` bytes."""
    check_fixed("SPARSE_ACTIVATIONS", size, SPARSE_FIXED.size)
    site_id, threshold, n, n_above = SPARSE_FIXED.unpack_from(frame, P)
    if size != SPARSE_FIXED.size + 8 * n:
        raise fail_size("SPARSE_ACTIVATIONS", size, f"16 + {n} x 8")
    if n > n_above:
        raise ProtocolError(f"SPARSE_ACTIVATIONS carries {n} neurons but n_above is {n_above}")
    at = P + SPARSE_FIXED.size
    indices = np.frombuffer(frame, INDEX_DTYPE, n, at)
    values = np.frombuffer(frame, VALUE_DTYPE, n, at + 4 * n)
    if n > 1:
        rising = indices[1:] > indices[:-1]
        if not rising.all():
            i = int(np.argmin(rising))
            raise ProtocolError(
                f"SPARSE_ACTIVATIONS indices not strictly ascending: "
                f"{indices[i]} then {indices[i + 1]} at position {i + 1}"
            )
    return SparseActivations(site_id, threshold, n_above, indices, values)
