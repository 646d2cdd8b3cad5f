"""The model's site table: MODEL_META (2), layout and codec.

A trainer sends MODEL_META once per connection, before any statistics: the model's name, its
block count, and one row per hooked site (id, layer, kind, name, neurons, grid).
``docs/PROTOCOL.md`` section 5.2 specifies the bytes; ``_site_table`` holds the rules a table
must meet, shared by the encoder and the decoder.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ._layout import (
    U32_MAX,
    Payload,
    check_fixed,
    check_text_len,
    decode_text,
    encode_text,
    fail_size,
    field_codes,
    pack_fields,
    zero_padded,
)
from ._site_table import check_site_table
from ._wire import HEADER_SIZE, MAX_SITES, MAX_TEXT, MsgType, ProtocolError, SiteKind

P = HEADER_SIZE  # payload offset inside the frame

META_FIXED = struct.Struct("<IIII")  # then the site table and the string table
META_FIELDS = ("n_sites", "n_layers", "model_name_len", "strings_len")
SITE_DTYPE = np.dtype(
    [
        ("site_id", "<u4"),
        ("layer", "<u4"),
        ("neurons", "<u4"),
        ("grid_rows", "<u4"),
        ("grid_cols", "<u4"),
        ("kind", "<u2"),
        ("flags", "<u2"),
        ("name_offset", "<u4"),
        ("name_len", "<u4"),
    ],
    align=True,
)

assert len(field_codes(META_FIXED)) == len(META_FIELDS)
assert META_FIXED.size == 16 and SITE_DTYPE.itemsize == 32


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """One hooked site: where it sits, how many neurons, how the app lays them out."""

    site_id: int
    layer: int
    kind: SiteKind | int
    name: str
    neurons: int
    grid_rows: int
    grid_cols: int


@dataclass(frozen=True, slots=True)
class ModelMeta:
    """The model's site table, sent once per connection before any statistics."""

    TYPE: ClassVar[MsgType] = MsgType.MODEL_META

    model_name: str
    n_layers: int
    sites: tuple[SiteInfo, ...]


def grid_shape(neurons: int) -> tuple[int, int]:
    """A near-square ``(rows, cols)`` grid for ``neurons`` cells, ``rows <= cols``.

    Exact (``rows * cols == neurons``) when a factorisation with ``cols <= 2 * rows`` exists,
    e.g. 4096 -> (64, 64) and 14336 -> (112, 128); otherwise ``cols = ceil(sqrt(n))`` and
    ``rows = ceil(n / cols)``, e.g. 4099 -> (64, 65). Zero neurons -> (0, 0).
    """
    if neurons < 0:
        raise ValueError(f"neurons must be >= 0, got {neurons}")
    if neurons == 0:
        return 0, 0
    for rows in range(math.isqrt(neurons), 0, -1):
        cols, remainder = divmod(neurons, rows)
        if cols > 2 * rows:
            break
        if remainder == 0:
            return rows, cols
    cols = math.isqrt(neurons - 1) + 1
    return -(-neurons // cols), cols


def encode_model_meta(m: ModelMeta) -> Payload:
    """MODEL_META payload: its size and the pieces to join."""
    if len(m.sites) > MAX_SITES:
        raise ProtocolError(f"MODEL_META has {len(m.sites)} sites (limit {MAX_SITES})")
    strings = [encode_text(m.model_name, "MODEL_META model name", MAX_TEXT)]
    rows = []
    offset = len(strings[0])
    for site in m.sites:
        name = encode_text(site.name, f"MODEL_META site {site.site_id} name", MAX_TEXT)
        numbers = (site.site_id, site.layer, site.neurons, site.grid_rows, site.grid_cols)
        rows.append((*numbers, site.kind, 0, offset, len(name)))
        strings.append(name)
        offset += len(name)
    table = np.zeros(len(rows), SITE_DTYPE)
    for column, field in enumerate(SITE_DTYPE.names or ()):
        limit = 0xFFFF if SITE_DTYPE[field].itemsize == 2 else U32_MAX
        cells = [row[column] for row in rows]
        bad = [v for v in cells if not (isinstance(v, (int, np.integer)) and 0 <= v <= limit)]
        if bad:
            kind = "u16" if limit == 0xFFFF else "u32"
            raise ProtocolError(f"MODEL_META site {field} = {bad[0]!r} does not fit {kind}")
        table[field] = cells
    string_table = zero_padded(b"".join(strings))
    check_site_table(table, m.n_layers, len(string_table))
    fixed_values = (len(rows), m.n_layers, len(strings[0]), len(string_table))
    fixed = pack_fields(META_FIXED, "MODEL_META", META_FIELDS, fixed_values)
    size = META_FIXED.size + table.nbytes + len(string_table)
    return size, [fixed, table.data, string_table]


_SITE_KINDS = {int(k): k for k in SiteKind}


def decode_model_meta(frame: memoryview, size: int) -> ModelMeta:
    """MODEL_META from a whole frame whose payload is ``size`` bytes."""
    check_fixed("MODEL_META", size, META_FIXED.size)
    n_sites, n_layers, name_len, strings_len = META_FIXED.unpack_from(frame, P)
    if n_sites > MAX_SITES:
        raise ProtocolError(f"MODEL_META announces {n_sites} sites (limit {MAX_SITES})")
    if strings_len % 8:
        raise ProtocolError(f"MODEL_META string table of {strings_len} bytes is not padded to 8")
    if size != META_FIXED.size + n_sites * SITE_DTYPE.itemsize + strings_len:
        raise fail_size("MODEL_META", size, f"16 + {n_sites} x 32 + {strings_len}")
    check_text_len("MODEL_META model name", name_len, MAX_TEXT)
    if name_len > strings_len:
        raise ProtocolError(
            f"MODEL_META model name of {name_len} bytes overruns the {strings_len}-byte "
            "string table"
        )
    table = np.frombuffer(frame, SITE_DTYPE, n_sites, P + META_FIXED.size)
    check_site_table(table, n_layers, strings_len)
    strings_at = P + META_FIXED.size + table.nbytes
    sites = tuple(
        SiteInfo(
            site_id=site_id,
            layer=layer,
            kind=_SITE_KINDS.get(kind, kind),
            name=decode_text(frame, strings_at + offset, length, f"MODEL_META site {site_id} name"),
            neurons=neurons,
            grid_rows=rows,
            grid_cols=cols,
        )
        for site_id, layer, neurons, rows, cols, kind, _, offset, length in table.tolist()
    )
    model_name = decode_text(frame, strings_at, name_len, "MODEL_META model name")
    return ModelMeta(model_name=model_name, n_layers=n_layers, sites=sites)
