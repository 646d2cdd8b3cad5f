"""Tiny transformers built in the tests, shaped like the model families the probe must find.

The look-alikes reproduce the attribute names of Hugging Face models (``model.layers``,
``transformer.h``, ``gpt_neox.layers``, ``self_attn`` / ``attn`` / ``attention``, ``mlp``) and
their habit of returning tuples, without needing ``transformers``.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

VOCAB = 32


class Attention(nn.Module):
    """Causal self-attention that returns ``(output, None)`` like HF attention modules."""

    def __init__(self, d: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.o_proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        return self.o_proj(y.transpose(1, 2).reshape(b, t, d)), None


class MLP(nn.Module):
    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.up_proj = nn.Linear(d, hidden)
        self.down_proj = nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.up_proj(x)))


class Block(nn.Module):
    """A pre-norm block; attribute names are chosen per family."""

    def __init__(self, d: int, attn_name: str = "self_attn", mlp_name: str = "mlp") -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.attn_name, self.mlp_name = attn_name, mlp_name
        setattr(self, attn_name, Attention(d))
        setattr(self, mlp_name, MLP(d, 4 * d))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        x = x + getattr(self, self.attn_name)(self.norm1(x))[0]
        x = x + getattr(self, self.mlp_name)(self.norm2(x))
        return (x,)  # HF decoder layers return tuples


class Backbone(nn.Module):
    def __init__(self, d: int, n_layers: int, list_name: str, attn: str, mlp: str) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, d)
        setattr(self, list_name, nn.ModuleList(Block(d, attn, mlp) for _ in range(n_layers)))
        self.list_name = list_name
        self.norm = nn.LayerNorm(d)
        self.checkpointing = False  # re-run each block's forward during backward

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(ids)
        for block in getattr(self, self.list_name):
            run = partial(checkpoint, block, use_reentrant=False) if self.checkpointing else block
            x = run(x)[0]
        return self.norm(x)


class CausalLM(nn.Module):
    """``<prefix>.<list_name>[i].<attn>/<mlp>`` plus an LM head; returns logits."""

    def __init__(
        self,
        prefix: str = "model",
        list_name: str = "layers",
        attn: str = "self_attn",
        mlp: str = "mlp",
        d: int = 16,
        n_layers: int = 2,
    ) -> None:
        super().__init__()
        self.prefix = prefix
        setattr(self, prefix, Backbone(d, n_layers, list_name, attn, mlp))
        self.lm_head = nn.Linear(d, VOCAB, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(getattr(self, self.prefix)(ids))


def llama_like(d: int = 16, n_layers: int = 2) -> CausalLM:
    return CausalLM("model", "layers", "self_attn", "mlp", d, n_layers)


def gpt2_like(d: int = 16, n_layers: int = 2) -> CausalLM:
    return CausalLM("transformer", "h", "attn", "mlp", d, n_layers)


def neox_like(d: int = 16, n_layers: int = 2) -> CausalLM:
    return CausalLM("gpt_neox", "layers", "attention", "mlp", d, n_layers)


def batch(b: int = 2, t: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and next-token targets."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (b, t + 1), generator=g)
    return ids[:, :-1], ids[:, 1:]


def lm_loss(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = model(ids)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
