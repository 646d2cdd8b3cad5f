"""The optimizer lens: what each optimizer step of a measured step did to each block.

``attach(..., optimizer=opt)`` registers a step pre-hook and a step post-hook on ``opt``. On a
measured step, on the parameters' device and without a host sync:

- before the step: the L2 norm of each parameter and of its gradient, a copy of the parameter
  into a buffer kept between steps (one copy of the blocks' parameters, see docs/PROBE.md), and
  for Adam-family optimizers (a state with ``exp_avg_sq``) the number of entries whose
  second-moment estimate is below the squared gradient (arXiv 2304.13013: loss spikes follow
  the moment this fraction jumps);
- after the step: the L2 norm of the update (the buffer minus the new parameter, in place).

Per-parameter values are summed into per-block rows with ``index_add_``; ``finish`` copies the
``[3, L]`` result off the device (non-blocking, into a pooled host mirror), and the encoder
thread sends it as one OPTIMIZER_STATS frame. On a step that is not measured each hook checks
one flag and returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from synapse_native.protocol import Message, OptimizerStats

from .lens import HostMirror, MirrorPool

POOL_SIZE = 4
_RATIO, _GRAD, _BELOW = range(3)


class OptimizerLens:
    """Hooks ``optimizer``; one OPTIMIZER_STATS frame per measured step it steps in."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        blocks: Sequence[tuple[str, nn.Module]],
        *,
        pool_size: int = POOL_SIZE,
        on_time: Callable[[int], None] | None = None,
    ) -> None:
        block_of: dict[int, int] = {}
        for index, (_, block) in enumerate(blocks):
            for param in block.parameters():
                block_of.setdefault(id(param), index)
        params = [
            p for group in optimizer.param_groups for p in group["params"] if id(p) in block_of
        ]
        if not params:
            raise ValueError("optimizer=: none of the optimizer's parameters is in a hooked block")
        self.optimizer = optimizer
        betas = {
            id(p): group.get("betas") for group in optimizer.param_groups for p in group["params"]
        }
        self._beta2: list[float | None] = [
            float(b[1]) if isinstance(b, (tuple, list)) and len(b) == 2 else None
            for b in (betas[id(p)] for p in params)
        ]
        self.layers = sorted({block_of[id(p)] for p in params})
        row_of = {layer: row for row, layer in enumerate(self.layers)}
        self._params = params
        self._device = params[0].device
        self._rows = torch.tensor(
            [row_of[block_of[id(p)]] for p in params], dtype=torch.long, device=self._device
        )
        self._sizes = torch.tensor(
            [p.numel() for p in params], dtype=torch.float64, device=self._device
        )
        self._subsets: dict[tuple[int, ...], torch.Tensor] = {}  # on the device, made once
        self._before: list[torch.Tensor] = []
        self._sums: torch.Tensor | None = None  # [5, L]: param^2, update^2, grad^2, below, counted
        self._result: torch.Tensor | None = None
        self._pool = MirrorPool(pool_size)
        self._on_time = on_time
        self._measuring = False
        self._stepped = False
        self.skipped = 0  # measured steps not sent: every host buffer was still in use
        self._handles = [
            optimizer.register_step_pre_hook(self._before_step),
            optimizer.register_step_post_hook(self._after_step),
        ]

    # -- the Lens protocol ----------------------------------------------------------------------

    def begin(self, step: int, measured: bool) -> None:
        self._measuring = measured
        self._stepped = False

    def finish(self) -> OptimizerCapture | None:
        """End a measured step: start the copy off the device (None when no step ran)."""
        measured, self._measuring = self._measuring, False
        if not (measured and self._stepped) or self._result is None:
            return None
        mirror = self._pool.acquire()
        if mirror is None:
            self.skipped += 1
            return None
        with torch.no_grad():
            mirror.copy("stats", self._result)
        mirror.mark()
        return OptimizerCapture(self._pool, mirror, self.layers)

    def close(self) -> None:
        self._measuring = False
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._before.clear()

    # -- hooks ----------------------------------------------------------------------------------

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if not self._measuring or self._stepped:
            return
        start = time.perf_counter_ns()
        with torch.no_grad():
            self._measure_before()
        self._took(start)

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if not self._measuring or self._stepped or self._sums is None:
            return
        start = time.perf_counter_ns()
        with torch.no_grad():
            self._measure_after()
        self._stepped = True
        self._took(start)

    def _measure_before(self) -> None:
        params, device = self._params, self._device
        if len(self._before) != len(params):
            self._before = [torch.empty_like(p) for p in params]
        sums = torch.zeros((5, len(self.layers)), dtype=torch.float64, device=device)
        torch._foreach_copy_(self._before, params)
        self._add(sums[0], torch._foreach_norm(params), squared=True)
        with_grad = [i for i, p in enumerate(params) if p.grad is not None]
        if with_grad:
            grads = [g for g in (params[i].grad for i in with_grad) if g is not None]
            norms = torch._foreach_norm(grads)
            self._add(sums[2], norms, squared=True, index=with_grad)
        below, counted = [], []
        for i in with_grad:
            grad = params[i].grad
            state: dict[str, Any] = self.optimizer.state.get(params[i]) or {}
            v = state.get("exp_avg_sq")
            if isinstance(v, torch.Tensor) and grad is not None and v.shape == grad.shape:
                limit = grad.float().square().mul_(self._bias_correction(i, state))
                below.append(torch.count_nonzero(v < limit).to(device))
                counted.append(i)
        if counted:
            subset = self._subset(counted)
            index = self._rows[subset]
            sums[3].index_add_(0, index, torch.stack(below).to(torch.float64))
            sums[4].index_add_(0, index, self._sizes[subset])
        self._sums = sums

    def _bias_correction(self, i: int, state: dict[str, Any]) -> torch.Tensor | float:
        """``1 - beta2 ** t``: comparing the raw estimate with ``g^2`` times it compares
        Adam's bias-corrected estimate with ``g^2`` (a tensor step stays on its device)."""
        beta2 = self._beta2[i]
        step = state.get("step")
        if beta2 is None or step is None:
            return 1.0
        if isinstance(step, torch.Tensor) and step.device.type != "cpu":
            correction: torch.Tensor = 1.0 - torch.pow(beta2, step.to(self._device, torch.float32))
            return correction
        return 1.0 - float(beta2 ** float(step))

    def _measure_after(self) -> None:
        sums = self._sums
        assert sums is not None
        torch._foreach_sub_(self._before, self._params)  # -update, in place
        self._add(sums[1], torch._foreach_norm(self._before), squared=True)
        result = torch.empty((3, len(self.layers)), dtype=torch.float32, device=self._device)
        result[_RATIO] = (sums[1] / sums[0]).sqrt()
        result[_GRAD] = sums[2].sqrt()
        result[_BELOW] = torch.where(sums[4] > 0, sums[3] / sums[4], torch.nan)
        self._result = result

    def _add(
        self,
        into: torch.Tensor,
        norms: Sequence[torch.Tensor],
        *,
        squared: bool,
        index: list[int] | None = None,
    ) -> None:
        if all(n.device == self._device for n in norms):
            values = torch.stack(list(norms)).to(torch.float64)
        else:
            values = torch.stack([n.to(self._device, torch.float64) for n in norms])
        rows = self._rows if index is None else self._rows[self._subset(index)]
        into.index_add_(0, rows, values.square() if squared else values)

    def _subset(self, index: list[int]) -> torch.Tensor:
        """``index`` as a device tensor, copied to the device the first time it is seen only."""
        key = tuple(index)
        found = self._subsets.get(key)
        if found is None:
            if len(self._subsets) > 16:
                self._subsets.clear()
            found = self._subsets[key] = torch.tensor(index, dtype=torch.long, device=self._device)
        return found

    def _took(self, start: int) -> None:
        if self._on_time is not None:
            self._on_time(time.perf_counter_ns() - start)


class OptimizerCapture:
    """One measured step's optimizer statistics on their way off the device."""

    def __init__(self, pool: MirrorPool, mirror: HostMirror, layers: list[int]) -> None:
        self._pool, self._mirror, self._layers = pool, mirror, layers

    def wait(self) -> None:
        self._mirror.wait()

    def messages(self) -> list[Message]:
        stats = self._mirror.array("stats")
        return [
            OptimizerStats(
                np.asarray(self._layers, np.uint16),
                stats[_RATIO].copy(),
                stats[_GRAD].copy(),
                stats[_BELOW].copy(),
            )
        ]

    def release(self) -> None:
        self._pool.release(self._mirror)
