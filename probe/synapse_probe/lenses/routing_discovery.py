"""Find the router of each mixture-of-experts block, and how its experts are chosen.

Three shapes are recognised inside a block (the first module, in ``named_modules`` order,
that matches):

- a ``router`` ``nn.Linear`` next to an integer ``top_k`` (the demo model): the model takes
  the ``top_k`` largest logits;
- a ``gate`` ``nn.Linear`` next to ``top_k`` or ``num_experts_per_tok`` (transformers 4's
  Mixtral and Qwen2-MoE blocks): the model takes the ``top_k`` largest softmax probabilities;
- a ``gate`` module of its own with a 2-D ``weight`` and ``top_k`` (transformers 5's
  ``…TopKRouter``), returning ``(logits, scores, indices)``: the model's own ``indices`` are used.

Discovery only reads the module tree.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn


class Choice(enum.Enum):
    """How a router's output turns into the experts the model runs."""

    TOP_LOGITS = "top_logits"  # topk over the logits, as they are
    TOP_PROBS = "top_probs"  # topk over softmax(logits) in float32
    INDICES = "indices"  # the router returns (logits, …, indices): take them


@dataclass(frozen=True)
class RouterSpec:
    """One block's router: the module to hook, its expert count, ``top_k`` and choice rule.

    ``moe`` is the mixture-of-experts module around it; a float ``capacity_factor`` on it > 0
    means each expert takes at most ``ceil(capacity_factor * tokens * top_k / experts)``
    assignments and drops the rest.
    """

    layer: int
    name: str
    router: nn.Module
    moe: nn.Module
    experts: int
    top_k: int
    choice: Choice


def find_routers(blocks: Sequence[tuple[str, nn.Module]]) -> list[RouterSpec]:
    """The router of every block that has one, in block order (layer = the block's index)."""
    found = []
    for layer, (block_name, block) in enumerate(blocks):
        for name, module in block.named_modules():
            spec = router_of(module, layer, _join(block_name, name))
            if spec is not None:
                found.append(spec)
                break
    return found


def router_of(moe: nn.Module, layer: int, name: str) -> RouterSpec | None:
    """``moe``'s router when ``moe`` is a mixture-of-experts module of a known shape."""
    router = getattr(moe, "router", None)
    top_k = _top_k(moe)
    if isinstance(router, nn.Linear) and top_k is not None:
        return _spec(
            layer, _join(name, "router"), router, moe, router.out_features, top_k, Choice.TOP_LOGITS
        )
    gate = getattr(moe, "gate", None)
    if isinstance(gate, nn.Linear) and top_k is not None:
        return _spec(
            layer, _join(name, "gate"), gate, moe, gate.out_features, top_k, Choice.TOP_PROBS
        )
    if isinstance(gate, nn.Module):
        weight = gate._parameters.get("weight")
        top_k = _top_k(gate) or top_k
        if weight is not None and weight.dim() == 2 and top_k is not None:
            experts = int(weight.shape[0])
            return _spec(layer, _join(name, "gate"), gate, moe, experts, top_k, Choice.INDICES)
    return None


def _spec(
    layer: int,
    name: str,
    router: nn.Module,
    moe: nn.Module,
    experts: int,
    top_k: int,
    choice: Choice,
) -> RouterSpec | None:
    if not 0 < top_k <= experts:
        return None
    return RouterSpec(layer, name, router, moe, experts, top_k, choice)


def _top_k(module: nn.Module) -> int | None:
    for attribute in ("top_k", "num_experts_per_tok"):
        value = getattr(module, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else prefix or name
