"""Byte layouts of the v1 payloads: fixed parts as ``struct`` formats, arrays as numpy dtypes.

Offsets are relative to the payload start (frame offset 32). Every dtype is little-endian and
aligned, so ``numpy.frombuffer`` reads records in place.
"""

from __future__ import annotations

import re
import struct

import numpy as np

from ._wire import HIST_BINS, METRIC_NAME_SIZE, ProtocolError

# Each fixed part: its struct and its field names (named in encoder errors); arrays follow it.

HELLO_FIXED = struct.Struct("<HHBBHQII32sQ")  # then the name
HELLO_FIELDS = (
    "version_min",
    "version_max",
    "role",
    "auth",
    "name_len",
    "capabilities",
    "rank",
    "world_size",
    "auth_data",
    "reserved",
)
AUTH_DATA_SIZE = 32

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

CONTROL_FIXED = struct.Struct("<IIffIIII")
CONTROL_FIELDS = (
    "request_id",
    "fields",
    "threshold",
    "rate_hz",
    "site_kinds",
    "paused",
    "top_k",
    "threshold_mode",
)

ACK_FIXED = struct.Struct("<IIffIIIHH")  # then the error text
ACK_FIELDS = (
    "request_id",
    "status",
    "threshold",
    "rate_hz",
    "site_kinds",
    "paused",
    "top_k",
    "error_len",
    "threshold_mode",
)

PROBE_STATS_FIXED = struct.Struct("<IIQQQQQQQ")  # then the client records
PROBE_STATS_FIELDS = (
    "n_clients",
    "reserved",
    "frames_encoded",
    "frames_dropped",
    "queue_bytes",
    "queue_capacity",
    "probe_ns",
    "steps_sampled",
    "steps_seen",
)
PROBE_CLIENT_DTYPE = np.dtype(
    [
        ("client_id", "<u4"),
        ("reserved", "<u4"),
        ("frames_sent", "<u8"),
        ("frames_dropped", "<u8"),
        ("bytes_sent", "<u8"),
    ],
    align=True,
)

# CONTROL with BUDGET: 8 more bytes after the 32 (budget f32, reserved u32).
CONTROL_BUDGET = struct.Struct("<fI")  # CONTROL's 40-byte tail: budget, full_rank

PROBE_COST_FIXED = struct.Struct("<ffIIQQQ")
PROBE_COST_FIELDS = (
    "budget",
    "cost",
    "interval",
    "lens_interval",
    "step_ns",
    "stats_ns",
    "lens_ns",
)

ERROR_FIXED = struct.Struct("<IHH")  # then the text
ERROR_FIELDS = ("code", "text_len", "reserved")

GRAD_NORMS_FIXED = struct.Struct("<II")  # then norms[n_layers], zero-padded to 8
GRAD_NORMS_FIELDS = ("n_layers", "reserved")
NORM_DTYPE = np.dtype("<f4")

METRICS_FIXED = struct.Struct("<HHI")  # then count metric records
METRICS_FIELDS = ("count", "reserved", "reserved")
METRIC_DTYPE = np.dtype([("name", f"S{METRIC_NAME_SIZE}"), ("value", "<f8")], align=True)

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

# MOE_ROUTING: layers[L] u16, pad; tokens[L, E] u32; probs[L, E] f32; dropped[L] u32, pad.
MOE_FIXED = struct.Struct("<HHHH")
MOE_FIELDS = ("layer_count", "expert_count", "top_k", "reserved")

# OPTIMIZER_STATS: layers[L] u16, pad; update_ratio[L], grad_norm[L], v_below_g2[L] f32, pad.
OPTIMIZER_FIXED = struct.Struct("<HHI")
OPTIMIZER_FIELDS = ("layer_count", "reserved", "reserved")

LAYER_ID_DTYPE = np.dtype("<u2")
STAT_DTYPE = np.dtype("<f4")
COUNT_DTYPE = np.dtype("<u4")


def field_codes(layout: struct.Struct) -> list[str]:
    """The struct codes of ``layout``, one per field (``32s`` counts as one)."""
    return re.findall(r"\d*[a-zA-Z]", layout.format.lstrip("<"))


for _fixed, _names in (
    (HELLO_FIXED, HELLO_FIELDS),
    (META_FIXED, META_FIELDS),
    (SUMMARY_FIXED, SUMMARY_FIELDS),
    (SPARSE_FIXED, SPARSE_FIELDS),
    (CONTROL_FIXED, CONTROL_FIELDS),
    (ACK_FIXED, ACK_FIELDS),
    (PROBE_STATS_FIXED, PROBE_STATS_FIELDS),
    (ERROR_FIXED, ERROR_FIELDS),
    (GRAD_NORMS_FIXED, GRAD_NORMS_FIELDS),
    (METRICS_FIXED, METRICS_FIELDS),
    (ATTENTION_FIXED, ATTENTION_FIELDS),
    (HEAD_STATS_FIXED, HEAD_STATS_FIELDS),
    (RESIDUAL_FIXED, RESIDUAL_FIELDS),
    (MOE_FIXED, MOE_FIELDS),
    (OPTIMIZER_FIXED, OPTIMIZER_FIELDS),
    (PROBE_COST_FIXED, PROBE_COST_FIELDS),
):
    assert len(field_codes(_fixed)) == len(_names)
del _fixed, _names
assert HELLO_FIXED.size == 64
assert META_FIXED.size == 16 and SITE_DTYPE.itemsize == 32
assert SUMMARY_FIXED.size == 16 and SUMMARY_DTYPE.itemsize == 336
assert SUMMARY_DTYPE.fields is not None and SUMMARY_DTYPE.fields["hist"][1] == 80
assert SPARSE_FIXED.size == 16 and CONTROL_FIXED.size == 32 and ACK_FIXED.size == 32
assert PROBE_STATS_FIXED.size == 64 and PROBE_CLIENT_DTYPE.itemsize == 32
assert CONTROL_BUDGET.size == 8 and PROBE_COST_FIXED.size == 40
assert ERROR_FIXED.size == 8 and GRAD_NORMS_FIXED.size == 8
assert METRICS_FIXED.size == 8 and METRIC_DTYPE.itemsize == 32
assert ATTENTION_FIXED.size == HEAD_STATS_FIXED.size == 8 and PAIR_DTYPE.itemsize == 4
assert RESIDUAL_FIXED.size == MOE_FIXED.size == OPTIMIZER_FIXED.size == 8


def padded(n: int) -> int:
    """``n`` rounded up to a multiple of 8 (strings are zero-padded to keep fields aligned)."""
    return (n + 7) & ~7


def zero_padded(raw: bytes) -> bytes:
    """``raw`` with zeros up to ``padded(len(raw))``."""
    return raw + bytes(padded(len(raw)) - len(raw))


def encode_text(text: str, what: str, limit: int) -> bytes:
    """``text`` as UTF-8; ``ProtocolError`` naming ``what`` if it does not encode or is over
    ``limit`` bytes."""
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ProtocolError(f"{what} cannot be encoded as UTF-8 ({exc.reason})") from None
    if len(raw) > limit:
        raise ProtocolError(f"{what} is {len(raw)} bytes (limit {limit})")
    return raw


def decode_text(frame: memoryview, start: int, length: int, what: str) -> str:
    """The UTF-8 text at ``frame[start : start + length]``; ``ProtocolError`` naming ``what``."""
    try:
        return str(frame[start : start + length], "utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(
            f"{what} is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
