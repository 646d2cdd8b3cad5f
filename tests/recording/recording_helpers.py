"""A small deterministic run as wire frames: HELLO, MODEL_META, then per step summaries,
gradient norms and training metrics (the last flagged END_OF_STEP)."""

from __future__ import annotations

import numpy as np

from synapse_native.protocol import (
    BlockGradNorms,
    Capability,
    HeaderFlag,
    Hello,
    LayerSummaryBatch,
    ModelMeta,
    Role,
    SiteInfo,
    SiteKind,
    TrainingMetrics,
    encode,
    summary_records,
)

T0 = 1_764_000_000_000_000_000  # ns since the epoch
STEP_NS = 50_000_000  # 20 steps per second
LAYERS = 2
SITES = tuple(
    SiteInfo(
        i, i // 2, SiteKind.ATTN if i % 2 == 0 else SiteKind.MLP, f"layers.{i // 2}.{k}", 64, 8, 8
    )
    for i, k in enumerate(("attn", "mlp") * LAYERS)
)


STATISTICS = ("mean", "std", "rms", "min", "max", "mean_abs", "skewness", "kurtosis")


def summaries(step: int, rank: int = 0) -> np.ndarray:
    """The summary records of ``step``: every statistic a function of (step, site, rank)."""
    records = summary_records(len(SITES))
    records["site_id"] = np.arange(len(SITES))
    base = step + 0.25 * np.arange(len(SITES)) + 100 * rank
    records["count"] = 64 * 1024
    for j, name in enumerate(STATISTICS):
        records[name] = base + j / 16
    records["hist"][:] = (step % 7) + np.arange(records["hist"].shape[1])
    return records


def run_frames(steps: int, *, rank: int = 0, start_step: int = 0) -> list[bytes]:
    """The frames of ``steps`` steps of rank ``rank``, timestamps STEP_NS apart."""
    hello = Hello(Role.TRAINER, "synthetic-probe", Capability.SUMMARIES, rank=rank)
    meta = ModelMeta("tiny-model", LAYERS, SITES)
    frames = [
        encode(hello, rank=rank, timestamp_ns=T0, step=start_step),
        encode(meta, rank=rank, timestamp_ns=T0 + 1, step=start_step),
    ]
    seq = 0
    for step in range(start_step, start_step + steps):
        t = T0 + (step - start_step + 1) * STEP_NS + rank
        messages = [
            LayerSummaryBatch(summaries(step, rank)),
            BlockGradNorms(np.arange(LAYERS, dtype=np.float32) + step),
            TrainingMetrics({"loss": 10.0 / (step + 1), "lr": 1e-3}),
        ]
        for k, message in enumerate(messages):
            seq += 1
            last = k == len(messages) - 1
            frames.append(
                encode(
                    message,
                    seq=seq,
                    step=step,
                    rank=rank,
                    timestamp_ns=t + k * 1000,
                    flags=int(HeaderFlag.END_OF_STEP) if last else 0,
                )
            )
    return frames
