"""Per-block parameter-gradient norms, computed on the device after backward (no host sync)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class BlockGradNorms:
    """The trainable parameters of each block, and the L2 norm of each block's gradients."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        self.params = [[p for p in block.parameters() if p.requires_grad] for block in blocks]
        self._index: dict[
            tuple[torch.device, tuple[int, ...]], tuple[torch.Tensor, torch.Tensor | None]
        ] = {}

    def __len__(self) -> int:
        return len(self.params)

    def write_into(self, out: torch.Tensor) -> bool:
        """Write block norms into ``out`` (float64, one entry per block); False if no gradients.

        One fused norm over every gradient, then one scatter of the squares onto their blocks.
        A block without any gradient (on ``out``'s device) gets NaN, not 0.
        """
        grads: list[torch.Tensor] = []
        lengths: list[int] = []
        for params in self.params:
            found = [
                p.grad
                for p in params
                if p.grad is not None and not p.grad.is_sparse and p.grad.device == out.device
            ]
            grads.extend(found)
            lengths.append(len(found))
        if not grads:
            return False
        norms = torch._foreach_norm(grads, 2, dtype=torch.float32)
        squares = torch.stack(norms).to(torch.float64).square_()
        index, empty = self._block_index(out.device, tuple(lengths))
        out.zero_()
        out.index_add_(0, index, squares)
        out.sqrt_()
        if empty is not None:
            out.index_fill_(0, empty, math.nan)
        return True

    def _block_index(
        self, device: torch.device, lengths: tuple[int, ...]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Which block each gradient belongs to, and the blocks without any (None if none),
        built on the device (no host-to-device copy)."""
        key = (device, lengths)
        found = self._index.get(key)
        if found is None:
            parts = [
                torch.full((n,), block, dtype=torch.long, device=device)
                for block, n in enumerate(lengths)
            ]
            empties = [
                torch.full((1,), block, dtype=torch.long, device=device)
                for block, n in enumerate(lengths)
                if n == 0
            ]
            found = self._index[key] = (torch.cat(parts), torch.cat(empties) if empties else None)
        return found
