"""Attention recomputed from captured queries and keys: weights, entropy and largest logit.

Everything runs on the tensors' device in float32, asynchronously (no value is read back).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

CHUNK_BYTES = 64 << 20  # most float32 logits held at once; layers are processed in chunks


def blocked_keys(tokens: int, windows: Sequence[int | None], device: torch.device) -> torch.Tensor:
    """True where a query may not see a key: later keys, and keys beyond a layer's window.

    Shape [layers, 1, T, T] (one row per entry of ``windows``), or [1, 1, T, T] when no layer
    has a window.
    """
    query = torch.arange(tokens, device=device).view(tokens, 1)
    key = torch.arange(tokens, device=device).view(1, tokens)
    later = key > query
    if all(w is None for w in windows):
        return later.view(1, 1, tokens, tokens)
    rows = [later if w is None else later | (key <= query - w) for w in windows]
    return torch.stack(rows).unsqueeze(1)


def layers_per_chunk(heads: int, tokens: int) -> int:
    """How many layers' logits fit in ``CHUNK_BYTES``."""
    return max(1, CHUNK_BYTES // (4 * heads * tokens * tokens))


def head_attention(
    queries: torch.Tensor, keys: torch.Tensor, blocked: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weights [n, H, T, T], entropy [n, H], max logit [n, H]) of causal attention.

    ``queries`` [n, H, T, D] are already scaled; ``keys`` [n, KV, T, D] serve H / KV query heads
    each (head h reads key head h // (H / KV), as grouped-query attention repeats them).
    ``blocked`` broadcasts to [n, 1, T, T]. Entropy is the mean over queries of -sum p log p
    (nats); the max logit is the largest scaled q . k over the keys each query may see.
    """
    n, heads, tokens, dim = queries.shape
    kv_heads = keys.shape[1]
    grouped = queries.float().reshape(n, kv_heads, (heads // kv_heads) * tokens, dim)
    logits = torch.matmul(grouped, keys.float().transpose(-1, -2)).view(n, heads, tokens, tokens)
    logits.masked_fill_(blocked, float("-inf"))
    max_logit = logits.amax(dim=(-2, -1))
    weights = torch.softmax(logits, dim=-1)
    entropy = -torch.special.xlogy(weights, weights).sum(dim=-1).mean(dim=-1)
    return weights, entropy, max_logit
