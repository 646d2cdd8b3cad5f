"""docs/PROTOCOL.md and the code describe the same bytes: every layout table is checked."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest

from synapse_native import (
    _action_wire,
    _activation_wire,
    _attention_wire,
    _capture_wire,
    _connection_wire,
    _control_wire,
    _job_wire,
    _layout,
    _meta_wire,
    _metrics_wire,
    _optimizer_wire,
    _probe_wire,
    _routing_wire,
)
from synapse_native._wire import HEADER_FIELDS
from synapse_native.protocol import (
    HEADER,
    PROBE_CLIENT_DTYPE,
    SITE_DTYPE,
    SUMMARY_DTYPE,
    MsgType,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"
STRUCT_TYPES = {"B": "u8", "H": "u16", "I": "u32", "Q": "u64", "f": "f32"}
DTYPE_TYPES = {"u1": "u8", "u2": "u16", "u4": "u32", "u8": "u64", "f4": "f32"}


def _tables() -> list[list[list[str]]]:
    """Every markdown table of the document as rows of cells (separator rows dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*DOC.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("|"):
            cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", cell) for cell in cells):
                current.append(cells)
        elif current:
            tables.append(current)
            current = []
    return tables


def _layout_table(names: tuple[str, ...]) -> list[list[str]]:
    """The rows of the table whose first fields are ``names``, in order."""
    for table in _tables():
        if table[0][:3] in (["offset", "type", "field"], ["frame offset", "type", "field"]):
            rows = table[1:]
            if tuple(row[2] for row in rows[: len(names)]) == names:
                return rows[: len(names)]
    raise AssertionError(f"no table documents {names}")


def _struct_rows(layout: struct.Struct) -> list[tuple[int, str]]:
    rows = []
    formats = _layout.field_codes(layout)
    for i, code in enumerate(formats):
        offset = struct.calcsize("<" + "".join(formats[:i]))
        kind = STRUCT_TYPES.get(code) or f"{code[:-1]} bytes"
        rows.append((offset, kind))
    return rows


FIXED_PARTS = {
    "header": (HEADER, HEADER_FIELDS),
    "HELLO": (_connection_wire.HELLO_FIXED, _connection_wire.HELLO_FIELDS),
    "MODEL_META": (_meta_wire.META_FIXED, _meta_wire.META_FIELDS),
    "LAYER_SUMMARY_BATCH": (_activation_wire.SUMMARY_FIXED, _activation_wire.SUMMARY_FIELDS),
    "SPARSE_ACTIVATIONS": (_activation_wire.SPARSE_FIXED, _activation_wire.SPARSE_FIELDS),
    "CONTROL": (_control_wire.CONTROL_FIXED, _control_wire.CONTROL_FIELDS),
    "CONTROL_ACK": (_control_wire.ACK_FIXED, _control_wire.ACK_FIELDS),
    "PROBE_STATS": (_probe_wire.PROBE_STATS_FIXED, _probe_wire.PROBE_STATS_FIELDS),
    "ERROR": (_connection_wire.ERROR_FIXED, _connection_wire.ERROR_FIELDS),
    "BLOCK_GRAD_NORMS": (_metrics_wire.GRAD_NORMS_FIXED, _metrics_wire.GRAD_NORMS_FIELDS),
    "TRAINING_METRICS": (_metrics_wire.METRICS_FIXED, _metrics_wire.METRICS_FIELDS),
    "ATTENTION": (_attention_wire.ATTENTION_FIXED, _attention_wire.ATTENTION_FIELDS),
    "HEAD_STATS": (_attention_wire.HEAD_STATS_FIXED, _attention_wire.HEAD_STATS_FIELDS),
    "RESIDUAL": (_attention_wire.RESIDUAL_FIXED, _attention_wire.RESIDUAL_FIELDS),
    "MOE_ROUTING": (_routing_wire.MOE_FIXED, _routing_wire.MOE_FIELDS),
    "OPTIMIZER_STATS": (_optimizer_wire.OPTIMIZER_FIXED, _optimizer_wire.OPTIMIZER_FIELDS),
    "PROBE_COST": (_probe_wire.PROBE_COST_FIXED, _probe_wire.PROBE_COST_FIELDS),
    "RANK_SKEW": (_job_wire.SKEW_FIXED, _job_wire.SKEW_FIELDS),
    "JOB_STATUS": (_job_wire.JOB_STATUS_FIXED, _job_wire.JOB_STATUS_FIELDS),
    "CAPTURE_REQUEST": (_capture_wire.REQUEST_FIXED, _capture_wire.REQUEST_FIELDS),
    "CAPTURE_DONE": (_capture_wire.DONE_FIXED, _capture_wire.DONE_FIELDS),
    "ACTION_LIST": (_action_wire.LIST_FIXED, _action_wire.LIST_FIELDS),
    "ACTION_REQUEST": (_action_wire.REQUEST_FIXED, _action_wire.REQUEST_FIELDS),
    "ACTION_RESULT": (_action_wire.RESULT_FIXED, _action_wire.RESULT_FIELDS),
}


@pytest.mark.parametrize("name", list(FIXED_PARTS))
def test_fixed_part_tables_match_the_structs(name: str) -> None:
    layout, names = FIXED_PARTS[name]
    documented = [(int(row[0]), row[1]) for row in _layout_table(names)]
    assert documented == _struct_rows(layout)


@pytest.mark.parametrize(
    "dtype", [SITE_DTYPE, SUMMARY_DTYPE, _job_wire.SKEW_DTYPE], ids=["site", "summary", "skew"]
)
def test_record_tables_match_the_dtypes(dtype: np.dtype[np.void]) -> None:
    assert dtype.names is not None and dtype.fields is not None
    rows = _layout_table(dtype.names)
    for row, field in zip(rows, dtype.names, strict=True):
        field_type, offset = dtype.fields[field][:2]
        base = DTYPE_TYPES[field_type.base.str[1:]]
        kind = f"{base} x {field_type.shape[0]}" if field_type.shape else base
        assert (int(row[0]), row[1]) == (offset, kind), field


def test_client_record_sentence_matches_the_dtype() -> None:
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert PROBE_CLIENT_DTYPE.names is not None and PROBE_CLIENT_DTYPE.fields is not None
    for field in PROBE_CLIENT_DTYPE.names:
        field_type, offset = PROBE_CLIENT_DTYPE.fields[field][:2]
        assert f"{offset} {DTYPE_TYPES[field_type.str[1:]]} {field}" in text, field


def test_block_grad_norms_array_follows_its_fixed_part() -> None:
    rows = _layout_table((*_metrics_wire.GRAD_NORMS_FIELDS, "norms"))
    assert (int(rows[-1][0]), rows[-1][1]) == (
        _metrics_wire.GRAD_NORMS_FIXED.size,
        "f32 x n_layers",
    )
    assert np.dtype("<f4") == _metrics_wire.NORM_DTYPE


@pytest.mark.parametrize(
    ("fixed", "names", "arrays"),
    [
        (
            _attention_wire.ATTENTION_FIXED,
            _attention_wire.ATTENTION_FIELDS,
            [("pairs", "4 x P"), ("token_lens", "u16 x T"), ("tokens", "text_len bytes")],
        ),
        (
            _attention_wire.HEAD_STATS_FIXED,
            _attention_wire.HEAD_STATS_FIELDS,
            [("layers", "u16 x L"), ("entropy", "f32 x L x H"), ("max_logit", "f32 x L x H")],
        ),
        (
            _attention_wire.RESIDUAL_FIXED,
            _attention_wire.RESIDUAL_FIELDS,
            [("layers", "u16 x L"), ("norms", "f32 x L x T")],
        ),
        (
            _routing_wire.MOE_FIXED,
            _routing_wire.MOE_FIELDS,
            [
                ("layers", "u16 x L"),
                ("tokens", "u32 x L x E"),
                ("probs", "f32 x L x E"),
                ("dropped", "u32 x L"),
            ],
        ),
        (
            _optimizer_wire.OPTIMIZER_FIXED,
            _optimizer_wire.OPTIMIZER_FIELDS,
            [
                ("layers", "u16 x L"),
                ("update_ratio", "f32 x L"),
                ("grad_norm", "f32 x L"),
                ("v_below_g2", "f32 x L"),
            ],
        ),
    ],
    ids=["attention", "head_stats", "residual", "moe_routing", "optimizer_stats"],
)
def test_new_frame_arrays_follow_their_fixed_parts(
    fixed: struct.Struct, names: tuple[str, ...], arrays: list[tuple[str, str]]
) -> None:
    rows = _layout_table((*names, *(name for name, _ in arrays)))
    assert [(row[2], row[1]) for row in rows[len(names) :]] == arrays
    assert int(rows[len(names)][0]) == fixed.size == 8


def test_attention_weights_are_documented_as_f16_pairs_of_u16() -> None:
    table = _layout_table(
        (*_attention_wire.ATTENTION_FIELDS, "pairs", "token_lens", "tokens", "weights")
    )
    assert table[-1][1] == "f16 x P x T x T"
    assert (
        np.dtype("<f2") == _attention_wire.WEIGHT_DTYPE
        and np.dtype("<u2") == _attention_wire.TOKEN_LEN_DTYPE
    )
    assert np.dtype([("layer", "<u2"), ("head", "<u2")]) == _attention_wire.PAIR_DTYPE


def test_metric_record_table_matches_the_dtype() -> None:
    dtype = _metrics_wire.METRIC_DTYPE
    assert dtype.names is not None and dtype.fields is not None
    documented = [(int(row[0]), row[1]) for row in _layout_table(dtype.names)]
    name, value = (dtype.fields[field][:2] for field in dtype.names)
    assert documented == [(name[1], f"{name[0].itemsize} bytes"), (value[1], "f64")]
    assert value[0] == np.dtype("<f8") and name[0].kind == "S"
    rows = _layout_table((*_metrics_wire.METRICS_FIELDS, "metrics"))
    assert (int(rows[-1][0]), rows[-1][1]) == (_metrics_wire.METRICS_FIXED.size, "32 x count")


def test_message_type_table_matches_the_enum() -> None:
    table = next(t for t in _tables() if t[0][:2] == ["type", "name"])
    assert {int(row[0]): row[1] for row in table[1:]} == {int(t): t.name for t in MsgType}
