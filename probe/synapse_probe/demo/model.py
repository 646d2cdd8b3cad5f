"""A small Llama-style causal language model: RMSNorm, rotary embeddings, grouped-query
attention, SwiGLU (optionally a top-k mixture of SwiGLU experts).

Module names follow Hugging Face's Llama (``model.layers[i].self_attn``, ``.mlp``,
``.input_layernorm``, ``lm_head``), so the probe's discovery finds the blocks and sites as it
would in a real checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

_TORCH = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
_SDPA_GQA = _TORCH >= (2, 5)  # scaled_dot_product_attention(enable_gqa=...) from torch 2.5


@dataclass(frozen=True)
class DemoConfig:
    """The model's shape. ``moe_experts`` > 0 replaces each MLP by a mixture of experts."""

    vocab_size: int = 256  # bytes
    d_model: int = 256
    n_layers: int = 8
    n_heads: int = 8
    n_kv_heads: int = 2
    ffn_hidden: int = 688
    seq_len: int = 128
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    moe_experts: int = 0
    moe_top_k: int = 2
    moe_capacity: float = 0.0  # expert capacity factor; 0: dropless

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not a multiple of n_kv_heads")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError("the head dimension must be even (rotary embeddings)")
        if self.moe_experts and not 0 < self.moe_top_k <= self.moe_experts:
            raise ValueError(f"moe_top_k must be in 1..{self.moe_experts}")
        if not self.moe_capacity >= 0.0:
            raise ValueError(f"moe_capacity must be >= 0, got {self.moe_capacity}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads


# Named shapes. "demo" trains at about a step per second on two CPU cores; "1b" is for a GPU.
PRESETS: dict[str, DemoConfig] = {
    "tiny": DemoConfig(d_model=64, n_heads=4, n_kv_heads=2, ffn_hidden=160, seq_len=64),
    "demo": DemoConfig(),
    "1b": DemoConfig(
        d_model=2048, n_layers=16, n_heads=16, n_kv_heads=4, ffn_hidden=8192, seq_len=1024
    ),
}


def preset(name: str, **changes: object) -> DemoConfig:
    """The named preset with ``changes`` applied (e.g. ``moe_experts=4``)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **changes)  # type: ignore[arg-type]


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight.to(x.dtype)


class Rotary(nn.Module):
    """Rotary position embeddings (rotate-half form) with cached cos/sin tables."""

    cos: torch.Tensor
    sin: torch.Tensor

    def __init__(self, head_dim: int, max_len: int, theta: float) -> None:
        super().__init__()
        inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)  # (max_len, head_dim)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` of shape (batch, heads, time, head_dim) by its positions 0..time-1."""
        t = x.shape[-2]
        cos = self.cos[:t].to(x.dtype)
        sin = self.sin[:t].to(x.dtype)
        first, second = x.chunk(2, dim=-1)
        return x * cos + torch.cat((-second, first), dim=-1) * sin


class Attention(nn.Module):
    """Causal grouped-query attention: ``n_kv_heads`` key/value heads shared by query groups."""

    def __init__(self, config: DemoConfig, rotary: Rotary) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = (
            config.n_heads,
            config.n_kv_heads,
            config.head_dim,
        )
        kv_width = config.n_kv_heads * config.head_dim
        self.q_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.k_proj = nn.Linear(config.d_model, kv_width, bias=False)
        self.v_proj = nn.Linear(config.d_model, kv_width, bias=False)
        self.o_proj = nn.Linear(config.d_model, config.d_model, bias=False)
        self.rotary = [rotary]  # shared, and kept out of this module's children

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q = self.q_proj(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        rotary = self.rotary[0]
        q, k = rotary(q), rotary(k)
        groups = self.n_heads // self.n_kv_heads
        if groups > 1 and _SDPA_GQA:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            if groups > 1:
                k = k.repeat_interleave(groups, dim=1)
                v = v.repeat_interleave(groups, dim=1)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        out: torch.Tensor = self.o_proj(y.transpose(1, 2).reshape(b, t, d))
        return out


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x))."""

    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(d_model, hidden, bias=False)
        self.up_proj = nn.Linear(d_model, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        return out


class MoE(nn.Module):
    """Top-k mixture of SwiGLU experts behind a linear router.

    Each token goes to the ``top_k`` experts with the largest router logits, weighted by the
    softmax of those logits (renormalised over the chosen experts). The router is a submodule,
    so a forward hook on ``mlp.router`` sees the logits. Dispatch sorts tokens by expert and
    reads the per-expert counts once per layer (a host sync on a GPU).

    With ``capacity_factor`` > 0 each expert takes at most ``capacity(tokens)`` assignments, the
    first ones in token order; the assignments beyond it are dropped and contribute nothing.
    """

    def __init__(self, config: DemoConfig) -> None:
        super().__init__()
        self.top_k = config.moe_top_k
        self.capacity_factor = config.moe_capacity
        self.router = nn.Linear(config.d_model, config.moe_experts, bias=False)
        self.experts = nn.ModuleList(
            SwiGLU(config.d_model, config.ffn_hidden) for _ in range(config.moe_experts)
        )

    def route(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(router logits, weights, expert indices) for tokens ``x`` of shape (n, d)."""
        logits = self.router(x)
        top, chosen = logits.topk(self.top_k, dim=-1)
        weights = torch.softmax(top.float(), dim=-1)
        return logits, weights, chosen

    def capacity(self, tokens: int) -> int | None:
        """Assignments one expert takes from ``tokens`` tokens, or None when dropless."""
        if self.capacity_factor <= 0:
            return None
        return math.ceil(self.capacity_factor * (tokens * self.top_k) / len(self.experts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        tokens = x.reshape(-1, shape[-1])
        _, weights, chosen = self.route(tokens)
        flat = chosen.reshape(-1)
        order = flat.argsort(stable=True)
        token_of = order // self.top_k
        counts = torch.bincount(flat, minlength=len(self.experts)).tolist()
        out = torch.zeros_like(tokens)
        gate = weights.reshape(-1)[order].unsqueeze(-1)
        capacity = self.capacity(tokens.shape[0])
        start = 0
        for expert, count in zip(self.experts, counts, strict=True):
            kept = count if capacity is None else min(count, capacity)
            if kept:
                rows = token_of[start : start + kept]
                y = expert(tokens[rows]) * gate[start : start + kept].to(tokens.dtype)
                out.index_add_(0, rows, y)
            start += count
        return out.reshape(shape)


class DecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then + mlp(norm(x))."""

    def __init__(self, config: DemoConfig, rotary: Rotary) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.self_attn = Attention(config, rotary)
        self.post_attention_layernorm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp: nn.Module = (
            MoE(config) if config.moe_experts else SwiGLU(config.d_model, config.ffn_hidden)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x))
        out: torch.Tensor = x + self.mlp(self.post_attention_layernorm(x))
        return out


class DemoModel(nn.Module):
    """Embeddings, the decoder layers and the final norm."""

    def __init__(self, config: DemoConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model)
        self.rotary = Rotary(config.head_dim, config.seq_len, config.rope_theta)
        self.layers = nn.ModuleList(
            DecoderLayer(config, self.rotary) for _ in range(config.n_layers)
        )
        self.norm = RMSNorm(config.d_model, config.norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(ids)
        for layer in self.layers:
            x = layer(x)
        out: torch.Tensor = self.norm(x)
        return out


class DemoForCausalLM(nn.Module):
    """The language model: ``forward(ids)`` returns next-byte logits (batch, time, vocab)."""

    def __init__(self, config: DemoConfig) -> None:
        super().__init__()
        self.config = config
        self.model = DemoModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.apply(self._init_weights)
        residual_std = 0.02 / math.sqrt(2 * config.n_layers)  # GPT-2's scaled output init
        for name, param in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(param, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.lm_head(self.model(ids))
        return logits

    def loss(self, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-byte cross-entropy (nats) of ``targets`` given ``ids``."""
        logits = self(ids)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))

    def num_parameters(self) -> int:
        """Distinct parameters (a tied head counts once)."""
        return sum(p.numel() for p in self.parameters())
