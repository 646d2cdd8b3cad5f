"""The MoE routing lens: which experts each MoE block's router chose on a measured step.

A forward hook on every router (found by ``routing_discovery``) reads the router logits on a
measured step and, on their own device and without a host sync, adds into one preallocated
float64 buffer per device, one row per router:

    [0, E)      assignments per expert (the model's own top-k choice; index_add_, not bincount)
    [E, 2E)     mean softmax probability per expert over the step's tokens
    2E          assignments dropped by the MoE module's capacity limit (0 when dropless)

At the end of the step ``finish`` moves each device's buffer with one non-blocking copy into a
pinned host mirror from a small pool (``lens.MirrorPool``) and records a CUDA event; the encoder
thread waits for the event and builds the MOE_ROUTING frame from numpy views. A router counts
once per step (an activation-checkpointing re-run in backward finds its row taken); on a step
that is not measured a hook checks one flag and returns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from synapse_native.protocol import Message, MoeRouting

from .lens import HostMirror, MirrorPool, outside_graphs
from .routing_discovery import Choice, RouterSpec, find_routers

POOL_SIZE = 4  # captures waiting for or inside the encoder, at most


class MoeRoutingLens:
    """Hooks every router in ``routers``; one MOE_ROUTING frame per measured step."""

    def __init__(
        self,
        routers: Sequence[RouterSpec],
        *,
        pool_size: int = POOL_SIZE,
        on_time: Callable[[int], None] | None = None,
    ) -> None:
        """``on_time(ns)`` is told the time each hook spent on the training thread."""
        if not routers:
            raise ValueError("MoeRoutingLens needs at least one router")
        self.routers = list(routers)
        self.experts = max(spec.experts for spec in self.routers)
        self.top_k = max(spec.top_k for spec in self.routers)
        self.skipped = 0  # measured steps not sent: every host buffer was still in use
        self._width = 2 * self.experts + 1
        self._buffers: dict[torch.device, torch.Tensor] = {}
        self._ones: dict[torch.device, torch.Tensor] = {}
        self._pool = MirrorPool(pool_size)
        self._on_time = on_time
        self._measuring = False
        self._seen: list[torch.device | None] = [None] * len(self.routers)
        self._handles: list[RemovableHandle] = [
            spec.router.register_forward_hook(self._hook(row, spec))
            for row, spec in enumerate(self.routers)
        ]

    @classmethod
    def for_blocks(
        cls,
        blocks: Sequence[tuple[str, nn.Module]],
        *,
        on_time: Callable[[int], None] | None = None,
    ) -> MoeRoutingLens | None:
        """The lens over the routers of ``blocks``, or None when no block has one."""
        routers = find_routers(blocks)
        return cls(routers, on_time=on_time) if routers else None

    # -- the Lens protocol ----------------------------------------------------------------------

    def begin(self, step: int, measured: bool) -> None:
        """Start a step; on a measured one, clear the rows on every device (no host sync)."""
        self._measuring = measured
        if measured:
            self._seen = [None] * len(self.routers)
            for buffer in self._buffers.values():
                buffer.zero_()

    def finish(self) -> RoutingCapture | None:
        """End a measured step: start the copies off the devices (None when no router ran)."""
        if not self._measuring:
            return None
        self._measuring = False
        rows = [(row, device) for row, device in enumerate(self._seen) if device is not None]
        if not rows:
            return None
        mirror = self._pool.acquire()
        if mirror is None:
            self.skipped += 1
            return None
        with torch.no_grad():
            for device in {device for _, device in rows}:
                mirror.copy(str(device), self._buffers[device])
        mirror.mark()
        layers = [self.routers[row].layer for row, _ in rows]
        return RoutingCapture(self._pool, mirror, rows, layers, self.experts, self.top_k)

    def close(self) -> None:
        """Remove the hooks."""
        self._measuring = False
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # -- hooks ----------------------------------------------------------------------------------

    def _hook(self, row: int, spec: RouterSpec) -> Callable[..., None]:
        def on_router_output(module: nn.Module, args: Any, output: Any) -> None:
            if self._measuring and self._seen[row] is None:
                start = time.perf_counter_ns()
                self._record(row, spec, output)
                if self._on_time is not None:
                    self._on_time(time.perf_counter_ns() - start)

        return outside_graphs(on_router_output)

    def _record(self, row: int, spec: RouterSpec, output: Any) -> None:
        """Add one router call's choices and probabilities to row ``row`` (device-side only)."""
        logits, chosen = _logits_and_choice(output, spec.choice)
        if logits is None or logits.dim() == 0 or logits.shape[-1] != spec.experts:
            return
        with torch.no_grad():
            logits = logits.detach().reshape(-1, spec.experts)
            tokens = logits.shape[0]
            if tokens == 0:
                return
            probs = torch.softmax(logits.float(), dim=-1)
            if chosen is None:
                scores = logits if spec.choice is Choice.TOP_LOGITS else probs
                chosen = scores.topk(spec.top_k, dim=-1).indices
            flat = chosen.detach().reshape(-1)
            device = logits.device
            values = self._buffer(device)[row]
            counts = values[: spec.experts]
            counts.index_add_(0, flat, self._one(device).expand(flat.numel()))
            values[self.experts : self.experts + spec.experts].copy_(probs.mean(dim=0))
            capacity = expert_capacity(spec.moe, flat.numel(), spec.experts)
            if capacity is not None:
                values[2 * self.experts].copy_((counts - capacity).clamp_(min=0).sum())
        self._seen[row] = device

    def _buffer(self, device: torch.device) -> torch.Tensor:
        buffer = self._buffers.get(device)
        if buffer is None:
            buffer = torch.zeros(
                (len(self.routers), self._width), dtype=torch.float64, device=device
            )
            self._buffers[device] = buffer
        return buffer

    def _one(self, device: torch.device) -> torch.Tensor:
        one = self._ones.get(device)
        if one is None:
            one = self._ones[device] = torch.ones(1, dtype=torch.float64, device=device)
        return one


def expert_capacity(moe: nn.Module, assignments: int, experts: int) -> int | None:
    """Assignments one expert of ``moe`` takes, from its ``capacity_factor``; None: dropless.

    ``ceil(capacity_factor * assignments / experts)``, ``assignments`` being tokens x top_k.
    """
    factor = getattr(moe, "capacity_factor", None)
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not factor > 0:
        return None
    return math.ceil(factor * assignments / experts)


class RoutingCapture:
    """One measured step's routing on its way off the devices (the LensCapture protocol)."""

    def __init__(
        self,
        pool: MirrorPool,
        mirror: HostMirror,
        rows: list[tuple[int, torch.device]],
        layers: list[int],
        experts: int,
        top_k: int,
    ) -> None:
        self._pool = pool
        self._mirror = mirror
        self._rows = rows
        self._layers = layers
        self._experts = experts
        self._top_k = top_k

    def wait(self) -> None:
        """Block the calling (encoder) thread until the copies have landed."""
        self._mirror.wait()

    def messages(self) -> list[Message]:
        """The MOE_ROUTING frame, read from the host buffers' numpy views."""
        e = self._experts
        host = self._mirror
        values = np.stack([host.array(str(device))[row] for row, device in self._rows])
        routing = MoeRouting(
            layers=np.asarray(self._layers, dtype=np.uint16),
            tokens=np.rint(values[:, :e]).astype(np.uint32),
            probs=values[:, e : 2 * e].astype(np.float32),
            dropped=np.rint(values[:, 2 * e]).astype(np.uint32),
            top_k=self._top_k,
        )
        return [routing]

    def release(self) -> None:
        """Give the host buffers back to the lens."""
        self._pool.release(self._mirror)


def _logits_and_choice(
    output: Any, choice: Choice
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(router logits, the model's own expert indices when the router returns them)."""
    if isinstance(output, torch.Tensor):
        return output, None
    if not isinstance(output, (tuple, list)) or not output:
        return None, None
    logits = output[0] if isinstance(output[0], torch.Tensor) else None
    indices = output[2] if choice is Choice.INDICES and len(output) > 2 else None
    if isinstance(indices, torch.Tensor) and not indices.is_floating_point():
        return logits, indices
    return logits, None
