"""Per-token residual norms of the sampled sequence (RESIDUAL): the latest ``[L, T]`` per rank.

RESIDUAL frames come on the same steps as ATTENTION (same sampled sequence, same tokens), so
the token strings are looked up through ``tokens_for(step, rank)`` (the session asks its
attention model); without them positions are labelled by index. Merged (``MERGED``): the lowest
rank's frame, as for sparse points and attention patterns (norms of one sequence, never an
average over different sequences).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.signal import Signal

MERGED = -1

TokensFor = Callable[[int, int], Sequence[str] | None]


@dataclass(frozen=True, slots=True)
class ResidualSnapshot:
    """One frame: ``norms[l, t]`` is the L2 norm of token ``t``'s residual stream after block
    ``layers[l]`` (rows in ascending layer order)."""

    step: int
    rank: int
    layers: npt.NDArray[np.int64]  # [L]
    norms: npt.NDArray[np.float32]  # [L, T], a copy

    @property
    def n_tokens(self) -> int:
        return int(self.norms.shape[1])

    def row_of(self, layer: int) -> int:
        at = np.flatnonzero(self.layers == layer)
        return int(at[0]) if len(at) else -1


class ResidualTokensModel:
    """The latest RESIDUAL frame of every rank. A frame of a step older than the one held for
    its rank is ignored; ``changed`` fires from ``flush`` when one was kept or all cleared."""

    def __init__(self, tokens_for: TokensFor | None = None) -> None:
        self.changed = Signal()
        self.tokens_for = tokens_for
        self._by_rank: dict[int, ResidualSnapshot] = {}
        self._dirty = False

    @property
    def ranks(self) -> list[int]:
        return sorted(self._by_rank)

    def take(self, rank: int, step: int, layers: npt.ArrayLike, norms: npt.ArrayLike) -> bool:
        """Keep one RESIDUAL frame of ``rank``; returns whether it was kept (not stale)."""
        held = self._by_rank.get(rank)
        if held is not None and step < held.step:
            return False
        ids = np.asarray(layers, np.int64).ravel()
        values = np.array(norms, np.float32).reshape(len(ids), -1)
        order = np.argsort(ids, kind="stable")
        self._by_rank[rank] = ResidualSnapshot(step, rank, ids[order], values[order])
        self._dirty = True
        return True

    def shown(self, rank: int = MERGED) -> ResidualSnapshot | None:
        """``rank``'s latest frame; for ``MERGED`` (or a rank that sent none) the lowest rank's."""
        held = self._by_rank.get(rank)
        if held is None and self._by_rank:
            held = self._by_rank[min(self._by_rank)]
        return held

    def labels(self, snapshot: ResidualSnapshot) -> tuple[str, ...]:
        """The token strings of ``snapshot`` when the attention frame of its step and rank has
        them (and as many), else the positions ``"0"``, ``"1"``, ..."""
        n = snapshot.n_tokens
        tokens = self.tokens_for(snapshot.step, snapshot.rank) if self.tokens_for else None
        if tokens is not None and len(tokens) == n:
            return tuple(tokens)
        return tuple(str(i) for i in range(n))

    def clear(self) -> None:
        """Forget every frame (a new training run)."""
        if self._by_rank:
            self._dirty = True
        self._by_rank.clear()

    def flush(self) -> None:
        if self._dirty:
            self._dirty = False
            self.changed.emit()
