"""The desktop app's busy-tick kernels, from Python: scan a run of sparse frames, place points.

A busy tick gets a whole training step at once: a SPARSE_ACTIVATIONS frame per site (about a
hundred) and tens of thousands of neurons. ``scan_sparse`` checks and reads the frames of a run
in one C call (the checks of ``decode_frame``; a frame that fails one is left to the codec, which
says what is wrong). ``place_points`` puts every neuron of some sites into its site's slots of a
points buffer (index and intensity) and its brightness into a texture atlas, in one pass
(``include/grid.h``).

The only module besides ``ring``, ``sender`` and ``receiver`` that calls into the C core.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._lib import ffi, lib
from .errors import raise_for

# Mirrors of the C structs (include/grid.h), checked against cffi's sizes at import.
SPARSE_HEAD = np.dtype(
    [
        ("timestamp_ns", "<u8"),
        ("seq", "<u4"),
        ("step", "<u4"),
        ("rank", "<u4"),
        ("site_id", "<u4"),
        ("n", "<u4"),
        ("n_above", "<u4"),
        ("threshold", "<f4"),
        ("reserved", "<u4"),
    ]
)
GRID_SITE = np.dtype(
    [
        ("origin", "<f4", 3),
        ("cols", "<u4"),
        ("limit", "<u4"),
        ("reserved", "<u4"),
        ("corner", "<u8"),
    ]
)
assert SPARSE_HEAD.itemsize == ffi.sizeof("syn_sparse_head")
assert GRID_SITE.itemsize == ffi.sizeof("syn_grid_site")

_from_buffer = ffi.from_buffer
_scan = lib.syn_sparse_scan
_place = lib.syn_grid_place


def _c_array(ctype: str, array: npt.NDArray[np.generic], dtype: npt.DTypeLike, what: str) -> object:
    if array.dtype != np.dtype(dtype) or not array.flags.c_contiguous:
        raise TypeError(f"{what} must be a C-contiguous {np.dtype(dtype)} array")
    return _from_buffer(ctype, array)


def scan_sparse(
    joined: bytes, lengths: npt.NDArray[np.uint64], heads: npt.NDArray[np.void], max_payload: int
) -> int:
    """Check the SPARSE_ACTIVATIONS frames laid end to end in ``joined`` (frame ``i`` is
    ``lengths[i]`` bytes) and fill ``heads[i]`` (``SPARSE_HEAD``) for each; returns how many
    leading frames passed every check of the codec (all of them: ``len(lengths)``)."""
    n = len(lengths)
    if len(heads) < n:
        raise ValueError(f"heads holds {len(heads)} rows, {n} needed")
    if not 0 <= max_payload < 1 << 32:
        raise ValueError(f"max_payload {max_payload} is outside 0..2**32-1")
    return int(
        _scan(
            _from_buffer("uint8_t[]", joined),
            len(joined),
            _c_array("uint64_t[]", lengths, np.uint64, "lengths"),
            n,
            max_payload,
            _c_array("syn_sparse_head[]", heads, SPARSE_HEAD, "heads"),
        )
    )


def place_points(
    table: npt.NDArray[np.void],
    sites: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    thresholds: npt.NDArray[np.float32],
    indices: npt.NDArray[np.uint32],
    values: npt.NDArray[np.float32],
    rows: npt.NDArray[np.float32],
    held: npt.NDArray[np.int64],
    atlas: npt.NDArray[np.uint8],
    faded: npt.NDArray[np.int64],
    fades: int,
) -> int:
    """Place the points of ``sites`` (indices into ``table``, a ``GRID_SITE`` row per site).

    Site ``sites[k]`` has ``counts[k]`` points: the next entries of ``indices`` and ``values``,
    measured against ``thresholds[k]``. Its ``m``-th point inside its grid becomes row
    ``s * capacity + m`` of ``rows`` ((slots, 2) float32: neuron index, intensity; ``capacity``
    is ``len(rows) // len(table)``), and its texel of ``atlas`` (2D uint8) gets 255 x intensity;
    rows from there up to ``held[s]`` are marked unused (intensity -1) and ``held[s]`` becomes
    ``m``. Before that, the site's block of the atlas is halved ``fades - faded[s]`` times
    (cleared from 8 on) and ``faded[s]`` becomes ``fades``: the atlas halves once per new step,
    ``fades`` counting the halvings so far. Returns the number of points placed. Raises
    ``InvalidArgumentError`` (a ``ValueError``), with nothing written, when something does not
    fit (see ``grid.h``).
    """
    n = len(sites)
    if not (len(counts) == len(thresholds) == n) or len(indices) != len(values):
        raise ValueError("sites, counts and thresholds, and indices and values, differ in length")
    if rows.ndim != 2 or rows.shape[1] != 2 or atlas.ndim != 2:
        raise ValueError("rows must be (slots, 2) and the atlas 2D")
    if len(held) != len(table) or len(faded) != len(table):
        raise ValueError("held and faded need one count per table row")
    capacity = len(rows) // max(len(table), 1)
    placed = int(
        _place(
            _c_array("syn_grid_site[]", table, GRID_SITE, "table"),
            len(table),
            _c_array("int64_t[]", sites, np.int64, "sites"),
            _c_array("int64_t[]", counts, np.int64, "counts"),
            _c_array("float[]", thresholds, np.float32, "thresholds"),
            n,
            _c_array("uint32_t[]", indices, np.uint32, "indices"),
            _c_array("float[]", values, np.float32, "values"),
            len(indices),
            _c_array("float[]", rows, np.float32, "rows"),
            capacity,
            len(rows),
            _c_array("int64_t[]", held, np.int64, "held"),
            _c_array("uint8_t[]", atlas, np.uint8, "atlas"),
            atlas.shape[1],
            atlas.size,
            _c_array("int64_t[]", faded, np.int64, "faded"),
            fades,
        )
    )
    if placed < 0:
        raise_for(placed, f"place the points of {n} sites")
    return placed
