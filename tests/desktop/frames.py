"""Builders of real frames for the desktop tests: encoded, then decoded by the codec."""

from __future__ import annotations

import numpy as np

from synapse_native.protocol import (
    Control,
    ControlAck,
    ControlState,
    Frame,
    Hello,
    LayerSummaryBatch,
    Message,
    ModelMeta,
    Role,
    SiteInfo,
    SiteKind,
    SparseActivations,
    decode_frame,
    encode,
    grid_shape,
    summary_records,
)

KINDS = (SiteKind.ATTN, SiteKind.MLP, SiteKind.RESIDUAL)
NEURONS = {SiteKind.ATTN: 4096, SiteKind.MLP: 14336, SiteKind.RESIDUAL: 4096}


def frame(message: Message, *, seq: int, step: int = 0, rank: int = 0, ts: int = 1) -> Frame:
    decoded = decode_frame(encode(message, seq=seq, step=step, rank=rank, timestamp_ns=ts))
    assert decoded is not None
    return decoded


def meta(n_layers: int = 4, name: str = "tiny") -> ModelMeta:
    sites = []
    for layer in range(n_layers):
        for k, kind in enumerate(KINDS):
            rows, cols = grid_shape(NEURONS[kind])
            site_id = layer * len(KINDS) + k
            sites.append(
                SiteInfo(
                    site_id,
                    layer,
                    kind,
                    f"layers.{layer}.{kind.name.lower()}",
                    NEURONS[kind],
                    rows,
                    cols,
                )
            )
    return ModelMeta(name, n_layers, tuple(sites))


def summaries(site_ids: list[int], value: float) -> LayerSummaryBatch:
    records = summary_records(len(site_ids))
    records["site_id"] = site_ids
    records["count"] = 1000
    for name in ("mean", "std", "rms", "max", "mean_abs", "frac_above"):
        records[name] = value
    records["hist"][:, 32] = 1000.0
    return LayerSummaryBatch(records)


def sparse(site_id: int, indices: list[int], threshold: float = 0.5) -> SparseActivations:
    idx = np.asarray(indices, np.uint32)
    return SparseActivations(site_id, threshold, len(idx), idx, np.ones(len(idx), np.float32))


def ack(request_id: int, threshold: float, applied: bool = True, error: str = "") -> ControlAck:
    return ControlAck(request_id, applied, ControlState(threshold, 10.0, 0b1110, False, 512), error)


def trainer_hello() -> Hello:
    return Hello(Role.TRAINER, "sim")


__all__ = ["Control", "ack", "frame", "meta", "sparse", "summaries", "trainer_hello"]
