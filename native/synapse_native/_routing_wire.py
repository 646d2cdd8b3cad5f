"""The MoE routing lens's frame: MOE_ROUTING (18), layout and codec.

One step's router decisions per MoE block: assignments and mean router probability per expert,
and the assignments a capacity limit dropped. ``docs/PROTOCOL.md`` section 5.13 specifies the
bytes.
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
    check_count,
    check_fixed,
    fail_size,
    field_codes,
    flat_bytes,
    layer_table,
    pad_to_8,
    padded,
    zero_padded,
)
from ._wire import HEADER_SIZE, MAX_EXPERTS, MAX_LAYERS, MsgType

P = HEADER_SIZE  # payload offset inside the frame

# MOE_ROUTING: layers[L] u16, pad; tokens[L, E] u32; probs[L, E] f32; dropped[L] u32, pad.
MOE_FIXED = struct.Struct("<HHHH")
MOE_FIELDS = ("layer_count", "expert_count", "top_k", "reserved")
COUNT_DTYPE = np.dtype("<u4")

assert len(field_codes(MOE_FIXED)) == len(MOE_FIELDS) and MOE_FIXED.size == 8


@dataclass(frozen=True, slots=True, eq=False)
class MoeRouting:
    """MOE_ROUTING: one step's router decisions per MoE block.

    ``tokens[i, e]``: assignments to expert ``e`` of block ``layers[i]``; ``probs[i, e]``: its
    mean router probability; ``dropped[i]``: assignments dropped by a capacity limit.
    """

    TYPE: ClassVar[MsgType] = MsgType.MOE_ROUTING

    layers: npt.NDArray[np.uint16]
    tokens: npt.NDArray[np.uint32]
    probs: npt.NDArray[np.float32]
    dropped: npt.NDArray[np.uint32]
    top_k: int


def encode_moe_routing(m: MoeRouting) -> Payload:
    """MOE_ROUTING payload: its size and the pieces to join."""
    layers = as_layer_ids(m.layers, "MOE_ROUTING layers")
    n_experts = np.shape(m.tokens)[-1] if np.ndim(m.tokens) == 2 else 0
    check_count("MOE_ROUTING expert_count", n_experts, 1, MAX_EXPERTS)
    check_count("MOE_ROUTING top_k", m.top_k, 1, n_experts)
    shape = (len(layers), n_experts)
    tokens = as_array(m.tokens, COUNT_DTYPE, shape, "MOE_ROUTING tokens")
    probs = as_array(m.probs, STAT_DTYPE, shape, "MOE_ROUTING probs")
    dropped = as_array(m.dropped, COUNT_DTYPE, (len(layers),), "MOE_ROUTING dropped")
    fixed = MOE_FIXED.pack(len(layers), n_experts, int(m.top_k), 0)
    parts: list[Part] = [
        fixed,
        zero_padded(layers.tobytes()),
        flat_bytes(tokens),
        flat_bytes(probs),
        dropped.data,
        pad_to_8(dropped.nbytes),
    ]
    size = MOE_FIXED.size + padded(layers.nbytes) + tokens.nbytes + probs.nbytes
    return size + padded(dropped.nbytes), parts


def decode_moe_routing(frame: memoryview, size: int) -> MoeRouting:
    """MOE_ROUTING from a whole frame whose payload is ``size`` bytes."""
    check_fixed("MOE_ROUTING", size, MOE_FIXED.size)
    n_layers, n_experts, top_k, _ = MOE_FIXED.unpack_from(frame, P)
    check_announced("MOE_ROUTING layer_count", n_layers, 1, MAX_LAYERS - 1)
    check_announced("MOE_ROUTING expert_count", n_experts, 1, MAX_EXPERTS)
    check_announced("MOE_ROUTING top_k", top_k, 1, n_experts)
    cells = n_layers * n_experts
    if size != 8 + padded(2 * n_layers) + 8 * cells + padded(4 * n_layers):
        raise fail_size(
            "MOE_ROUTING",
            size,
            f"8 + {padded(2 * n_layers)} + 2 x {n_layers} x {n_experts} x 4 "
            f"+ {padded(4 * n_layers)}",
        )
    layers, at = layer_table(frame, n_layers)
    shape = (n_layers, n_experts)
    tokens = np.frombuffer(frame, COUNT_DTYPE, cells, at).reshape(shape)
    probs = np.frombuffer(frame, STAT_DTYPE, cells, at + 4 * cells).reshape(shape)
    dropped = np.frombuffer(frame, COUNT_DTYPE, n_layers, at + 8 * cells)
    return MoeRouting(layers, tokens, probs, dropped, top_k)
