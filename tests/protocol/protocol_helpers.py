"""Shared test helpers: the golden vectors, JSON -> message, and message comparison."""

from __future__ import annotations

import dataclasses
import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from synapse_native.protocol import (
    ActionList,
    ActionRequest,
    ActionResult,
    AttentionPattern,
    BlockGradNorms,
    Capability,
    CaptureDone,
    CaptureRequest,
    Control,
    ControlAck,
    ControlState,
    ErrorReport,
    HeadStats,
    Hello,
    JobStatus,
    LayerSummaryBatch,
    Message,
    ModelMeta,
    MoeRouting,
    OptimizerStats,
    ProbeCost,
    ProbeStats,
    RankSkew,
    ResidualTokens,
    SiteInfo,
    SparseActivations,
    TrainingMetrics,
    probe_client_records,
    skew_records,
    summary_records,
)

OPTIMIZER_COLUMNS = ("update_ratio", "grad_norm", "v_below_g2")
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "protocol_v1.json"


@cache
def vectors() -> dict[str, Any]:
    content: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return content


def frame_bytes(vector: dict[str, Any]) -> bytes:
    return bytes.fromhex("".join(vector["hex"]))


def number(value: float | str) -> float:
    """A JSON number, or one of the strings "nan", "inf", "-inf"."""
    return float(value)


def numbers(values: Any, dtype: type[np.generic]) -> np.ndarray:
    """A nested JSON list of numbers (NaN and infinities spelled as strings) as an array."""

    def spelled(x: Any) -> Any:
        if isinstance(x, list):
            return [spelled(item) for item in x]
        return number(x) if isinstance(x, str) else x

    return np.array(spelled(values), dtype=dtype)


def _fill(records: np.ndarray, rows: list[dict[str, Any]]) -> np.ndarray:
    for i, row in enumerate(rows):
        for key, value in row.items():
            if isinstance(value, list):
                records[i][key] = [number(x) for x in value]
            elif isinstance(value, str):
                records[i][key] = number(value)
            else:
                records[i][key] = value
    return records


def message_from_json(d: dict[str, Any]) -> Message:
    kind = d["type"]
    fields = {k: v for k, v in d.items() if k != "type"}
    if kind == "HELLO":
        fields["capabilities"] = Capability(fields["capabilities"])
        fields["auth_data"] = bytes.fromhex(fields["auth_data"])
        return Hello(**fields)
    if kind == "MODEL_META":
        sites = tuple(SiteInfo(**site) for site in fields.pop("sites"))
        return ModelMeta(sites=sites, **fields)
    if kind == "LAYER_SUMMARY_BATCH":
        rows = fields["records"]
        return LayerSummaryBatch(_fill(summary_records(len(rows)), rows))
    if kind == "SPARSE_ACTIVATIONS":
        fields["indices"] = np.array(fields["indices"], dtype=np.uint32)
        fields["values"] = np.array([number(x) for x in fields["values"]], dtype=np.float32)
        fields["threshold"] = number(fields["threshold"])
        return SparseActivations(**fields)
    if kind == "CONTROL":
        return Control(**fields)
    if kind == "CONTROL_ACK":
        fields["state"] = ControlState(**fields["state"])
        return ControlAck(**fields)
    if kind == "PROBE_STATS":
        rows = fields.pop("clients")
        return ProbeStats(clients=_fill(probe_client_records(len(rows)), rows), **fields)
    if kind == "PROBE_COST":
        return ProbeCost(**fields)
    if kind == "ERROR":
        return ErrorReport(**fields)
    if kind == "BLOCK_GRAD_NORMS":
        return BlockGradNorms(np.array([number(x) for x in fields["norms"]], dtype=np.float32))
    if kind == "TRAINING_METRICS":
        return TrainingMetrics({name: number(x) for name, x in fields["values"].items()})
    if kind == "ATTENTION":
        return AttentionPattern(
            tokens=tuple(fields["tokens"]),
            layers=numbers(fields["layers"], np.uint16),
            heads=numbers(fields["heads"], np.uint16),
            weights=numbers(fields["weights"], np.float16),
            sequence=fields["sequence"],
        )
    if kind == "HEAD_STATS":
        return HeadStats(
            layers=numbers(fields["layers"], np.uint16),
            entropy=numbers(fields["entropy"], np.float32),
            max_logit=numbers(fields["max_logit"], np.float32),
            tokens=fields["tokens"],
        )
    if kind == "RESIDUAL":
        return ResidualTokens(
            numbers(fields["layers"], np.uint16), numbers(fields["norms"], np.float32)
        )
    if kind == "MOE_ROUTING":
        return MoeRouting(
            layers=numbers(fields["layers"], np.uint16),
            tokens=numbers(fields["tokens"], np.uint32),
            probs=numbers(fields["probs"], np.float32),
            dropped=numbers(fields["dropped"], np.uint32),
            top_k=fields["top_k"],
        )
    if kind == "OPTIMIZER_STATS":
        return OptimizerStats(
            numbers(fields["layers"], np.uint16),
            *(numbers(fields[name], np.float32) for name in OPTIMIZER_COLUMNS),
        )
    if kind == "RANK_SKEW":
        rows = fields["records"]
        return RankSkew(fields["world_size"], _fill(skew_records(len(rows)), rows))
    if kind == "JOB_STATUS":
        return JobStatus(**fields)
    if kind == "CAPTURE_REQUEST":
        return CaptureRequest(fields["request_id"], tuple(fields["site_ids"]))
    if kind == "CAPTURE_DONE":
        return CaptureDone(**fields)
    if kind == "ACTION_LIST":
        return ActionList(tuple(fields["names"]))
    if kind == "ACTION_REQUEST":
        return ActionRequest(**fields)
    if kind == "ACTION_RESULT":
        return ActionResult(**fields)
    raise AssertionError(f"unknown message type in vectors: {kind}")


def same_value(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN, arrays compare bit for bit, dataclasses field by field."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return bool(a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes())
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(
            same_value(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)
        )
    if isinstance(a, dict) and isinstance(b, dict):  # same items in the same order
        return same_value(tuple(a), tuple(b)) and same_value(tuple(a.values()), tuple(b.values()))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, float) and isinstance(b, float) and a == 0 == b:
        return math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def assert_same_message(actual: Message, expected: Message) -> None:
    assert type(actual) is type(expected)
    for f in dataclasses.fields(expected):
        left, right = getattr(actual, f.name), getattr(expected, f.name)
        assert same_value(left, right), f"{f.name}: {left!r} != {right!r}"
