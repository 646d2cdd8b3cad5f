"""Write ``protocol_v1.json``: golden frames of wire protocol v1, good and bad.

The frames are packed here field by field with ``struct``, straight from the tables of
``docs/PROTOCOL.md``; this script does not import the codec, so the vectors are a second,
independent reading of the specification. The tests only read the JSON (they never run this
script); rerun it only when the specification changes, and review the diff:

    python tests/vectors/make_protocol_vectors.py          # rewrite the JSON
    python tests/vectors/make_protocol_vectors.py --check  # fail if the JSON is stale

JSON conventions: a frame is a list of hex lines of 32 bytes each (the first line is the
header); other byte strings are hex; floats that JSON cannot spell are the strings "nan",
"inf" and "-inf"; a CONTROL field that is absent is null. Every float of an f32 field is exactly
representable as float32, and JSON spells f64 values (TRAINING_METRICS) exactly, so the decoded
values compare equal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import struct
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("protocol_v1.json")
TIMESTAMP = 1_700_000_000_123_456_789
NAN = float("nan")


def frame(msg_type: int, payload: bytes, **head: Any) -> bytes:
    """Header + payload; ``head`` may override any header field (``length`` included)."""
    return (
        struct.pack(
            "<4sHHIIQIHH",
            head.get("magic", b"SYNP"),
            head.get("version", 1),
            msg_type,
            head.get("length", len(payload)),
            head.get("seq", 0),
            head.get("timestamp_ns", TIMESTAMP),
            head.get("step", 0),
            head.get("rank", 0),
            head.get("flags", 0),
        )
        + payload
    )


def hex_lines(raw: bytes) -> list[str]:
    return [raw[i : i + 32].hex() for i in range(0, len(raw), 32)]


def pad8(raw: bytes) -> bytes:
    return raw + bytes(-len(raw) % 8)


# -- payloads, one function per message type ------------------------------------------------


def hello(
    role: int,
    name: str,
    caps: int,
    rank: int = 0,
    world: int = 1,
    auth: int = 0,
    auth_data: bytes = bytes(32),
    vmin: int = 1,
    vmax: int = 1,
    name_len: int | None = None,
    raw_name: bytes | None = None,
) -> bytes:
    encoded = name.encode() if raw_name is None else raw_name
    length = len(encoded) if name_len is None else name_len
    fixed = struct.pack("<HHBBH", vmin, vmax, role, auth, length)
    fixed += struct.pack("<QII", caps, rank, world) + auth_data + struct.pack("<Q", 0)
    assert len(fixed) == 64
    return fixed + pad8(encoded)


SITES = [  # site_id, layer, kind, name, neurons, rows, cols
    (0, 0, 1, "blocks.0.attn", 64, 8, 8),
    (1, 0, 2, "blocks.0.mlp", 256, 16, 16),
    (2, 1, 3, "blocks.1.resid", 96, 8, 12),
    (7, 1, 42, "blocks.1.ext", 10, 3, 4),
]


def model_meta(model: str, n_layers: int, sites: list[tuple[Any, ...]], **bend: int) -> bytes:
    """``bend`` overrides one table value, e.g. ``site0_layer=2`` or ``strings_len=60``."""
    strings = model.encode()
    table = b""
    for i, (site_id, layer, kind, name, neurons, rows, cols) in enumerate(sites):
        raw = name.encode()
        row = {
            "site_id": site_id,
            "layer": layer,
            "neurons": neurons,
            "rows": rows,
            "cols": cols,
            "kind": kind,
            "offset": len(strings),
            "name_len": len(raw),
        }
        for key, value in bend.items():
            if key.startswith(f"site{i}_"):
                row[key.removeprefix(f"site{i}_")] = value
        table += struct.pack(
            "<5IHHII",
            *(row[k] for k in ("site_id", "layer", "neurons", "rows", "cols", "kind")),
            0,
            row["offset"],
            row["name_len"],
        )
        strings += raw
    string_table = pad8(strings)
    fixed = struct.pack(
        "<4I",
        bend.get("n_sites", len(sites)),
        n_layers,
        bend.get("model_name_len", len(model.encode())),
        bend.get("strings_len", len(string_table)),
    )
    return fixed + table + string_table


def summary_record(r: dict[str, Any]) -> bytes:
    stats = [r[k] for k in ("mean", "std", "rms", "min", "max", "mean_abs", "skewness")]
    stats += [r[k] for k in ("kurtosis", "frac_zero", "frac_above", "threshold")]
    raw = struct.pack(
        "<IIQQQ", r["site_id"], r["flags"], r["count"], r["nan_count"], r["inf_count"]
    )
    raw += struct.pack("<11fI", *stats, 0) + struct.pack("<64f", *r["hist"])
    assert len(raw) == 336
    return raw


def summary_batch(
    records: list[dict[str, Any]], n_sites: int | None = None, bins: int = 64
) -> bytes:
    count = len(records) if n_sites is None else n_sites
    return struct.pack("<IHHQ", count, bins, 0, 0) + b"".join(map(summary_record, records))


def sparse(
    site_id: int, threshold: float, n_above: int, indices: list[int], values: list[float]
) -> bytes:
    n = len(indices)
    fixed = struct.pack("<IfII", site_id, threshold, n, n_above)
    return fixed + struct.pack(f"<{n}I", *indices) + struct.pack(f"<{n}f", *values)


CONTROL_BITS = {
    "threshold": 1,
    "rate_hz": 2,
    "site_kinds": 4,
    "paused": 8,
    "top_k": 16,
    "threshold_mode": 32,
    "budget": 64,
    "full_rank": 128,
}


def control(request_id: int, unknown_fields: int = 0, **present: Any) -> bytes:
    fields = unknown_fields
    for name in present:
        fields |= CONTROL_BITS[name]
    return struct.pack(
        "<IIffIIII",
        request_id,
        fields,
        present.get("threshold", 0.0),
        present.get("rate_hz", 0.0),
        present.get("site_kinds", 0),
        int(present.get("paused", 0)),
        present.get("top_k", 0),
        present.get("threshold_mode", 0),
    ) + (
        struct.pack("<fI", present.get("budget", 0.0), present.get("full_rank", 0))
        if "budget" in present or "full_rank" in present
        else b""
    )


def probe_cost(cost: dict[str, Any]) -> bytes:
    return struct.pack("<ffIIQQQ", *(cost[name] for name in COST))


def control_ack(
    request_id: int, status: int, state: dict[str, Any], error: str, error_len: int | None = None
) -> bytes:
    raw = error.encode()
    fixed = struct.pack(
        "<IIffIIIHH",
        request_id,
        status,
        state["threshold"],
        state["rate_hz"],
        state["site_kinds"],
        int(state["paused"]),
        state["top_k"],
        len(raw) if error_len is None else error_len,
        state.get("threshold_mode", 0),
    )
    return fixed + pad8(raw)


def probe_stats(
    counters: dict[str, int], clients: list[dict[str, int]], n: int | None = None
) -> bytes:
    order = [*COUNTERS]
    raw = struct.pack("<II7Q", len(clients) if n is None else n, 0, *(counters[k] for k in order))
    for c in clients:
        raw += struct.pack(
            "<IIQQQ", c["client_id"], 0, c["frames_sent"], c["frames_dropped"], c["bytes_sent"]
        )
    return raw


def error(code: int, text: str, raw: bytes | None = None) -> bytes:
    encoded = text.encode() if raw is None else raw
    return struct.pack("<IHH", code, len(encoded), 0) + pad8(encoded)


def grad_norms(
    norms: list[float], n: int | None = None, reserved: int = 0, padding: bytes | None = None
) -> bytes:
    """BLOCK_GRAD_NORMS; ``padding`` replaces the zero bytes that pad the norms to 8."""
    raw = struct.pack(f"<{len(norms)}f", *norms)
    pad = bytes(-len(raw) % 8) if padding is None else padding
    return struct.pack("<II", len(norms) if n is None else n, reserved) + raw + pad


def metrics(
    entries: list[tuple[bytes | str, float]],
    count: int | None = None,
    reserved: tuple[int, int] = (0, 0),
) -> bytes:
    """TRAINING_METRICS; a ``bytes`` name goes on the wire as given (NUL-padded to 24)."""
    raw = struct.pack("<HHI", len(entries) if count is None else count, *reserved)
    for name, value in entries:
        encoded = name.encode() if isinstance(name, str) else name
        assert len(encoded) <= 24
        raw += encoded + bytes(24 - len(encoded)) + struct.pack("<d", value)
    return raw


def attention(
    tokens: list[str | bytes],
    pairs: list[tuple[int, int]],
    weights: list[list[list[float]]],
    sequence: int = 0,
    counts: tuple[int, int] | None = None,
    lens: list[int] | None = None,
    padding: int = 0,
) -> bytes:
    """ATTENTION; ``counts`` overrides (T, P), ``lens`` the token lengths, ``padding`` the pads."""
    raws = [t.encode() if isinstance(t, str) else t for t in tokens]
    lengths = [len(raw) for raw in raws] if lens is None else lens
    n_tokens, n_pairs = (len(raws), len(pairs)) if counts is None else counts
    fill = bytes([padding])
    pair_bytes = b"".join(struct.pack("<HH", layer, head) for layer, head in pairs)
    table = struct.pack(f"<{len(lengths)}H", *lengths) + b"".join(raws)
    flat = [x for pair in weights for row in pair for x in row]
    packed = struct.pack(f"<{len(flat)}e", *flat)
    parts = [struct.pack("<HHI", n_tokens, n_pairs, sequence)]
    for raw in (pair_bytes, table, packed):
        parts.append(raw + fill * (-len(raw) % 8))
    return b"".join(parts)


def layer_ids(layers: list[int], padding: int = 0) -> bytes:
    raw = struct.pack(f"<{len(layers)}H", *layers)
    return raw + bytes([padding]) * (-len(raw) % 8)


def head_stats(
    layers: list[int],
    entropy: list[list[float]],
    max_logit: list[list[float]],
    tokens: int,
    counts: tuple[int, int] | None = None,
    reserved: int = 0,
) -> bytes:
    """HEAD_STATS; ``counts`` overrides (L, H)."""
    n_layers, n_heads = (
        (len(layers), len(entropy[0]) if entropy else 0) if counts is None else counts
    )
    cells = [x for row in entropy for x in row] + [x for row in max_logit for x in row]
    fixed = struct.pack("<HHHH", n_layers, n_heads, tokens, reserved)
    return fixed + layer_ids(layers) + struct.pack(f"<{len(cells)}f", *cells)


def residual(layers: list[int], norms: list[list[float]], n_tokens: int | None = None) -> bytes:
    flat = [x for row in norms for x in row]
    count = len(norms[0]) if n_tokens is None else n_tokens
    fixed = struct.pack("<HHI", len(layers), count, 0)
    return fixed + layer_ids(layers) + pad8(struct.pack(f"<{len(flat)}f", *flat))


def optimizer_stats(layers: list[int], *columns: list[float], n_layers: int | None = None) -> bytes:
    """OPTIMIZER_STATS: update_ratio, grad_norm, v_below_g2; ``n_layers`` overrides L."""
    flat = [x for column in columns for x in column]
    fixed = struct.pack("<HHI", len(layers) if n_layers is None else n_layers, 0, 0)
    return fixed + layer_ids(layers) + pad8(struct.pack(f"<{len(flat)}f", *flat))


def moe_routing(
    layers: list[int],
    tokens: list[list[int]],
    probs: list[list[float]],
    dropped: list[int],
    top_k: int,
    n_experts: int | None = None,
    reserved: int = 0,
    padding: int = 0,
) -> bytes:
    """MOE_ROUTING; ``padding`` fills the pad bytes, ``n_experts`` overrides E."""
    count = len(tokens[0]) if n_experts is None else n_experts
    fixed = struct.pack("<HHHH", len(layers), count, top_k, reserved)
    flat_tokens = [x for row in tokens for x in row]
    flat_probs = [x for row in probs for x in row]
    body = struct.pack(f"<{len(flat_tokens)}I", *flat_tokens)
    body += struct.pack(f"<{len(flat_probs)}f", *flat_probs)
    tail = struct.pack(f"<{len(dropped)}I", *dropped)
    tail += bytes([padding]) * (-len(tail) % 8)
    return fixed + layer_ids(layers, padding) + body + tail


# -- the vectors -------------------------------------------------------------------------------


def rank_skew(world_size: int, rows: list[dict[str, Any]], n: int | None = None) -> bytes:
    """RANK_SKEW (docs/PROTOCOL.md 5.16): head, then 24-byte records."""
    raw = struct.pack("<IHH", len(rows) if n is None else n, world_size, 0)
    for r in rows:
        raw += struct.pack(
            "<IHBBffff",
            r["site_id"],
            r["rank"],
            r["statistic"],
            r["flags"],
            *(float(r[k]) for k in ("z", "value", "others_mean", "others_std")),
        )
    return raw


def job_status(s: dict[str, Any], text_len: int | None = None) -> bytes:
    """JOB_STATUS (docs/PROTOCOL.md 5.17): 32-byte head, then the text padded to 8."""
    text = s["text"].encode()
    head = struct.pack(
        "<HBBHHIIQHHI",
        s["world_size"],
        s["state"],
        0,
        s["serve_rank"],
        s["rank"],
        s["last_step"],
        s["ranks_reporting"],
        s["since_ns"],
        len(text) if text_len is None else text_len,
        s.get("full_rank", 65535),
        0,
    )
    return head + pad8(text)


def capture_request(request_id: int, site_ids: list[int], n: int | None = None) -> bytes:
    """CAPTURE_REQUEST (docs/PROTOCOL.md 5.18): head, then u32 site ids padded to 8."""
    head = struct.pack("<IHH", request_id, len(site_ids) if n is None else n, 0)
    return head + pad8(struct.pack(f"<{len(site_ids)}I", *site_ids))


def capture_done(d: dict[str, Any], path_len: int | None = None) -> bytes:
    """CAPTURE_DONE (docs/PROTOCOL.md 5.19): 32-byte head, path and text each padded to 8."""
    path, text = d["path"].encode(), d["text"].encode()
    head = struct.pack(
        "<IBBHQQHHI",
        *(d["request_id"], d["status"], 0, d["sites"], d["step"], d["size"]),
        *(len(path) if path_len is None else path_len, len(text), 0),
    )
    return head + pad8(path) + pad8(text)


def action_list(names: list[str], count: int | None = None) -> bytes:
    """ACTION_LIST (docs/PROTOCOL.md 5.20): head, then the names joined by line feeds."""
    text = "\n".join(names).encode()
    return struct.pack("<HHI", len(names) if count is None else count, len(text), 0) + pad8(text)


def action_request(request_id: int, name: str, name_len: int | None = None) -> bytes:
    """ACTION_REQUEST (docs/PROTOCOL.md 5.21): head, then the name padded to 8."""
    raw = name.encode()
    return struct.pack("<IHH", request_id, len(raw) if name_len is None else name_len, 0) + pad8(
        raw
    )


def action_result(request_id: int, status: int, step: int, text: str) -> bytes:
    """ACTION_RESULT (docs/PROTOCOL.md 5.22): 16-byte head, then the text padded to 8."""
    raw = text.encode()
    return struct.pack("<IBBHQ", request_id, status, 0, len(raw), step) + pad8(raw)


CAPTURE_WRITTEN = {
    "request_id": 7,
    "status": 0,
    "step": 1200,
    "sites": 2,
    "size": 4_194_560,
    "path": "/runs/gpt/synapse-captures/gpt-step00001200-r7.safetensors",
    "text": "",
}
CAPTURE_REFUSED = {
    "request_id": 8,
    "status": 1,
    "step": 0,
    "sites": 0,
    "size": 0,
    "path": "",
    "text": "capture is off: attach(model, capture=True) to allow it",
}


def mac(token: str, challenge: bytes) -> bytes:
    return hmac.new(token.encode(), b"synapse-auth-v1" + challenge, hashlib.sha256).digest()


CHALLENGE = bytes(range(32))
TOKEN = "correct horse battery staple"


def hist(**bins: float) -> list[float]:
    values = [0.0] * 64
    for key, value in bins.items():
        values[int(key.removeprefix("b"))] = value
    return values


RECORD_FINITE = {
    "site_id": 0,
    "flags": 0,
    "count": 4096,
    "nan_count": 0,
    "inf_count": 0,
    "mean": 0.5,
    "std": 1.25,
    "rms": 1.5,
    "min": -4.0,
    "max": 8.0,
    "mean_abs": 1.0,
    "skewness": 0.25,
    "kurtosis": -0.5,
    "frac_zero": 0.125,
    "frac_above": 0.0625,
    "threshold": 2.0,
    "hist": hist(b30=0.25, b31=0.125, b32=0.125, b33=0.5),
}
RECORD_NONE_FINITE = {
    "site_id": 1,
    "flags": 1,
    "count": 16,
    "nan_count": 12,
    "inf_count": 4,
    **dict.fromkeys(("mean", "std", "rms", "min", "max", "mean_abs", "skewness", "kurtosis"), NAN),
    "frac_zero": NAN,
    "frac_above": NAN,
    "threshold": 2.0,
    "hist": hist(),
}
STATE = {"threshold": 0.5, "rate_hz": 10.0, "site_kinds": 15, "paused": False, "top_k": 1024}
COUNTERS = {
    "frames_encoded": 1000,
    "frames_dropped": 3,
    "queue_bytes": 4096,
    "queue_capacity": 1 << 20,
    "probe_ns": 123_456_789,
    "steps_sampled": 100,
    "steps_seen": 1200,
}
COST = {
    "budget": 0.015625,
    "cost": 0.0068359375,
    "interval": 8,
    "lens_interval": 32,
    "step_ns": 139_000_000,
    "stats_ns": 7_250_000,
    "lens_ns": 12_500_000,
}
CLIENTS = [
    {"client_id": 1, "frames_sent": 990, "frames_dropped": 2, "bytes_sent": 1_000_000},
    {"client_id": 2, "frames_sent": 997, "frames_dropped": 0, "bytes_sent": 1_100_000},
]
NORMS = [0.75, NAN, 3.5]
METRICS = [("loss", 2.8125), ("lr", 0.0003), ("grad_norm", 1.0000000000000002)]
LONG_NAME = "train/loss_ema_0.99_full"  # exactly 24 bytes: no NUL at all
TOKENS = ["The", " café", "", "→"]  # 3 ASCII bytes, multi-byte UTF-8, empty, 3-byte arrow
PAIRS = [(0, 1), (2, 3)]
WEIGHTS = [
    [[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.5, 0.0], [0.125, 0.125, 0.25, 0.5]],
    [[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.75, 0.0, 0.0, 0.25]],
]
ENTROPY = [[0.5, 1.25, 2.0], [0.0, 3.5, NAN]]
MAX_LOGIT = [[4.0, 8.5, -1.0], [12.0, float("inf"), 0.25]]
OPT_RATIO = [0.001, 0.0025, 0.5]
OPT_NORM = [0.25, 1.5, 40.0]
OPT_BELOW = [0.125, 0.0, 1.0]
RESIDUAL_NORMS = [[40.0, 1.5, 1.25], [80.0, 2.5, 2.0], [160.0, 4.0, 3.5]]
MOE_TOKENS = [[10, 6, 0, 16], [8, 8, 8, 8]]
MOE_PROBS = [[0.375, 0.25, 0.0625, 0.3125], [0.25, 0.25, 0.25, 0.25]]
SKEW_ROWS = [
    {"site_id": 7, "rank": 37, "statistic": 0, "flags": 0, "z": 9.125, "value": 12.5}
    | {"others_mean": 1.25, "others_std": 1.234375},
    {"site_id": 7, "rank": 3, "statistic": 1, "flags": 1, "z": -2.5, "value": 0.5}
    | {"others_mean": 1.0, "others_std": 0.25},
    {"site_id": 9, "rank": 65535, "statistic": 0, "flags": 0, "z": "nan", "value": "nan"}
    | {"others_mean": "nan", "others_std": "nan"},
]
JOB_LOST = {
    "world_size": 64,
    "state": 1,
    "serve_rank": 0,
    "rank": 37,
    "last_step": 1200,
    "ranks_reporting": 63,
    "since_ns": TIMESTAMP,
    "text": "rank 37 stopped answering (a reduction took longer than 60 s)",
}
JOB_RUNNING = {
    "world_size": 4,
    "state": 0,
    "serve_rank": 1,
    "rank": 65535,
    "last_step": 7,
    "ranks_reporting": 4,
    "since_ns": 0,
    "text": "",
    "full_rank": 2,
}
VERSION_TEXT = "no common protocol version: peer speaks 2..3, this build speaks 1..1"


def site_json(site: tuple[Any, ...]) -> dict[str, Any]:
    keys = ("site_id", "layer", "kind", "name", "neurons", "grid_rows", "grid_cols")
    return dict(zip(keys, site, strict=True))


def good_vectors() -> list[dict[str, Any]]:
    v: list[dict[str, Any]] = []

    def add(name: str, msg_type: int, payload: bytes, message: dict[str, Any], **head: int) -> None:
        fields = {"seq": 0, "timestamp_ns": TIMESTAMP, "step": 0, "rank": 0, "flags": 0} | head
        raw = frame(msg_type, payload, **head)
        v.append(
            {
                "name": name,
                "hex": hex_lines(raw),
                "header": {"type": msg_type, "payload_length": len(payload), **fields},
                "message": message,
            }
        )

    hello_defaults = {"rank": 0, "world_size": 1, "auth": 0, "auth_data": bytes(32).hex()}
    hello_defaults |= {"version_min": 1, "version_max": 1}
    add(
        "hello_trainer_loopback",
        1,
        hello(1, "synapse-probe/0.1.0", 23),
        {"type": "HELLO", "role": 1, "name": "synapse-probe/0.1.0", "capabilities": 23}
        | hello_defaults,
    )
    add(
        "hello_trainer_hmac_challenge",
        1,
        hello(1, "synapse-probe/0.1.0", 31, rank=3, world=8, auth=1, auth_data=CHALLENGE),
        {"type": "HELLO", "role": 1, "name": "synapse-probe/0.1.0", "capabilities": 31}
        | hello_defaults
        | {"rank": 3, "world_size": 8, "auth": 1, "auth_data": CHALLENGE.hex()},
        rank=3,
    )
    answer = mac(TOKEN, CHALLENGE)
    add(
        "hello_viewer_hmac_answer",
        1,
        hello(2, "synapse-desktop/0.1.0", 4, auth=1, auth_data=answer),
        {"type": "HELLO", "role": 2, "name": "synapse-desktop/0.1.0", "capabilities": 4}
        | hello_defaults
        | {"auth": 1, "auth_data": answer.hex()},
    )
    add(
        "hello_future_peer",
        1,
        hello(2, "viewer/9", (1 << 40) | 1, vmin=1, vmax=3, auth=7),
        {"type": "HELLO", "role": 2, "name": "viewer/9", "capabilities": (1 << 40) | 1}
        | hello_defaults
        | {"auth": 7, "version_max": 3},
    )
    add(
        "model_meta_four_sites",
        2,
        model_meta("tiny-gpt", 2, SITES),
        {"type": "MODEL_META", "model_name": "tiny-gpt", "n_layers": 2}
        | {"sites": [site_json(s) for s in SITES]},
    )
    unicode_site = [(3, 0, 0, "блок.0/注意", 1, 1, 1)]
    add(
        "model_meta_utf8_names",
        2,
        model_meta("модель-λ", 1, unicode_site),
        {"type": "MODEL_META", "model_name": "модель-λ", "n_layers": 1}
        | {"sites": [site_json(s) for s in unicode_site]},
    )
    add(
        "model_meta_empty",
        2,
        model_meta("", 0, []),
        {"type": "MODEL_META", "model_name": "", "n_layers": 0, "sites": []},
    )
    add(
        "summary_batch_two_sites",
        3,
        summary_batch([RECORD_FINITE, RECORD_NONE_FINITE]),
        {"type": "LAYER_SUMMARY_BATCH", "records": [RECORD_FINITE, RECORD_NONE_FINITE]},
        seq=17,
        step=1200,
        rank=1,
    )
    add(
        "summary_batch_empty",
        3,
        summary_batch([]),
        {"type": "LAYER_SUMMARY_BATCH", "records": []},
        seq=0xFFFF_FFFF,
        step=7,
    )
    add(
        "sparse_three_neurons_end_of_step",
        4,
        sparse(1, 0.5, 10, [3, 17, 200], [0.75, 1.5, 2.25]),
        {"type": "SPARSE_ACTIVATIONS", "site_id": 1, "threshold": 0.5, "n_above": 10}
        | {"indices": [3, 17, 200], "values": [0.75, 1.5, 2.25]},
        seq=18,
        step=1200,
        rank=1,
        flags=1,
    )
    add(
        "sparse_empty",
        4,
        sparse(2, 4.0, 0, [], []),
        {"type": "SPARSE_ACTIVATIONS", "site_id": 2, "threshold": 4.0, "n_above": 0}
        | {"indices": [], "values": []},
        seq=19,
        step=1200,
    )
    full: dict[str, Any] = {
        "threshold": 0.25,
        "rate_hz": 10.0,
        "site_kinds": 14,
        "paused": False,
        "top_k": 256,
    }
    add(
        "control_all_fields",
        5,
        control(7, **full),
        {"type": "CONTROL", "request_id": 7, **full, "unknown_fields": 0},
        seq=1,
    )
    none = dict.fromkeys(full)
    add(
        "control_threshold_and_pause",
        5,
        control(8, threshold=1.5, paused=True),
        {"type": "CONTROL", "request_id": 8, **none, "threshold": 1.5, "paused": True}
        | {"unknown_fields": 0},
        seq=2,
    )
    add(
        "control_unknown_field",
        5,
        control(9, unknown_fields=0x100, top_k=8),
        {"type": "CONTROL", "request_id": 9, **none, "top_k": 8, "unknown_fields": 0x100},
        seq=3,
    )
    add(
        "control_threshold_mode",
        5,
        control(10, threshold=2.5, threshold_mode=1),
        {"type": "CONTROL", "request_id": 10, **none, "threshold": 2.5, "threshold_mode": 1}
        | {"unknown_fields": 0},
        seq=4,
    )
    add(
        "control_budget",
        5,
        control(11, rate_hz=5.0, budget=0.015625),
        {"type": "CONTROL", "request_id": 11, **none, "rate_hz": 5.0, "budget": 0.015625}
        | {"unknown_fields": 0},
        seq=5,
    )
    add(
        "control_full_rank",
        5,
        control(12, full_rank=3),
        {"type": "CONTROL", "request_id": 12, **none, "full_rank": 3, "budget": None}
        | {"unknown_fields": 0},
        seq=6,
    )
    add(
        "control_full_rank_none_and_budget",
        5,
        control(13, budget=0.5, full_rank=0xFFFFFFFF),
        {"type": "CONTROL", "request_id": 13, **none, "budget": 0.5, "full_rank": 0xFFFFFFFF}
        | {"unknown_fields": 0},
        seq=7,
    )
    add(
        "control_ack_threshold_mode",
        6,
        control_ack(10, 0, STATE | {"threshold": 0.015625, "threshold_mode": 2}, ""),
        {"type": "CONTROL_ACK", "request_id": 10, "applied": True, "error": ""}
        | {"state": STATE | {"threshold": 0.015625, "threshold_mode": 2}},
    )
    add(
        "control_ack_announcement",
        6,
        control_ack(0, 0, STATE, ""),
        {"type": "CONTROL_ACK", "request_id": 0, "applied": True, "state": STATE, "error": ""},
    )
    rejection = "rate_hz must be in (0, 1000]"
    add(
        "control_ack_rejected",
        6,
        control_ack(7, 1, STATE, rejection),
        {"type": "CONTROL_ACK", "request_id": 7, "applied": False, "state": STATE}
        | {"error": rejection},
    )
    add(
        "probe_stats_two_clients",
        7,
        probe_stats(COUNTERS, CLIENTS),
        {"type": "PROBE_STATS", **COUNTERS, "clients": CLIENTS},
        seq=20,
        step=1200,
    )
    add(
        "probe_stats_no_client",
        7,
        probe_stats(COUNTERS, []),
        {"type": "PROBE_STATS", **COUNTERS, "clients": []},
        seq=21,
    )
    add(
        "rank_skew_three_records_job_end_of_step",
        36,
        rank_skew(64, SKEW_ROWS),
        {"type": "RANK_SKEW", "world_size": 64, "records": SKEW_ROWS},
        seq=30,
        step=1200,
        flags=5,
    )
    add(
        "rank_skew_empty",
        36,
        rank_skew(2, []),
        {"type": "RANK_SKEW", "world_size": 2, "records": []},
        seq=31,
        flags=4,
    )
    add(
        "job_status_rank_lost",
        37,
        job_status(JOB_LOST),
        {"type": "JOB_STATUS", **JOB_LOST},
        seq=32,
        step=1200,
    )
    add(
        "job_status_running",
        37,
        job_status(JOB_RUNNING),
        {"type": "JOB_STATUS", **JOB_RUNNING},
        seq=33,
        step=7,
        rank=1,
    )
    add(
        "probe_cost",
        20,
        probe_cost(COST),
        {"type": "PROBE_COST", **COST},
        seq=27,
        step=1200,
    )
    add(
        "error_version",
        8,
        error(1, VERSION_TEXT),
        {"type": "ERROR", "code": 1, "text": VERSION_TEXT},
    )
    add(
        "error_auth_utf8",
        8,
        error(2, "Zugriff verweigert — Token ungültig"),
        {"type": "ERROR", "code": 2, "text": "Zugriff verweigert — Token ungültig"},
    )
    add("error_unknown_code", 8, error(77, ""), {"type": "ERROR", "code": 77, "text": ""})
    add(
        "block_grad_norms_three_layers_nan_padded",
        9,
        grad_norms(NORMS),
        {"type": "BLOCK_GRAD_NORMS", "norms": NORMS},
        seq=22,
        step=1200,
        rank=1,
    )
    add(
        "block_grad_norms_two_layers_end_of_step",
        9,
        grad_norms([0.125, float("inf")]),
        {"type": "BLOCK_GRAD_NORMS", "norms": [0.125, float("inf")]},
        seq=23,
        step=1200,
        flags=1,
    )
    add(
        "block_grad_norms_empty",
        9,
        grad_norms([]),
        {"type": "BLOCK_GRAD_NORMS", "norms": []},
        seq=24,
        step=3,
    )
    add(
        "training_metrics_three_values",
        32,
        metrics(METRICS),
        {"type": "TRAINING_METRICS", "values": dict(METRICS)},
        seq=26,
        step=1200,
        rank=1,
    )
    special = [("损失", NAN), ("grad_norm", float("inf")), (LONG_NAME, float("-inf")), ("n", -0.0)]
    add(
        "training_metrics_nan_inf_utf8_full_name",
        32,
        metrics(special),
        {"type": "TRAINING_METRICS", "values": dict(special)},
        seq=27,
        step=0xFFFF_FFFF,
    )
    add(
        "training_metrics_empty",
        32,
        metrics([]),
        {"type": "TRAINING_METRICS", "values": {}},
        seq=28,
        step=3,
    )
    add(  # replayed from the trainer's backlog (flag bit 1), the last frame of its step
        "training_metrics_backlog_end_of_step",
        32,
        metrics([("loss", 2.5)]),
        {"type": "TRAINING_METRICS", "values": {"loss": 2.5}},
        seq=29,
        step=41200,
        flags=3,
    )
    add(
        "attention_two_pairs_utf8_and_empty_tokens",
        16,
        attention(TOKENS, PAIRS, WEIGHTS, sequence=3),
        {"type": "ATTENTION", "tokens": TOKENS, "layers": [0, 2], "heads": [1, 3]}
        | {"weights": WEIGHTS, "sequence": 3},
        seq=30,
        step=1200,
    )
    add(
        "attention_one_token_nan_padded",
        16,
        attention(["日本"], [(7, 15)], [[[NAN]]]),
        {"type": "ATTENTION", "tokens": ["日本"], "layers": [7], "heads": [15]}
        | {"weights": [[[NAN]]], "sequence": 0},
        seq=31,
        step=12,
    )
    add(
        "head_stats_two_layers_three_heads",
        19,
        head_stats([0, 1], ENTROPY, MAX_LOGIT, tokens=4),
        {"type": "HEAD_STATS", "layers": [0, 1], "entropy": ENTROPY, "max_logit": MAX_LOGIT}
        | {"tokens": 4},
        seq=32,
        step=1200,
    )
    add(
        "head_stats_one_head_128_tokens",
        19,
        head_stats([9], [[2.0]], [[3.0]], tokens=128),
        {"type": "HEAD_STATS", "layers": [9], "entropy": [[2.0]], "max_logit": [[3.0]]}
        | {"tokens": 128},
        seq=33,
        step=12,
    )
    add(
        "residual_three_layers_three_tokens_padded",
        17,
        residual([0, 1, 2], RESIDUAL_NORMS),
        {"type": "RESIDUAL", "layers": [0, 1, 2], "norms": RESIDUAL_NORMS},
        seq=34,
        step=1200,
    )
    add(
        "moe_routing_two_layers_top2",
        18,
        moe_routing([1, 3], MOE_TOKENS, MOE_PROBS, [0, 3], top_k=2),
        {"type": "MOE_ROUTING", "layers": [1, 3], "tokens": MOE_TOKENS, "probs": MOE_PROBS}
        | {"dropped": [0, 3], "top_k": 2},
        seq=35,
        step=1200,
        flags=1,
    )
    add(
        "moe_routing_one_layer_all_experts_padded",
        18,
        moe_routing([0], [[5, 0, 5]], [[0.5, 0.0, 0.5]], [7], top_k=3),
        {"type": "MOE_ROUTING", "layers": [0], "tokens": [[5, 0, 5]], "probs": [[0.5, 0.0, 0.5]]}
        | {"dropped": [7], "top_k": 3},
        seq=36,
        step=12,
    )
    add(
        "optimizer_stats_three_blocks_padded",
        28,
        optimizer_stats([0, 1, 2], OPT_RATIO, OPT_NORM, OPT_BELOW),
        {"type": "OPTIMIZER_STATS", "layers": [0, 1, 2], "update_ratio": OPT_RATIO}
        | {"grad_norm": OPT_NORM, "v_below_g2": OPT_BELOW},
        seq=39,
        step=1200,
    )
    add(
        "optimizer_stats_one_block_not_adam",
        28,
        optimizer_stats([5], [0.5], [float("inf")], [NAN]),
        {"type": "OPTIMIZER_STATS", "layers": [5], "update_ratio": [0.5]}
        | {"grad_norm": [float("inf")], "v_below_g2": [NAN]},
        seq=40,
        step=12,
    )
    add(
        "capture_request_three_sites_padded",
        29,
        capture_request(7, [0, 3, 65536]),
        {"type": "CAPTURE_REQUEST", "request_id": 7, "site_ids": [0, 3, 65536]},
    )
    add(
        "capture_done_written",
        30,
        capture_done(CAPTURE_WRITTEN),
        {"type": "CAPTURE_DONE", **CAPTURE_WRITTEN},
        step=1200,
    )
    add(
        "capture_done_refused",
        30,
        capture_done(CAPTURE_REFUSED),
        {"type": "CAPTURE_DONE", **CAPTURE_REFUSED},
        step=5,
    )
    add(
        "action_list_two",
        31,
        action_list(["checkpoint", "lr x0.5"]),
        {"type": "ACTION_LIST", "names": ["checkpoint", "lr x0.5"]},
    )
    add("action_list_empty", 31, action_list([]), {"type": "ACTION_LIST", "names": []})
    add(
        "action_request_checkpoint",
        33,
        action_request(12, "checkpoint"),
        {"type": "ACTION_REQUEST", "request_id": 12, "name": "checkpoint"},
    )
    add(
        "action_result_failed",
        34,
        action_result(12, 1, 1201, "OSError: [Errno 28] No space left on device"),
        {"type": "ACTION_RESULT", "request_id": 12, "status": 1, "step": 1201}
        | {"text": "OSError: [Errno 28] No space left on device"},
        step=1201,
    )
    bent_moe = moe_routing(
        [0], [[5, 0, 5]], [[0.5, 0.0, 0.5]], [7], top_k=3, reserved=0xBEEF, padding=0xFF
    )
    v.append(
        {
            "name": "moe_routing_reserved_and_padding_ignored",
            "decode_only": True,
            "hex": hex_lines(frame(18, bent_moe, seq=37)),
            "header": {"type": 18, "payload_length": len(bent_moe), "seq": 37}
            | {"timestamp_ns": TIMESTAMP, "step": 0, "rank": 0, "flags": 0},
            "message": {"type": "MOE_ROUTING", "layers": [0], "tokens": [[5, 0, 5]]}
            | {"probs": [[0.5, 0.0, 0.5]], "dropped": [7], "top_k": 3},
        }
    )
    bent_attention = attention(["日本"], [(7, 15)], [[[NAN]]], padding=0xFF)
    v.append(
        {
            "name": "attention_padding_ignored",
            "decode_only": True,
            "hex": hex_lines(frame(16, bent_attention, seq=38)),
            "header": {"type": 16, "payload_length": len(bent_attention), "seq": 38}
            | {"timestamp_ns": TIMESTAMP, "step": 0, "rank": 0, "flags": 0},
            "message": {"type": "ATTENTION", "tokens": ["日本"], "layers": [7], "heads": [15]}
            | {"weights": [[[NAN]]], "sequence": 0},
        }
    )
    reserved_flags = frame(5, control(10, paused=False), flags=0x8001, seq=4)
    v.append(
        {
            "name": "header_reserved_flag_bits_ignored",
            "decode_only": True,
            "hex": hex_lines(reserved_flags),
            "header": {"type": 5, "payload_length": 32, "seq": 4, "timestamp_ns": TIMESTAMP}
            | {"step": 0, "rank": 0, "flags": 0x8001},
            "message": {"type": "CONTROL", "request_id": 10, **none, "paused": False}
            | {"unknown_fields": 0},
        }
    )
    bent_norms = frame(9, grad_norms(NORMS, reserved=0xDEAD, padding=b"\xff" * 4), seq=25)
    v.append(
        {
            "name": "block_grad_norms_reserved_and_padding_ignored",
            "decode_only": True,
            "hex": hex_lines(bent_norms),
            "header": {"type": 9, "payload_length": 24, "seq": 25, "timestamp_ns": TIMESTAMP}
            | {"step": 0, "rank": 0, "flags": 0},
            "message": {"type": "BLOCK_GRAD_NORMS", "norms": NORMS},
        }
    )
    bent_metrics = frame(32, metrics(METRICS[:1], reserved=(0xBEEF, 0xDEADBEEF)), seq=29)
    v.append(
        {
            "name": "training_metrics_reserved_ignored",
            "decode_only": True,
            "hex": hex_lines(bent_metrics),
            "header": {"type": 32, "payload_length": 40, "seq": 29, "timestamp_ns": TIMESTAMP}
            | {"step": 0, "rank": 0, "flags": 0},
            "message": {"type": "TRAINING_METRICS", "values": dict(METRICS[:1])},
        }
    )
    return v


def skipped_vectors() -> list[dict[str, Any]]:
    cases = [
        ("unknown_type_40", 40, bytes(range(24))),
        ("unknown_type_250_empty", 250, b""),
        ("unknown_type_odd_length", 999, b"\x01\x02\x03\x04\x05"),
    ]
    return [
        {"name": name, "hex": hex_lines(frame(t, p, seq=5)), "type": t, "payload_length": len(p)}
        for name, t, p in cases
    ]


def bad_vectors() -> list[dict[str, Any]]:
    v: list[dict[str, Any]] = []

    def add(name: str, raw: bytes, fragment: str, **extra: Any) -> None:
        v.append({"name": name, "hex": hex_lines(raw), "error": fragment, **extra})

    good_hello = hello(1, "synapse-probe/0.1.0", 23)
    meta = model_meta("tiny-gpt", 2, SITES)
    two = summary_batch([RECORD_FINITE, RECORD_NONE_FINITE])
    three = sparse(1, 0.5, 10, [3, 17, 200], [0.75, 1.5, 2.25])

    add("bad_magic", frame(1, good_hello, magic=b"XXXX"), "bad magic b'XXXX' (expected b'SYNP')")
    add(
        "unsupported_version_7",
        frame(1, good_hello, version=7),
        "unsupported protocol version 7 (this build speaks 1)",
    )
    add("unsupported_version_0", frame(1, good_hello, version=0), "unsupported protocol version 0")
    add(
        "payload_2gib_announced_10_bytes_present",
        frame(3, bytes(10), length=1 << 31),
        "payload length 2147483648 exceeds the limit of 16777216 bytes",
    )
    add(
        "payload_over_custom_limit",
        frame(3, two),
        "payload length 688 exceeds the limit of 512 bytes",
        max_payload=512,
    )
    # A stream decoder waits for more bytes on these four instead of failing ("incomplete").
    incomplete = {"stream": "incomplete"}
    add(
        "truncated_header",
        frame(1, good_hello)[:20],
        "truncated header: 20 bytes, 32 expected",
        **incomplete,
    )
    add(
        "truncated_body",
        frame(4, three)[:-4],
        "truncated SPARSE_ACTIVATIONS frame: 40 payload bytes announced, 36 present",
        **incomplete,
    )
    add(
        "trailing_bytes",
        frame(4, three) + bytes(8),
        "8 trailing bytes after a SPARSE_ACTIVATIONS frame",
        **incomplete,
    )
    add(
        "truncated_unknown_type",
        frame(999, bytes(8))[:-1],
        "truncated type 999 frame",
        **incomplete,
    )
    add(
        "hello_short",
        frame(1, good_hello[:40]),
        "HELLO payload is 40 bytes, at least 64 expected",
    )
    add(
        "hello_name_length_mismatch",
        frame(1, hello(1, "synapse-probe/0.1.0", 23, name_len=30)),
        "HELLO payload is 88 bytes, 64 + 32 expected",
    )
    add(
        "hello_name_over_256",
        frame(1, hello(1, "x" * 300, 0)),
        "HELLO name is 300 bytes (limit 256)",
    )
    add(
        "hello_name_invalid_utf8",
        frame(1, hello(1, "", 0, raw_name=b"probe\xff")),
        "HELLO name is not valid UTF-8",
    )
    add(
        "hello_empty_version_range",
        frame(1, hello(1, "p", 0, vmin=2, vmax=1)),
        "HELLO version range 2..1",
    )
    add(
        "hello_version_zero",
        frame(1, hello(1, "p", 0, vmin=0, vmax=1)),
        "HELLO version range 0..1",
    )
    add("meta_short", frame(2, meta[:12]), "MODEL_META payload is 12 bytes, at least 16 expected")
    add(
        "meta_too_many_sites",
        frame(2, model_meta("m", 1, [], n_sites=65537)),
        "MODEL_META announces 65537 sites (limit 65536)",
    )
    add(
        "meta_size_mismatch",
        frame(2, meta[:-8]),
        "MODEL_META payload is 200 bytes, 16 + 4 x 32 + 64 expected",
    )
    add(
        "meta_strings_not_padded",
        frame(2, model_meta("tiny-gpt", 2, SITES, strings_len=60)[:-4]),
        "MODEL_META string table of 60 bytes is not padded to 8",
    )
    add(
        "meta_model_name_overruns_table",
        frame(2, model_meta("tiny-gpt", 2, SITES, model_name_len=72)),
        "MODEL_META model name of 72 bytes overruns the 64-byte string table",
    )
    add(
        "meta_model_name_over_limit",
        frame(2, model_meta("tiny-gpt", 2, SITES, model_name_len=2000)),
        "MODEL_META model name is 2000 bytes (limit 1024)",
    )
    add(
        "meta_too_many_layers",
        frame(2, model_meta("tiny-gpt", 70000, SITES)),
        "MODEL_META announces 70000 layers (limit 65536)",
    )
    add(
        "meta_duplicate_site_id",
        frame(2, model_meta("tiny-gpt", 2, SITES, site1_site_id=0)),
        "MODEL_META site id 0 appears more than once",
    )
    add(
        "meta_layer_out_of_range",
        frame(2, model_meta("tiny-gpt", 2, SITES, site3_layer=2)),
        "MODEL_META site 7: layer 2 not below n_layers 2",
    )
    add(
        "meta_name_outside_table",
        frame(2, model_meta("tiny-gpt", 2, SITES, site2_offset=60)),
        "MODEL_META site 2: name ends at 74, past the 64-byte string table",
    )
    add(
        "meta_site_name_over_limit",
        frame(2, model_meta("tiny-gpt", 2, SITES, site0_name_len=4000)),
        "MODEL_META site 0: name of 4000 bytes (limit 1024)",
    )
    add(
        "meta_grid_too_small",
        frame(2, model_meta("tiny-gpt", 2, SITES, site0_neurons=65)),
        "MODEL_META site 0: grid 8 x 8 cannot hold 65 neurons",
    )
    add(
        "meta_grid_too_large",
        frame(2, model_meta("tiny-gpt", 2, SITES, site1_rows=0x10000, site1_cols=0x10000)),
        "MODEL_META site 1: grid 65536 x 65536 exceeds twice its 256 neurons",
    )
    bad_name = model_meta("tiny-gpt", 2, SITES)
    at = 16 + 4 * 32 + 8  # first byte of site 0's name
    bad_name = bad_name[:at] + b"\xc3" + bad_name[at + 1 :]
    add(
        "meta_site_name_invalid_utf8",
        frame(2, bad_name),
        "MODEL_META site 0 name is not valid UTF-8",
    )
    add(
        "summary_size_mismatch",
        frame(3, summary_batch([], n_sites=2) + bytes(84)),
        "LAYER_SUMMARY_BATCH payload is 100 bytes, 16 + 2 x 336 expected",
    )
    add(
        "summary_short",
        frame(3, summary_batch([])[:8]),
        "LAYER_SUMMARY_BATCH payload is 8 bytes, at least 16 expected",
    )
    add(
        "summary_32_bins",
        frame(3, summary_batch([], bins=32)),
        "LAYER_SUMMARY_BATCH has 32 histogram bins, 64 expected",
    )
    add(
        "summary_too_many_sites",
        frame(3, summary_batch([], n_sites=70000)),
        "LAYER_SUMMARY_BATCH announces 70000 sites (limit 65536)",
    )
    add(
        "sparse_short",
        frame(4, three[:12]),
        "SPARSE_ACTIVATIONS payload is 12 bytes, at least 16 expected",
    )
    add(
        "sparse_count_mismatch",
        frame(4, struct.pack("<IfII", 1, 0.5, 4, 10) + three[16:]),
        "SPARSE_ACTIVATIONS payload is 40 bytes, 16 + 4 x 8 expected",
    )
    add(
        "sparse_count_4g",
        frame(4, struct.pack("<IfII", 1, 0.5, 0xFFFF_FFFF, 0xFFFF_FFFF)),
        "SPARSE_ACTIVATIONS payload is 16 bytes, 16 + 4294967295 x 8 expected",
    )
    add(
        "sparse_above_n_above",
        frame(4, sparse(1, 0.5, 2, [3, 17, 200], [0.75, 1.5, 2.25])),
        "SPARSE_ACTIVATIONS carries 3 neurons but n_above is 2",
    )
    add(
        "sparse_repeated_index",
        frame(4, sparse(1, 0.5, 10, [3, 17, 17], [0.75, 1.5, 2.25])),
        "SPARSE_ACTIVATIONS indices not strictly ascending: 17 then 17 at position 2",
    )
    add(
        "sparse_descending_index",
        frame(4, sparse(1, 0.5, 10, [30, 17, 200], [0.75, 1.5, 2.25])),
        "SPARSE_ACTIVATIONS indices not strictly ascending: 30 then 17 at position 1",
    )
    add(
        "control_short", frame(5, control(1)[:24]), "CONTROL payload is 24 bytes, 32 or 40 expected"
    )
    add(
        "control_long",
        frame(5, control(1) + bytes(16)),
        "CONTROL payload is 48 bytes, 32 or 40 expected",
    )
    add(
        "control_budget_missing",
        frame(5, control(1, budget=0.5)[:32]),
        "CONTROL sets BUDGET but has no budget field",
    )
    add(
        "control_full_rank_missing",
        frame(5, control(1, full_rank=1)[:32]),
        "CONTROL sets FULL_RANK but has no full_rank field",
    )
    add("probe_cost_short", frame(20, probe_cost(COST)[:32]), "PROBE_COST payload is 32 bytes, 40")
    add("rank_skew_short", frame(36, bytes(4)), "RANK_SKEW payload is 4 bytes, at least 8")
    add(
        "rank_skew_count_mismatch",
        frame(36, rank_skew(64, SKEW_ROWS, n=2)),
        "RANK_SKEW payload is 80 bytes, 8 + 24 x 2 expected",
    )
    add(
        "rank_skew_too_many_records",
        frame(36, rank_skew(64, [], n=65537)),
        "RANK_SKEW announces 65537 records (limit 65536)",
    )
    add("job_status_short", frame(37, bytes(24)), "JOB_STATUS payload is 24 bytes, at least 32")
    add(
        "job_status_text_too_long",
        frame(37, job_status(JOB_LOST, text_len=1025)),
        "JOB_STATUS text_len is 1025 (limit 1024)",
    )
    add(
        "job_status_text_len_mismatch",
        frame(37, job_status(JOB_LOST, text_len=9)),
        "JOB_STATUS payload is 96 bytes, 32 + 16 expected",
    )
    add(
        "job_status_text_not_utf8",
        frame(37, job_status(JOB_RUNNING | {"text": "ab"})[:32] + b"\xff\xfe" + bytes(6)),
        "JOB_STATUS text is not valid UTF-8",
    )
    add(
        "control_paused_2",
        frame(5, control(1, paused=2)),
        "CONTROL paused is 2, 0 or 1 expected",
    )
    add("ack_short", frame(6, control_ack(1, 0, STATE, "")[:16]), "CONTROL_ACK payload is 16 bytes")
    add(
        "ack_status_2",
        frame(6, control_ack(1, 2, STATE, "")),
        "CONTROL_ACK status 2 unknown (0 APPLIED or 1 REJECTED)",
    )
    add(
        "ack_paused_5",
        frame(6, control_ack(1, 0, STATE | {"paused": 5}, "")),
        "CONTROL_ACK paused is 5, 0 or 1 expected",
    )
    add(
        "ack_error_over_limit",
        frame(6, control_ack(1, 1, STATE, "", error_len=2000)),
        "CONTROL_ACK error is 2000 bytes (limit 1024)",
    )
    add(
        "ack_error_length_mismatch",
        frame(6, control_ack(1, 1, STATE, "bad", error_len=9)),
        "CONTROL_ACK payload is 40 bytes, 32 + 16 expected",
    )
    add(
        "probe_stats_short",
        frame(7, probe_stats(COUNTERS, [])[:56]),
        "PROBE_STATS payload is 56 bytes, at least 64 expected",
    )
    add(
        "probe_stats_count_mismatch",
        frame(7, probe_stats(COUNTERS, CLIENTS, n=3)),
        "PROBE_STATS payload is 128 bytes, 64 + 3 x 32 expected",
    )
    add("error_short", frame(8, bytes(4)), "ERROR payload is 4 bytes, at least 8 expected")
    add(
        "error_text_invalid_utf8",
        frame(8, error(3, "", raw=b"\xe2\x82")),
        "ERROR text is not valid UTF-8",
    )
    add(
        "error_text_over_limit",
        frame(8, error(3, "x" * 1025)),
        "ERROR text is 1025 bytes (limit 1024)",
    )
    add(
        "grad_norms_short",
        frame(9, grad_norms([])[:4]),
        "BLOCK_GRAD_NORMS payload is 4 bytes, at least 8 expected",
    )
    add(
        "grad_norms_not_padded",
        frame(9, grad_norms(NORMS, padding=b"")),
        "BLOCK_GRAD_NORMS payload is 20 bytes, 8 + 16 expected",
    )
    add(
        "grad_norms_count_mismatch",
        frame(9, grad_norms(NORMS, n=2)),
        "BLOCK_GRAD_NORMS payload is 24 bytes, 8 + 8 expected",
    )
    add(
        "grad_norms_too_many_layers",
        frame(9, grad_norms([], n=65537)),
        "BLOCK_GRAD_NORMS announces 65537 layers (limit 65536)",
    )
    add(
        "grad_norms_count_4g",
        frame(9, grad_norms([], n=0xFFFF_FFFF)),
        "BLOCK_GRAD_NORMS announces 4294967295 layers (limit 65536)",
    )
    add(
        "metrics_short",
        frame(32, metrics([])[:4]),
        "TRAINING_METRICS payload is 4 bytes, at least 8 expected",
    )
    add(
        "metrics_count_mismatch",
        frame(32, metrics(METRICS, count=2)),
        "TRAINING_METRICS payload is 104 bytes, 8 + 2 x 32 expected",
    )
    add(
        "metrics_too_many",
        frame(32, metrics([], count=257)),
        "TRAINING_METRICS announces 257 metrics (limit 256)",
    )
    add(
        "metrics_count_65535",
        frame(32, metrics([], count=0xFFFF)),
        "TRAINING_METRICS announces 65535 metrics (limit 256)",
    )
    add(
        "metrics_empty_name",
        frame(32, metrics([("loss", 1.0), (b"", 2.0)])),
        "TRAINING_METRICS metric 1 name is empty",
    )
    add(
        "metrics_name_nul_inside",
        frame(32, metrics([(b"lo\0ss", 1.0)])),
        "TRAINING_METRICS metric 0 name has a NUL byte inside",
    )
    add(
        "metrics_name_starts_with_nul",
        frame(32, metrics([(b"\0loss", 1.0)])),
        "TRAINING_METRICS metric 0 name has a NUL byte inside",
    )
    add(
        "metrics_name_invalid_utf8",
        frame(32, metrics([("lr", 1.0), (b"loss\xff", 1.0)])),
        "TRAINING_METRICS metric 1 name is not valid UTF-8",
    )
    add(
        "metrics_duplicate_name",
        frame(32, metrics([("loss", 1.0), ("lr", 2.0), ("loss", 3.0)])),
        "TRAINING_METRICS name 'loss' appears more than once",
    )
    one = attention(["a", "b"], [(0, 0)], [[[1.0, 0.0], [0.5, 0.5]]])
    add("attention_short", frame(16, one[:4]), "ATTENTION payload is 4 bytes, at least 8 expected")
    add(
        "attention_zero_tokens",
        frame(16, attention([], [(0, 0)], [], counts=(0, 1))),
        "ATTENTION token_count is 0 (1..128 allowed)",
    )
    add(
        "attention_129_tokens",
        frame(16, attention([], [(0, 0)], [], counts=(129, 1))),
        "ATTENTION token_count is 129 (1..128 allowed)",
    )
    add(
        "attention_zero_pairs",
        frame(16, attention(["a"], [], [], counts=(1, 0))),
        "ATTENTION pair_count is 0 (1..256 allowed)",
    )
    add(
        "attention_257_pairs",
        frame(16, attention(["a"], [], [], counts=(1, 257))),
        "ATTENTION pair_count is 257 (1..256 allowed)",
    )
    add(
        "attention_token_lengths_past_the_end",
        frame(16, attention([], [(0, 0)], [], counts=(128, 1))),
        "ATTENTION payload is 16 bytes, at least 8 + 8 + 256 expected",
    )
    add(
        "attention_token_over_64_bytes",
        frame(16, attention(["a", "b" * 65], [(0, 0)], [[[1.0, 0.0], [0.5, 0.5]]])),
        "ATTENTION token 1 is 65 bytes (limit 64)",
    )
    add(
        "attention_token_invalid_utf8",
        frame(16, attention([b"\xc3", "b"], [(0, 0)], [[[1.0, 0.0], [0.5, 0.5]]])),
        "ATTENTION token 0 is not valid UTF-8",
    )
    add(
        "attention_weights_missing",
        frame(16, one[:-8]),
        "ATTENTION payload is 24 bytes, 8 + 8 + 8 + 8 expected",
    )
    add(
        "attention_token_lengths_disagree_with_the_text",
        frame(16, attention(["a", "b"], [(0, 0)], [[[1.0, 0.0], [0.5, 0.5]]], lens=[1, 9])),
        "ATTENTION payload is 32 bytes, 8 + 8 + 16 + 8 expected",
    )
    stats = head_stats([0, 1], ENTROPY, MAX_LOGIT, tokens=4)
    add("head_stats_short", frame(19, stats[:6]), "HEAD_STATS payload is 6 bytes, at least 8")
    add(
        "head_stats_zero_layers",
        frame(19, head_stats([], [], [], tokens=4, counts=(0, 3))),
        "HEAD_STATS layer_count is 0 (1..65535 allowed)",
    )
    add(
        "head_stats_1025_heads",
        frame(19, head_stats([0], [], [], tokens=4, counts=(1, 1025))),
        "HEAD_STATS head_count is 1025 (1..1024 allowed)",
    )
    add(
        "head_stats_zero_tokens",
        frame(19, head_stats([0], [[1.0]], [[1.0]], tokens=0)),
        "HEAD_STATS tokens is 0 (1..128 allowed)",
    )
    add(
        "head_stats_129_tokens",
        frame(19, head_stats([0], [[1.0]], [[1.0]], tokens=129)),
        "HEAD_STATS tokens is 129 (1..128 allowed)",
    )
    add(
        "head_stats_count_mismatch",
        frame(19, head_stats([0, 1], ENTROPY, MAX_LOGIT, tokens=4, counts=(2, 4))),
        "HEAD_STATS payload is 64 bytes, 8 + 8 + 2 x 2 x 4 x 4 expected",
    )
    norms = residual([0, 1, 2], RESIDUAL_NORMS)
    add("residual_short", frame(17, norms[:7]), "RESIDUAL payload is 7 bytes, at least 8")
    add(
        "residual_zero_tokens",
        frame(17, residual([0], [[]])),
        "RESIDUAL token_count is 0 (1..128 allowed)",
    )
    add(
        "residual_129_tokens",
        frame(17, residual([0], [[1.0]], n_tokens=129)),
        "RESIDUAL token_count is 129 (1..128 allowed)",
    )
    add(
        "residual_zero_layers",
        frame(17, residual([], [[1.0]])),
        "RESIDUAL layer_count is 0 (1..65535 allowed)",
    )
    add(
        "residual_not_padded",
        frame(17, norms[:-4]),
        "RESIDUAL payload is 52 bytes, 8 + 8 + 40 expected",
    )
    routing = moe_routing([1, 3], MOE_TOKENS, MOE_PROBS, [0, 3], top_k=2)
    add("moe_routing_short", frame(18, routing[:2]), "MOE_ROUTING payload is 2 bytes, at least 8")
    add(
        "moe_routing_top_k_over_experts",
        frame(18, moe_routing([1, 3], MOE_TOKENS, MOE_PROBS, [0, 3], top_k=5)),
        "MOE_ROUTING top_k is 5 (1..4 allowed)",
    )
    add(
        "moe_routing_top_k_zero",
        frame(18, moe_routing([1, 3], MOE_TOKENS, MOE_PROBS, [0, 3], top_k=0)),
        "MOE_ROUTING top_k is 0 (1..4 allowed)",
    )
    add(
        "moe_routing_zero_experts",
        frame(18, moe_routing([0], [[]], [[]], [0], top_k=1)),
        "MOE_ROUTING expert_count is 0 (1..1024 allowed)",
    )
    add(
        "moe_routing_1025_experts",
        frame(18, moe_routing([0], [[]], [[]], [0], top_k=1, n_experts=1025)),
        "MOE_ROUTING expert_count is 1025 (1..1024 allowed)",
    )
    add(
        "moe_routing_zero_layers",
        frame(18, moe_routing([], [[0]], [[]], [], top_k=1)),
        "MOE_ROUTING layer_count is 0 (1..65535 allowed)",
    )
    add(
        "moe_routing_dropped_missing",
        frame(18, routing[:-8]),
        "MOE_ROUTING payload is 80 bytes, 8 + 8 + 2 x 2 x 4 x 4 + 8 expected",
    )
    optimizer = optimizer_stats([0, 1, 2], OPT_RATIO, OPT_NORM, OPT_BELOW)
    add(
        "optimizer_stats_short",
        frame(28, optimizer[:6]),
        "OPTIMIZER_STATS payload is 6 bytes, at least 8",
    )
    add(
        "optimizer_stats_zero_layers",
        frame(28, optimizer_stats([], [])),
        "OPTIMIZER_STATS layer_count is 0 (1..65535 allowed)",
    )
    add(
        "optimizer_stats_count_mismatch",
        frame(28, optimizer_stats([0, 1, 2], OPT_RATIO, OPT_NORM, OPT_BELOW, n_layers=4)),
        "OPTIMIZER_STATS payload is 56 bytes, 8 + 8 + 48 expected",
    )
    add(
        "optimizer_stats_not_padded",
        frame(28, optimizer[:-4]),
        "OPTIMIZER_STATS payload is 52 bytes, 8 + 8 + 40 expected",
    )
    add(
        "capture_request_no_sites",
        frame(29, capture_request(1, [])),
        "CAPTURE_REQUEST announces 0 sites (1..64)",
    )
    add(
        "capture_request_too_many_sites",
        frame(29, capture_request(1, list(range(65)))),
        "CAPTURE_REQUEST announces 65 sites (1..64)",
    )
    add(
        "capture_request_count_mismatch",
        frame(29, capture_request(1, [0, 1], n=3)),
        "CAPTURE_REQUEST payload is 16 bytes, 8 + 16 expected",
    )
    add("capture_done_short", frame(30, bytes(24)), "CAPTURE_DONE payload is 24 bytes, at least 32")
    add(
        "capture_done_path_len_mismatch",
        frame(30, capture_done(CAPTURE_WRITTEN, path_len=70)),
        "CAPTURE_DONE payload is 96 bytes, 104 expected",
    )
    add(
        "capture_done_path_too_long",
        frame(30, capture_done(CAPTURE_WRITTEN, path_len=4097)),
        "CAPTURE_DONE path_len is 4097 (limit 4096)",
    )
    add(
        "capture_done_path_not_utf8",
        frame(30, capture_done(CAPTURE_WRITTEN | {"path": "ab"})[:32] + b"\xff\xfe" + bytes(6)),
        "CAPTURE_DONE path is not valid UTF-8",
    )
    add(
        "action_list_count_mismatch",
        frame(31, action_list(["a", "b"], count=3)),
        "ACTION_LIST names do not match its count of 3",
    )
    add(
        "action_list_too_many",
        frame(31, action_list(["a"], count=33)),
        "ACTION_LIST announces 33 names (limit 32)",
    )
    add(
        "action_request_empty_name",
        frame(33, action_request(1, "")),
        "ACTION_REQUEST name_len is 0 (1..64)",
    )
    add(
        "action_request_name_len_mismatch",
        frame(33, action_request(1, "checkpoint", name_len=17)),
        "ACTION_REQUEST payload is 24 bytes, 8 + 24 expected",
    )
    add("action_result_short", frame(34, bytes(8)), "ACTION_RESULT payload is 8 bytes, at least 16")
    return v


def mac_vectors() -> list[dict[str, str]]:
    cases = [(TOKEN, CHALLENGE), ("pässwört", bytes(32)), ("", b"\xff" * 32)]
    return [
        {"token": token, "challenge": challenge.hex(), "mac": mac(token, challenge).hex()}
        for token, challenge in cases
    ]


def document() -> str:
    content = {
        "about": "Golden frames of Synapse wire protocol v1; see make_protocol_vectors.py.",
        "good": good_vectors(),
        "skipped": skipped_vectors(),
        "bad": bad_vectors(),
        "hello_mac": mac_vectors(),
    }
    text = json.dumps(_spell_floats(content), indent=1, ensure_ascii=False, allow_nan=False)
    # One line per number list keeps the file readable.
    number = r'(?:-?[\d.e+-]+|"-?(?:nan|inf)")'
    text = re.sub(rf"\[\s+((?:{number},\s*)*{number})\s+\]", _join_list, text)
    return text + "\n"


def _join_list(match: re.Match[str]) -> str:
    items = [item.strip() for item in match.group(1).split(",")]
    return "[" + ", ".join(items) + "]"


def _spell_floats(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return "nan"
    if isinstance(obj, float) and obj in (float("inf"), float("-inf")):
        return "inf" if obj > 0 else "-inf"
    if isinstance(obj, dict):
        return {k: _spell_floats(x) for k, x in obj.items()}
    if isinstance(obj, list):
        return [_spell_floats(x) for x in obj]
    return obj


def main() -> int:
    text = document()
    if "--check" in sys.argv[1:]:
        stale = not OUT.exists() or OUT.read_text(encoding="utf-8") != text
        print(f"{OUT.name} is {'stale' if stale else 'up to date'}")
        return int(stale)
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
