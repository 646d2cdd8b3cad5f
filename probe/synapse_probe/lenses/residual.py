"""Per-token L2 norms of the residual stream at each block's output (RESIDUAL frames).

Forward hooks on the blocks write, on the steps the attention lens samples patterns, the norm of
each of batch row 0's first ``T`` token vectors into one preallocated device buffer ``[L, T]``
(float32, computed on the tensor's device; nothing is read back).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..sites import first_tensor
from .lens import outside_graphs


class ResidualNorms:
    """Hooks ``blocks``; ``begin(True)`` arms them for one step, ``norms`` holds the result."""

    def __init__(
        self, blocks: Sequence[nn.Module], sample_tokens: int, on_time: Callable[[int], None]
    ) -> None:
        self.sample_tokens = sample_tokens
        self.norms: torch.Tensor | None = None  # [L, T] on the blocks' device
        self.tokens = 0  # T of this step (0 until a block ran)
        self.ran = [False] * len(blocks)
        self._active = False
        self._on_time = on_time
        self._handles: list[RemovableHandle] = [
            block.register_forward_hook(self._hook(i)) for i, block in enumerate(blocks)
        ]

    def begin(self, active: bool) -> None:
        """Arm (or disarm) the hooks for the coming step."""
        self._active = active
        self.tokens = 0
        self.ran = [False] * len(self.ran)

    def stop(self) -> None:
        """Disarm the hooks, keeping what this step recorded."""
        self._active = False

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, index: int) -> Callable[..., None]:
        def on_block_output(module: nn.Module, args: Any, output: Any) -> None:
            if self._active and not self.ran[index]:  # a checkpoint re-run finds it done
                self._record(index, output)

        return outside_graphs(on_block_output)

    def _record(self, index: int, output: Any) -> None:
        begin = time.perf_counter_ns()
        hidden = first_tensor(output)
        if hidden is None or hidden.dim() != 3 or hidden.shape[1] == 0:
            return
        tokens = min(hidden.shape[1], self.sample_tokens)
        if self.tokens and tokens != self.tokens:
            return
        norms = self.norms
        moved = norms is not None and norms.device != hidden.device and not any(self.ran)
        if norms is None or norms.shape != (len(self.ran), tokens) or moved:
            norms = self.norms = torch.zeros(
                len(self.ran), tokens, dtype=torch.float32, device=hidden.device
            )
        with torch.no_grad():
            row = hidden.detach()[0, :tokens]
            row_norms = torch.linalg.vector_norm(row, dim=-1, dtype=torch.float32)
            norms[index].copy_(row_norms, non_blocking=True)  # another GPU: pipelined models
        self.tokens = tokens
        self.ran[index] = True
        self._on_time(time.perf_counter_ns() - begin)
