"""The attention lens's frames: ATTENTION (16), RESIDUAL (17) and HEAD_STATS (19).

ATTENTION carries the softmax weights of sampled (layer, head) pairs over one sampled sequence
with its token strings; HEAD_STATS per-head entropy and largest logit; RESIDUAL the per-token
norm of the residual stream after each block. ``docs/PROTOCOL.md`` sections 5.11, 5.12 and
5.14 specify the bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from ._layout import (
    LAYER_ID_DTYPE,
    STAT_DTYPE,
    Part,
    Payload,
    as_array,
    as_layer_ids,
    check_announced,
    check_count,
    check_fixed,
    decode_text,
    encode_text,
    fail_size,
    field_codes,
    flat_bytes,
    layer_table,
    length_of,
    pack_fields,
    pad_to_8,
    padded,
    zero_padded,
)
from ._wire import (
    HEADER_SIZE,
    MAX_ATTENTION_PAIRS,
    MAX_HEADS,
    MAX_LAYERS,
    MAX_SAMPLED_TOKENS,
    MAX_TOKEN_BYTES,
    MsgType,
    ProtocolError,
)

P = HEADER_SIZE  # payload offset inside the frame

# ATTENTION: pairs[P] (u16 layer, u16 head), pad; token_lens[T] u16, token bytes, pad;
# weights[P, T, T] f16, pad.
ATTENTION_FIXED = struct.Struct("<HHI")
ATTENTION_FIELDS = ("token_count", "pair_count", "sequence")
PAIR_DTYPE = np.dtype([("layer", "<u2"), ("head", "<u2")])
TOKEN_LEN_DTYPE = np.dtype("<u2")
WEIGHT_DTYPE = np.dtype("<f2")

# HEAD_STATS: layers[L] u16, pad; entropy[L, H] f32; max_logit[L, H] f32.
HEAD_STATS_FIXED = struct.Struct("<HHHH")
HEAD_STATS_FIELDS = ("layer_count", "head_count", "tokens", "reserved")

# RESIDUAL: layers[L] u16, pad; norms[L, T] f32, pad.
RESIDUAL_FIXED = struct.Struct("<HHI")
RESIDUAL_FIELDS = ("layer_count", "token_count", "reserved")

assert len(field_codes(ATTENTION_FIXED)) == len(ATTENTION_FIELDS)
assert len(field_codes(HEAD_STATS_FIXED)) == len(HEAD_STATS_FIELDS)
assert len(field_codes(RESIDUAL_FIXED)) == len(RESIDUAL_FIELDS)
assert ATTENTION_FIXED.size == HEAD_STATS_FIXED.size == 8 and PAIR_DTYPE.itemsize == 4
assert RESIDUAL_FIXED.size == 8


@dataclass(frozen=True, slots=True, eq=False)
class AttentionPattern:
    """ATTENTION: softmax weights of sampled (layer, head) pairs over one sampled sequence.

    ``weights[p, q, k]`` is how much query token ``q`` attends to key token ``k`` in head
    ``heads[p]`` of block ``layers[p]``; causal, so entries with ``k > q`` are 0. ``tokens`` are
    the ``T`` token strings of batch row ``sequence``.
    """

    TYPE: ClassVar[MsgType] = MsgType.ATTENTION

    tokens: tuple[str, ...]
    layers: npt.NDArray[np.uint16]
    heads: npt.NDArray[np.uint16]
    weights: npt.NDArray[np.float16]
    sequence: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class HeadStats:
    """HEAD_STATS: per-head attention entropy (nats) and largest logit, ``[L, H]`` each.

    Row ``i`` belongs to block ``layers[i]``; ``tokens`` is how many query tokens were measured.
    """

    TYPE: ClassVar[MsgType] = MsgType.HEAD_STATS

    layers: npt.NDArray[np.uint16]
    entropy: npt.NDArray[np.float32]
    max_logit: npt.NDArray[np.float32]
    tokens: int


@dataclass(frozen=True, slots=True, eq=False)
class ResidualTokens:
    """RESIDUAL: per-token L2 norm of the residual stream after each block, ``norms[L, T]``."""

    TYPE: ClassVar[MsgType] = MsgType.RESIDUAL

    layers: npt.NDArray[np.uint16]
    norms: npt.NDArray[np.float32]


def encode_attention(m: AttentionPattern) -> Payload:
    """ATTENTION payload: its size and the pieces to join."""
    if isinstance(m.tokens, (str, bytes)) or not isinstance(m.tokens, Sequence):
        raise ProtocolError("ATTENTION tokens must be a sequence of strings")
    n_tokens = len(m.tokens)
    check_count("ATTENTION token_count", n_tokens, 1, MAX_SAMPLED_TOKENS)
    raws = []
    for i, token in enumerate(m.tokens):
        if not isinstance(token, str):
            raise ProtocolError(f"ATTENTION token {i} is {type(token).__name__}, not str")
        raws.append(encode_text(token, f"ATTENTION token {i}", MAX_TOKEN_BYTES))
    n_pairs = length_of(m.layers, "ATTENTION layers")
    check_count("ATTENTION pair_count", n_pairs, 1, MAX_ATTENTION_PAIRS)
    pairs = np.zeros(n_pairs, PAIR_DTYPE)
    pairs["layer"] = as_array(m.layers, LAYER_ID_DTYPE, (n_pairs,), "ATTENTION layers")
    pairs["head"] = as_array(m.heads, LAYER_ID_DTYPE, (n_pairs,), "ATTENTION heads")
    shape = (n_pairs, n_tokens, n_tokens)
    weights = as_array(m.weights, WEIGHT_DTYPE, shape, "ATTENTION weights")
    fixed_values = (n_tokens, n_pairs, m.sequence)
    fixed = pack_fields(ATTENTION_FIXED, "ATTENTION", ATTENTION_FIELDS, fixed_values)
    token_table = np.array([len(raw) for raw in raws], TOKEN_LEN_DTYPE).tobytes() + b"".join(raws)
    parts: list[Part] = [
        fixed,
        zero_padded(pairs.tobytes()),
        zero_padded(token_table),
        flat_bytes(weights),
        pad_to_8(weights.nbytes),
    ]
    size = ATTENTION_FIXED.size + padded(pairs.nbytes) + padded(len(token_table))
    return size + padded(weights.nbytes), parts


def encode_head_stats(m: HeadStats) -> Payload:
    """HEAD_STATS payload: its size and the pieces to join."""
    layers = as_layer_ids(m.layers, "HEAD_STATS layers")
    n_heads = np.shape(m.entropy)[-1] if np.ndim(m.entropy) == 2 else 0
    check_count("HEAD_STATS head_count", n_heads, 1, MAX_HEADS)
    check_count("HEAD_STATS tokens", m.tokens, 1, MAX_SAMPLED_TOKENS)
    shape = (len(layers), n_heads)
    entropy = as_array(m.entropy, STAT_DTYPE, shape, "HEAD_STATS entropy")
    max_logit = as_array(m.max_logit, STAT_DTYPE, shape, "HEAD_STATS max_logit")
    fixed = HEAD_STATS_FIXED.pack(len(layers), n_heads, int(m.tokens), 0)
    parts: list[Part] = [
        fixed,
        zero_padded(layers.tobytes()),
        flat_bytes(entropy),
        flat_bytes(max_logit),
    ]
    size = HEAD_STATS_FIXED.size + padded(layers.nbytes) + entropy.nbytes + max_logit.nbytes
    return size, parts


def encode_residual(m: ResidualTokens) -> Payload:
    """RESIDUAL payload: its size and the pieces to join."""
    layers = as_layer_ids(m.layers, "RESIDUAL layers")
    n_tokens = np.shape(m.norms)[-1] if np.ndim(m.norms) == 2 else 0
    check_count("RESIDUAL token_count", n_tokens, 1, MAX_SAMPLED_TOKENS)
    norms = as_array(m.norms, STAT_DTYPE, (len(layers), n_tokens), "RESIDUAL norms")
    fixed = RESIDUAL_FIXED.pack(len(layers), n_tokens, 0)
    parts: list[Part] = [
        fixed,
        zero_padded(layers.tobytes()),
        flat_bytes(norms),
        pad_to_8(norms.nbytes),
    ]
    return RESIDUAL_FIXED.size + padded(layers.nbytes) + padded(norms.nbytes), parts


def decode_attention(frame: memoryview, size: int) -> AttentionPattern:
    """ATTENTION from a whole frame whose payload is ``size`` bytes."""
    check_fixed("ATTENTION", size, ATTENTION_FIXED.size)
    n_tokens, n_pairs, sequence = ATTENTION_FIXED.unpack_from(frame, P)
    check_announced("ATTENTION token_count", n_tokens, 1, MAX_SAMPLED_TOKENS)
    check_announced("ATTENTION pair_count", n_pairs, 1, MAX_ATTENTION_PAIRS)
    pairs_at = P + ATTENTION_FIXED.size
    lengths_at = pairs_at + padded(4 * n_pairs)
    if size < lengths_at - P + 2 * n_tokens:
        raise fail_size("ATTENTION", size, f"at least 8 + {padded(4 * n_pairs)} + {2 * n_tokens}")
    lengths = np.frombuffer(frame, TOKEN_LEN_DTYPE, n_tokens, lengths_at)
    longest = int(lengths.max())
    if longest > MAX_TOKEN_BYTES:
        i = int(lengths.argmax())
        raise ProtocolError(f"ATTENTION token {i} is {longest} bytes (limit {MAX_TOKEN_BYTES})")
    text_len = int(lengths.sum())
    table_len = padded(2 * n_tokens + text_len)
    weights_len = padded(2 * n_pairs * n_tokens * n_tokens)
    if size != ATTENTION_FIXED.size + padded(4 * n_pairs) + table_len + weights_len:
        raise fail_size(
            "ATTENTION", size, f"8 + {padded(4 * n_pairs)} + {table_len} + {weights_len}"
        )
    text_at = lengths_at + 2 * n_tokens
    tokens = []
    for i, length in enumerate(lengths.tolist()):
        tokens.append(decode_text(frame, text_at, length, f"ATTENTION token {i}"))
        text_at += length
    pairs = np.frombuffer(frame, PAIR_DTYPE, n_pairs, pairs_at)
    weights_at = lengths_at + table_len
    count = n_pairs * n_tokens * n_tokens
    weights = np.frombuffer(frame, WEIGHT_DTYPE, count, weights_at)
    return AttentionPattern(
        tokens=tuple(tokens),
        layers=pairs["layer"],
        heads=pairs["head"],
        weights=weights.reshape(n_pairs, n_tokens, n_tokens),
        sequence=sequence,
    )


def decode_head_stats(frame: memoryview, size: int) -> HeadStats:
    """HEAD_STATS from a whole frame whose payload is ``size`` bytes."""
    check_fixed("HEAD_STATS", size, HEAD_STATS_FIXED.size)
    n_layers, n_heads, n_tokens, _ = HEAD_STATS_FIXED.unpack_from(frame, P)
    check_announced("HEAD_STATS layer_count", n_layers, 1, MAX_LAYERS - 1)
    check_announced("HEAD_STATS head_count", n_heads, 1, MAX_HEADS)
    check_announced("HEAD_STATS tokens", n_tokens, 1, MAX_SAMPLED_TOKENS)
    cells = n_layers * n_heads
    if size != 8 + padded(2 * n_layers) + 8 * cells:
        raise fail_size(
            "HEAD_STATS", size, f"8 + {padded(2 * n_layers)} + 2 x {n_layers} x {n_heads} x 4"
        )
    layers, at = layer_table(frame, n_layers)
    shape = (n_layers, n_heads)
    entropy = np.frombuffer(frame, STAT_DTYPE, cells, at).reshape(shape)
    max_logit = np.frombuffer(frame, STAT_DTYPE, cells, at + 4 * cells).reshape(shape)
    return HeadStats(layers, entropy, max_logit, n_tokens)


def decode_residual(frame: memoryview, size: int) -> ResidualTokens:
    """RESIDUAL from a whole frame whose payload is ``size`` bytes."""
    check_fixed("RESIDUAL", size, RESIDUAL_FIXED.size)
    n_layers, n_tokens, _ = RESIDUAL_FIXED.unpack_from(frame, P)
    check_announced("RESIDUAL layer_count", n_layers, 1, MAX_LAYERS - 1)
    check_announced("RESIDUAL token_count", n_tokens, 1, MAX_SAMPLED_TOKENS)
    cells = n_layers * n_tokens
    if size != 8 + padded(2 * n_layers) + padded(4 * cells):
        raise fail_size("RESIDUAL", size, f"8 + {padded(2 * n_layers)} + {padded(4 * cells)}")
    layers, at = layer_table(frame, n_layers)
    norms = np.frombuffer(frame, STAT_DTYPE, cells, at).reshape(n_layers, n_tokens)
    return ResidualTokens(layers, norms)
