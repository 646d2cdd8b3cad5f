"""Per-architecture access to an attention module's queries and keys.

The attention lens never asks a model for its attention weights (that would force the slow eager
path): it hooks the query and key projections, and applies the module's own rotary embedding
and scale to a copy of the sampled rows. What differs between architectures lives here: which
submodules project the queries and keys, how their output splits into heads, how positions are
encoded, the scale and the attention window.

Supported: the demo model (``synapse_probe.demo``), Hugging Face Llama, Mistral, Qwen2, Mixtral
(``q_proj`` / ``k_proj``, rotary embeddings from the decoder's ``position_embeddings``), GPT-2
(fused ``c_attn``, no rotary embedding) and GPT-NeoX (fused ``query_key_value``, partial rotary
embeddings). Anything else gets no adapter, and the lens leaves it alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# Splits a projection's sampled output [T, width] into (queries [T, H, D] or None, keys
# [T, KV, D] or None).
Split = Callable[[torch.Tensor], tuple[torch.Tensor | None, torch.Tensor | None]]
# What the rotation needs, taken from the attention module's call (args, kwargs) without any
# tensor work: a tuple of objects, e.g. the model's rotation function and the (cos, sin) its
# decoder layer passes. None: the call does not carry it. Layers whose rotation and positions
# are the very same objects are rotated together, in one call.
Positions = Callable[[tuple[Any, ...], Mapping[str, Any]], tuple[Any, ...] | None]
# Rotates (queries [n, H, T, D], keys [n, KV, T, D]) of n layers by what ``Positions`` found.
Rotate = Callable[[torch.Tensor, torch.Tensor, tuple[Any, ...]], tuple[torch.Tensor, torch.Tensor]]

# Hugging Face attention classes whose queries and keys are q_proj / k_proj outputs rotated by
# the module file's own ``apply_rotary_pos_emb(q, k, cos, sin)`` and nothing else (no q/k norm,
# no logit soft-capping), with ``head_dim`` and ``scaling`` attributes.
HF_ROTARY_QK = frozenset(
    {"LlamaAttention", "MistralAttention", "Qwen2Attention", "MixtralAttention"}
)


@dataclass(frozen=True)
class QKAccess:
    """How to read one attention module's queries and keys."""

    heads: int
    kv_heads: int
    head_dim: int
    scale: float  # multiplies q . k before the softmax
    window: int | None  # keys at most ``window - 1`` positions back (None: all earlier keys)
    sources: tuple[tuple[nn.Module, Split], ...]  # projections to hook, and how to split each
    positions: Positions
    rotate: Rotate

    @property
    def layout(self) -> tuple[int, int, int]:
        return self.heads, self.kv_heads, self.head_dim


def find_access(attn: nn.Module) -> QKAccess | None:
    """The adapter for ``attn``, or None when its architecture is not supported."""
    for build in (_demo_like, _hf_rotary_qk, _gpt2, _gpt_neox):
        access = build(attn)
        if access is not None:
            return access
    return None


def _demo_like(attn: nn.Module) -> QKAccess | None:
    """The demo model: q_proj / k_proj, and its shared rotary module kept as ``rotary[0]``."""
    rotary = getattr(attn, "rotary", None)
    head_dim = getattr(attn, "head_dim", None)
    if not (isinstance(rotary, list) and len(rotary) == 1 and isinstance(rotary[0], nn.Module)):
        return None
    q_proj, k_proj = getattr(attn, "q_proj", None), getattr(attn, "k_proj", None)
    if not (_is_linear(q_proj) and _is_linear(k_proj) and isinstance(head_dim, int)):
        return None
    own = (rotary[0],)

    def positions(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
        return own  # positions 0..T-1, from the rotary module's own tables

    return _separate_projections(
        attn, q_proj, k_proj, head_dim, positions, _rotate_by_module, window=None
    )


def _hf_rotary_qk(attn: nn.Module) -> QKAccess | None:
    """Llama, Mistral, Qwen2, Mixtral."""
    if type(attn).__name__ not in HF_ROTARY_QK:
        return None
    q_proj, k_proj = getattr(attn, "q_proj", None), getattr(attn, "k_proj", None)
    head_dim = getattr(attn, "head_dim", None)
    apply = _module_rotary(attn)
    if not (_is_linear(q_proj) and _is_linear(k_proj) and isinstance(head_dim, int)):
        return None
    if apply is None:
        return None
    window: Any
    if hasattr(attn, "sliding_window"):  # Qwen2: set per layer (None on full-attention layers)
        window = attn.sliding_window
    else:  # Mistral, Mixtral: from the config (None or absent on Llama)
        window = getattr(getattr(attn, "config", None), "sliding_window", None)
    return _separate_projections(
        attn,
        q_proj,
        k_proj,
        head_dim,
        _hf_positions(apply),
        _rotate_hf,
        window=window if isinstance(window, int) and window > 0 else None,
    )


def _gpt2(attn: nn.Module) -> QKAccess | None:
    """GPT-2: one Conv1D projects q, k and v side by side; absolute positions, no rotation."""
    if type(attn).__name__ != "GPT2Attention" or getattr(attn, "is_cross_attention", False):
        return None
    c_attn = getattr(attn, "c_attn", None)
    heads, head_dim = getattr(attn, "num_heads", None), getattr(attn, "head_dim", None)
    if not (isinstance(c_attn, nn.Module) and isinstance(heads, int) and isinstance(head_dim, int)):
        return None
    width = heads * head_dim

    def split(out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        t = out.shape[0]
        q = out[:, :width].view(t, heads, head_dim)
        k = out[:, width : 2 * width].view(t, heads, head_dim)
        return q, k

    return QKAccess(
        heads=heads,
        kv_heads=heads,
        head_dim=head_dim,
        scale=_gpt2_scale(attn, head_dim),
        window=None,
        sources=((c_attn, split),),
        positions=_no_positions,
        rotate=_no_rotation,
    )


def _gpt_neox(attn: nn.Module) -> QKAccess | None:
    """GPT-NeoX / Pythia: one Linear projects [q | k | v] per head; rotary on part of each head."""
    if type(attn).__name__ != "GPTNeoXAttention":
        return None
    qkv = getattr(attn, "query_key_value", None)
    head_dim = getattr(attn, "head_size", None)
    apply = _module_rotary(attn)
    if not (_is_linear(qkv) and isinstance(head_dim, int) and apply is not None):
        return None
    assert isinstance(qkv, nn.Linear)
    if qkv.out_features % (3 * head_dim):
        return None
    heads = qkv.out_features // (3 * head_dim)

    def split(out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        per_head = out.view(out.shape[0], heads, 3 * head_dim)
        return per_head[..., :head_dim], per_head[..., head_dim : 2 * head_dim]

    return QKAccess(
        heads=heads,
        kv_heads=heads,
        head_dim=head_dim,
        scale=_scale(attn, head_dim),
        window=None,
        sources=((qkv, split),),
        positions=_hf_positions(apply),
        rotate=_rotate_hf,
    )


def _separate_projections(
    attn: nn.Module,
    q_proj: Any,
    k_proj: Any,
    head_dim: int,
    positions: Positions,
    rotate: Rotate,
    window: int | None,
) -> QKAccess | None:
    if head_dim <= 0 or q_proj.out_features % head_dim or k_proj.out_features % head_dim:
        return None
    heads, kv_heads = q_proj.out_features // head_dim, k_proj.out_features // head_dim
    if kv_heads == 0 or heads % kv_heads:
        return None

    def queries(out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return out.view(out.shape[0], heads, head_dim), None

    def keys(out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return None, out.view(out.shape[0], kv_heads, head_dim)

    return QKAccess(
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        scale=_scale(attn, head_dim),
        window=window,
        sources=((q_proj, queries), (k_proj, keys)),
        positions=positions,
        rotate=rotate,
    )


def _hf_positions(apply: Callable[..., Any]) -> Positions:
    """(``apply_rotary_pos_emb``, cos, sin): the pair a Hugging Face decoder layer passes as
    ``position_embeddings``, rotated by the module file's own function."""

    def positions(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...] | None:
        pair = kwargs.get("position_embeddings")
        if pair is None and len(args) > 1:
            pair = args[1]
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            return None
        cos, sin = pair
        if not (isinstance(cos, torch.Tensor) and isinstance(sin, torch.Tensor)):
            return None
        if cos.dim() not in (2, 3) or cos.shape != sin.shape:
            return None
        return apply, cos, sin

    return positions


def _rotate_hf(
    q: torch.Tensor, k: torch.Tensor, positions: tuple[Any, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch row 0's first T positions of (cos, sin), through the model's own function."""
    apply, cos, sin = positions
    t = q.shape[-2]
    if cos.dim() == 3:  # [batch or 1, positions, dim]
        cos, sin = cos[:1, :t], sin[:1, :t]
    else:  # [positions, dim]
        cos, sin = cos[None, :t], sin[None, :t]
    rotated = apply(q, k, cos.to(q.device), sin.to(q.device))
    return rotated[0], rotated[1]


def _rotate_by_module(
    q: torch.Tensor, k: torch.Tensor, positions: tuple[Any, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    (module,) = positions
    return module(q), module(k)


def _no_positions(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    return ()


def _no_rotation(
    q: torch.Tensor, k: torch.Tensor, positions: tuple[Any, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    return q, k


def _module_rotary(attn: nn.Module) -> Callable[..., Any] | None:
    """``apply_rotary_pos_emb`` of the file that defines ``attn``'s class, if it has one."""
    module = sys.modules.get(type(attn).__module__)
    apply = getattr(module, "apply_rotary_pos_emb", None)
    return apply if callable(apply) else None


def _scale(attn: nn.Module, head_dim: int) -> float:
    scaling = getattr(attn, "scaling", None)
    return float(scaling) if isinstance(scaling, (int, float)) else head_dim**-0.5


def _gpt2_scale(attn: nn.Module, head_dim: int) -> float:
    """GPT-2's ``scaling`` (transformers 5), else what its eager attention divides by."""
    scaling = getattr(attn, "scaling", None)
    if isinstance(scaling, (int, float)):
        return float(scaling)
    scale = head_dim**-0.5 if getattr(attn, "scale_attn_weights", True) else 1.0
    layer_idx = getattr(attn, "layer_idx", None)
    if getattr(attn, "scale_attn_by_inverse_layer_idx", False) and isinstance(layer_idx, int):
        scale /= float(layer_idx + 1)
    return scale


def _is_linear(module: Any) -> bool:
    return isinstance(module, nn.Linear)
