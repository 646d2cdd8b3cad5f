"""Faults the demo injects on purpose (``--inject KIND@STEP``), so each detector can be seen to
fire before the loss shows the damage:

- ``lr``: the learning rate is multiplied by ``LR_FACTOR`` for ``LR_STEPS`` steps;
- ``nan``: one NaN in the weight gradient of the middle block's MLP at that step;
- ``logits``: from that step on, the middle block's queries are scaled by ``LOGIT_GROWTH`` more
  each step: its attention logits grow (as before a divergence, Wortsman et al. 2023) until
  they overflow and the loss turns NaN, a few dozen steps later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

KINDS = ("lr", "nan", "logits")
LR_FACTOR = 100.0
LR_STEPS = 10
LOGIT_GROWTH = 3.0


@dataclass(frozen=True)
class Fault:
    kind: str
    step: int


def parse_fault(text: str) -> Fault:
    """``KIND@STEP``, e.g. ``lr@300``; ValueError naming what is wrong."""
    kind, at, step = text.partition("@")
    if not at or kind not in KINDS:
        raise ValueError(f"--inject {text!r}: expected KIND@STEP with KIND one of {KINDS}")
    try:
        number = int(step)
    except ValueError:
        raise ValueError(f"--inject {text!r}: the step must be an integer") from None
    if number < 1:
        raise ValueError(f"--inject {text!r}: the step must be at least 1")
    return Fault(kind, number)


class Injector:
    """Applies ``faults`` to ``model``; ``at(step)`` before each step, ``lr_factor`` in it."""

    def __init__(self, faults: Sequence[Fault], model: nn.Module) -> None:
        self.faults = list(faults)
        self.step = 0
        inner: Any = model.model
        layers: Any = inner.layers
        self.layer = len(layers) // 2
        block = layers[self.layer]
        self._handles = []
        if any(f.kind == "logits" for f in self.faults):
            self._handles.append(block.self_attn.q_proj.register_forward_hook(self._scale_queries))
        if any(f.kind == "nan" for f in self.faults):
            weight: Any = block.mlp.down_proj.weight
            self._handles.append(weight.register_hook(self._poison))

    def at(self, step: int) -> None:
        self.step = step

    def lr_factor(self) -> float:
        spikes = [f for f in self.faults if f.kind == "lr" and f.step <= self.step]
        return LR_FACTOR if any(self.step < f.step + LR_STEPS for f in spikes) else 1.0

    def _started(self, kind: str) -> Fault | None:
        started = [f for f in self.faults if f.kind == kind and f.step <= self.step]
        return started[0] if started else None

    def _scale_queries(self, module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        fault = self._started("logits")
        if fault is None:
            return output
        scaled: torch.Tensor = output * LOGIT_GROWTH ** float(self.step - fault.step + 1)
        return scaled

    def _poison(self, grad: torch.Tensor) -> torch.Tensor:
        if not any(f.kind == "nan" and f.step == self.step for f in self.faults):
            return grad
        poisoned = grad.clone()
        poisoned.view(-1)[0] = float("nan")
        return poisoned

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
