"""Rules of the MODEL_META site table, shared by the encoder and the decoder."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from ._wire import MAX_LAYERS, MAX_TEXT, ProtocolError


def check_site_table(table: npt.NDArray[np.void], n_layers: int, strings_len: int) -> None:
    """Raise ProtocolError unless every row of ``table`` (``SITE_DTYPE``) is consistent.

    Site ids are unique, layers are below ``n_layers``, names lie inside the string table and
    within MAX_TEXT, and each grid holds its neurons: ``neurons <= rows * cols <= 2 * neurons``.
    """
    if n_layers > MAX_LAYERS:
        raise ProtocolError(f"MODEL_META announces {n_layers} layers (limit {MAX_LAYERS})")
    ids = table["site_id"]
    ordered = np.sort(ids)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if repeated.size:
        raise ProtocolError(f"MODEL_META site id {int(repeated[0])} appears more than once")

    def first_bad(bad: npt.NDArray[np.bool_], explain: Callable[[int], str]) -> None:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ProtocolError(f"MODEL_META site {int(ids[row])}: {explain(row)}")

    layer = table["layer"]
    first_bad(layer >= n_layers, lambda i: f"layer {layer[i]} not below n_layers {n_layers}")

    name_len = table["name_len"].astype(np.uint64)
    name_end = table["name_offset"].astype(np.uint64) + name_len
    first_bad(name_len > MAX_TEXT, lambda i: f"name of {name_len[i]} bytes (limit {MAX_TEXT})")
    first_bad(
        name_end > strings_len,
        lambda i: f"name ends at {name_end[i]}, past the {strings_len}-byte string table",
    )

    neurons = table["neurons"].astype(np.uint64)
    rows = table["grid_rows"]
    cols = table["grid_cols"]
    cells = rows.astype(np.uint64) * cols.astype(np.uint64)
    first_bad(
        cells < neurons,
        lambda i: f"grid {rows[i]} x {cols[i]} cannot hold {neurons[i]} neurons",
    )
    first_bad(
        cells > 2 * neurons,
        lambda i: f"grid {rows[i]} x {cols[i]} exceeds twice its {neurons[i]} neurons",
    )
