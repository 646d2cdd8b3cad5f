"""The optimizer lens's frame: OPTIMIZER_STATS (28), layout and codec.

What one optimizer step did to each block: update-to-weight ratio, gradient norm, and for
Adam-family optimizers the share of second moments below the squared gradient.
``docs/PROTOCOL.md`` section 5.15 specifies the bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from ._layout import (
    STAT_DTYPE,
    Part,
    Payload,
    as_array,
    as_layer_ids,
    check_announced,
    check_fixed,
    fail_size,
    field_codes,
    layer_table,
    pad_to_8,
    padded,
    zero_padded,
)
from ._wire import HEADER_SIZE, MAX_LAYERS, MsgType

P = HEADER_SIZE  # payload offset inside the frame

# OPTIMIZER_STATS: layers[L] u16, pad; update_ratio[L], grad_norm[L], v_below_g2[L] f32, pad.
OPTIMIZER_FIXED = struct.Struct("<HHI")
OPTIMIZER_FIELDS = ("layer_count", "reserved", "reserved")

assert len(field_codes(OPTIMIZER_FIXED)) == len(OPTIMIZER_FIELDS) and OPTIMIZER_FIXED.size == 8


@dataclass(frozen=True, slots=True, eq=False)
class OptimizerStats:
    """OPTIMIZER_STATS: what one optimizer step did to each block, ``[L]`` each.

    ``update_ratio[i]``: L2 norm of the step's parameter update over the L2 norm of the
    parameters before it, in block ``layers[i]``; ``grad_norm[i]``: L2 norm of the gradients the
    optimizer used; ``v_below_g2[i]``: for Adam-family optimizers, the fraction of parameters
    whose second-moment estimate (before the step) is below the squared gradient, NaN otherwise.
    """

    TYPE: ClassVar[MsgType] = MsgType.OPTIMIZER_STATS

    layers: npt.NDArray[np.uint16]
    update_ratio: npt.NDArray[np.float32]
    grad_norm: npt.NDArray[np.float32]
    v_below_g2: npt.NDArray[np.float32]


def encode_optimizer_stats(m: OptimizerStats) -> Payload:
    """OPTIMIZER_STATS payload: its size and the pieces to join."""
    layers = as_layer_ids(m.layers, "OPTIMIZER_STATS layers")
    shape = (len(layers),)
    columns = [
        as_array(getattr(m, name), STAT_DTYPE, shape, f"OPTIMIZER_STATS {name}")
        for name in ("update_ratio", "grad_norm", "v_below_g2")
    ]
    fixed = OPTIMIZER_FIXED.pack(len(layers), 0, 0)
    values = 12 * len(layers)
    parts: list[Part] = [
        fixed,
        zero_padded(layers.tobytes()),
        *(column.data for column in columns),
        pad_to_8(values),
    ]
    return OPTIMIZER_FIXED.size + padded(layers.nbytes) + padded(values), parts


def decode_optimizer_stats(frame: memoryview, size: int) -> OptimizerStats:
    """OPTIMIZER_STATS from a whole frame whose payload is ``size`` bytes."""
    check_fixed("OPTIMIZER_STATS", size, OPTIMIZER_FIXED.size)
    n_layers, _, _ = OPTIMIZER_FIXED.unpack_from(frame, P)
    check_announced("OPTIMIZER_STATS layer_count", n_layers, 1, MAX_LAYERS - 1)
    if size != 8 + padded(2 * n_layers) + padded(12 * n_layers):
        raise fail_size(
            "OPTIMIZER_STATS", size, f"8 + {padded(2 * n_layers)} + {padded(12 * n_layers)}"
        )
    layers, at = layer_table(frame, n_layers)
    ratio, norm, below = (
        np.frombuffer(frame, STAT_DTYPE, n_layers, at + 4 * n_layers * i) for i in range(3)
    )
    return OptimizerStats(layers, ratio, norm, below)
