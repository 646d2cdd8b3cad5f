"""Helpers of the attention lens tests: the lens's frames as a viewer decodes them, and attention
computed by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from probe_fakes import FakeServer

from synapse_native.protocol import (
    AttentionPattern,
    HeadStats,
    ResidualTokens,
    decode_frame,
    encode,
)

LENS_TYPES = (AttentionPattern, HeadStats, ResidualTokens)


def lens_frames(server: FakeServer, kind: type[Any]) -> list[tuple[int, Any]]:
    """(step, message) of every frame of ``kind``, encoded and decoded again (the wire's view)."""
    frames = []
    for step, _, message in server.messages:
        if isinstance(message, kind):
            frame = decode_frame(encode(message, step=step))
            assert frame is not None and frame.header.step == step
            frames.append((step, frame.message))
    return frames


def reference_attention(
    queries: torch.Tensor, keys: torch.Tensor, scale: float, window: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights [H, T, T], entropy [H], max logit [H]) of causal attention, in float64.

    ``queries`` [H, T, D], ``keys`` [KV, T, D] (each key head serves H / KV query heads).
    """
    heads, tokens = queries.shape[0], queries.shape[1]
    keys = keys.double().repeat_interleave(heads // keys.shape[0], dim=0)
    logits = queries.double() @ keys.transpose(-1, -2) * scale
    query = torch.arange(tokens).view(-1, 1)
    key = torch.arange(tokens).view(1, -1)
    allowed = key <= query
    if window is not None:
        allowed &= key > query - window
    logits = logits.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(logits, dim=-1)
    entropy = -torch.special.xlogy(weights, weights).sum(-1).mean(-1)
    max_logit = logits.amax(dim=(-2, -1))
    return weights.numpy(), entropy.numpy(), max_logit.numpy()


def entropy_of(weights: np.ndarray) -> np.ndarray:
    """Mean over queries of -sum p log p, per leading index (weights [..., T, T])."""
    w = weights.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(w > 0, -w * np.log(w), 0.0)
    return terms.sum(-1).mean(-1)
