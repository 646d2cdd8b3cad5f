"""A capture file read back: each site's full tensor as ``tokens x neurons``, and the summaries
the capture view shows (histogram, top neurons by mean |x|, a token x neuron heatmap).

The file is what ``synapse_probe`` writes on a CAPTURE_REQUEST (docs/PROTOCOL.md 5.19): one
``safetensors`` tensor per site (``@grad`` appended for its gradient) and a JSON metadata entry.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

METADATA_KEY = "synapse.capture"
GRAD_SUFFIX = "@grad"
HIST_BINS = 64
TOP_NEURONS = 16
MAX_HEATMAP = 256  # rows and columns of the heatmap; more tokens or neurons are averaged


class CaptureFileError(ValueError):
    """A file that is not a readable Synapse capture."""


@dataclass(frozen=True, eq=False)
class CaptureSite:
    """One site of a capture: its tensor flattened to ``[tokens, neurons]`` (float32)."""

    name: str
    site_id: int
    layer: int
    shape: tuple[int, ...]
    values: npt.NDArray[np.float32]
    grad: npt.NDArray[np.float32] | None


@dataclass(frozen=True, eq=False)
class Capture:
    path: Path
    model: str
    step: int
    sites: tuple[CaptureSite, ...]


@dataclass(frozen=True, eq=False)
class Histogram:
    edges: npt.NDArray[np.float64]  # HIST_BINS + 1
    counts: npt.NDArray[np.int64]
    nonfinite: int


@dataclass(frozen=True, eq=False)
class Heatmap:
    """``cells[r, c]``: mean |x| over the tokens of row ``r`` and the neurons of column ``c``."""

    cells: npt.NDArray[np.float32]
    tokens_per_row: int
    neurons_per_col: int


def load(path: str | os.PathLike[str]) -> Capture:
    """Read a capture; CaptureFileError when it is not one."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), "np") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
            if raw is None:
                raise CaptureFileError(f"{path} is a safetensors file without Synapse metadata")
            meta = json.loads(raw)
            sites = tuple(_site(f, entry) for entry in meta["sites"])
            return Capture(path, str(meta["model"]), int(meta["step"]), sites)
    except (OSError, SafetensorError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise CaptureFileError(f"{path} is not a readable capture: {exc}") from None


def _site(f: object, entry: dict[str, object]) -> CaptureSite:
    def matrix(name: str) -> npt.NDArray[np.float32]:
        array = np.asarray(f.get_tensor(name), dtype=np.float32)  # type: ignore[attr-defined]
        width = array.shape[-1] if array.ndim else 1
        return array.reshape(-1, width)

    grad = entry.get("grad")
    shape = entry["shape"]
    assert isinstance(shape, list)
    return CaptureSite(
        name=str(entry["name"]),
        site_id=int(entry["site_id"]),  # type: ignore[call-overload]
        layer=int(entry["layer"]),  # type: ignore[call-overload]
        shape=tuple(int(n) for n in shape),
        values=matrix(str(entry["tensor"])),
        grad=matrix(str(grad)) if grad else None,
    )


def histogram(values: npt.NDArray[np.float32], bins: int = HIST_BINS) -> Histogram:
    """Counts of the finite values in ``bins`` equal bins from their min to their max."""
    flat = values.reshape(-1)
    finite = flat[np.isfinite(flat)]
    if finite.size == 0:
        return Histogram(np.linspace(0.0, 1.0, bins + 1), np.zeros(bins, np.int64), flat.size)
    low, high = float(finite.min()), float(finite.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    counts, edges = np.histogram(finite, bins=bins, range=(low, high))
    return Histogram(edges, counts.astype(np.int64), int(flat.size - finite.size))


def top_neurons(
    values: npt.NDArray[np.float32], k: int = TOP_NEURONS
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The ``k`` neurons (columns) with the largest mean |x| over the tokens, largest first."""
    with warnings.catch_warnings():  # an all-NaN neuron ranks last
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(np.abs(values), axis=0) if len(values) else np.zeros(values.shape[1])
    ranked: npt.NDArray[np.float32] = np.nan_to_num(means, nan=0.0).astype(np.float32)
    order = np.argsort(-ranked, kind="stable")[:k]
    return order.astype(np.int64), ranked[order]


def heatmap(values: npt.NDArray[np.float32], limit: int = MAX_HEATMAP) -> Heatmap:
    """|x| as ``tokens x neurons``, averaged over groups when either side exceeds ``limit``."""
    tokens, neurons = values.shape
    per_row = max(1, -(-tokens // limit))
    per_col = max(1, -(-neurons // limit))
    magnitude = np.abs(values)
    rows, cols = -(-tokens // per_row), -(-neurons // per_col)
    padded = np.full((rows * per_row, cols * per_col), np.nan, np.float32)
    padded[:tokens, :neurons] = magnitude
    with warnings.catch_warnings():  # a group of NaN values stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        cells = np.nanmean(padded.reshape(rows, per_row, cols, per_col), axis=(1, 3))
    return Heatmap(cells.astype(np.float32), per_row, per_col)
