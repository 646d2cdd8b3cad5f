"""MoE router decisions (MOE_ROUTING) of the last ``capacity`` routing steps, per rank and merged.

Every frame carries, for each MoE layer, the token assignments per expert, the mean router
probability per expert and the assignments dropped by a capacity limit. Derived per layer and
step (``RoutingWindow``):

- **share** of an expert: its assignments / the layer's assignments (NaN when none);
  a balanced router gives every expert ``1 / E``.
- **cv**: coefficient of variation of the assignment counts across the layer's experts,
  population std / mean (0: perfectly balanced; NaN when the layer had no assignments).
- **drop fraction**: dropped / assignments (the counts are the router's choices, the dropped
  ones among them), clipped to 0..1; 0 for dropless routers.

**Ranks**: each rank keeps its own ring. The merge (``MERGED``, shown by default) adds the
counts and the drops of every rank for the same step (the whole batch's routing, since each
rank routes its own tokens) and averages the probabilities over the ranks that reported the
layer. A rank's step not newer than what it sent before is stale and ignored; in the merge, a
step older than every held one that is not held is dropped (as ``GradNorms`` does).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.signal import Signal
from synapse_desktop.models.topology import Topology
from synapse_native.protocol import SiteKind

MERGED = -1  # the same choice as ``ranks.MERGED``: the sum across ranks
DEFAULT_CAPACITY = 512

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RoutingWindow:
    """The held steps, oldest first: ``tokens[s, l, e]`` of step ``steps[s]``, MoE layer
    ``layers[l]`` (``experts[l]`` of them; cells beyond are 0 and not present)."""

    layers: I64  # [L] layer ids, ascending
    experts: I64  # [L] experts of each layer
    steps: I64  # [S]
    tokens: I64  # [S, L, E]
    prob_sum: F64  # [S, L, E] router probabilities summed over the reports
    reports: npt.NDArray[np.int32]  # [S, L] frames (ranks) that reported the layer
    dropped: I64  # [S, L]
    top_k: int

    @property
    def present(self) -> npt.NDArray[np.bool_]:
        """[S, L] the layer was reported at that step."""
        return self.reports > 0

    def probs(self) -> F32:
        """[S, L, E] mean router probability over the reports (NaN: not reported)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            probs = (self.prob_sum / self.reports[..., None]).astype(np.float32)
        probs[self.reports == 0] = np.nan
        return probs

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def n_experts(self) -> int:
        return int(self.tokens.shape[2])

    @property
    def newest(self) -> int:
        """The newest step held (-1: none)."""
        return int(self.steps[-1]) if len(self.steps) else -1

    def row_of(self, layer: int) -> int:
        """The row of layer id ``layer`` (-1: no routing for it)."""
        at = np.flatnonzero(self.layers == layer)
        return int(at[0]) if len(at) else -1

    def tail(self, n: int) -> RoutingWindow:
        """The newest ``n`` steps only (views, no copy)."""
        start = max(0, len(self.steps) - n)
        return dataclasses.replace(
            self,
            steps=self.steps[start:],
            tokens=self.tokens[start:],
            prob_sum=self.prob_sum[start:],
            reports=self.reports[start:],
            dropped=self.dropped[start:],
        )

    def layer(self, row: int) -> RoutingWindow:
        """Layer row ``row`` only, its own experts (views, no copy)."""
        e = int(self.experts[row])
        rows = slice(row, row + 1)
        return dataclasses.replace(
            self,
            layers=self.layers[rows],
            experts=self.experts[rows],
            tokens=self.tokens[:, rows, :e],
            prob_sum=self.prob_sum[:, rows, :e],
            reports=self.reports[:, rows],
            dropped=self.dropped[:, rows],
        )

    def share(self) -> F64:
        """[S, L, E] each expert's share of its layer's assignments (NaN: none, or no such
        expert)."""
        return token_share(self.tokens, self.present, self.experts)

    def cv(self) -> F64:
        """[S, L] coefficient of variation of the counts across each layer's experts."""
        return count_cv(self.tokens, self.present, self.experts)

    def drop_fraction(self) -> F64:
        """[S, L] dropped / assignments, 0..1 (NaN: not reported or no assignments)."""
        return drop_fraction(self.tokens, self.dropped, self.present)

    def mean_share(self, last: int) -> F64:
        """[L, E] the share averaged over the last ``last`` steps that reported each layer."""
        share = self.tail(last).share()
        if not len(share):
            return np.full((len(self.layers), self.n_experts), np.nan)
        with warnings.catch_warnings():  # an all-NaN cell is NaN, on purpose
            warnings.simplefilter("ignore", RuntimeWarning)
            mean: F64 = np.nanmean(share, axis=0)
        return mean

    def idle_steps(self) -> I64:
        """[L, E] how many of the newest steps in a row each expert got no assignment (only
        steps that reported its layer count; -1 beyond the layer's experts)."""
        out = np.zeros((len(self.layers), self.n_experts), np.int64)
        running = np.ones_like(out, dtype=bool)
        for s in range(len(self.steps) - 1, -1, -1):
            reported = self.present[s][:, None]
            idle = self.tokens[s] == 0
            running &= ~reported | idle
            out += running & reported
            if not running.any():
                break
        out[np.arange(self.n_experts)[None, :] >= self.experts[:, None]] = -1
        return out


def token_share(tokens: I64, present: npt.NDArray[np.bool_], experts: I64) -> F64:
    """Each expert's share of its layer's assignments (see the module's definitions)."""
    counts = tokens.astype(np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share: F64 = counts / total
    valid = present[..., None] & (total > 0) & (np.arange(counts.shape[-1]) < experts[:, None])
    share[~valid] = np.nan
    return share


def count_cv(tokens: I64, present: npt.NDArray[np.bool_], experts: I64) -> F64:
    """Population std / mean of the counts over each layer's own experts."""
    counts = tokens.astype(np.float64)
    inside = np.arange(counts.shape[-1]) < experts[:, None]  # [L, E]
    n = np.maximum(experts, 1).astype(np.float64)
    mean = counts.sum(axis=-1) / n
    deviation = np.where(inside, counts - mean[..., None], 0.0)
    std = np.sqrt((deviation**2).sum(axis=-1) / n)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv: F64 = std / mean
    cv[~present | (mean <= 0)] = np.nan
    return cv


def drop_fraction(tokens: I64, dropped: I64, present: npt.NDArray[np.bool_]) -> F64:
    """Dropped / assignments, clipped to 0..1 (NaN: not reported, or no assignments)."""
    total = tokens.sum(axis=-1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction: F64 = np.clip(dropped / total, 0.0, 1.0)
    fraction[~present | (total <= 0)] = np.nan
    return fraction


class _Ring:
    """One stream's steps (a ring), with per-step sums over the frames that reported them."""

    def __init__(self, capacity: int, layers: int, experts: int) -> None:
        self.capacity = capacity
        self.steps = np.full(capacity, -1, np.int64)
        self.tokens = np.zeros((capacity, layers, experts), np.int64)
        self.prob_sum = np.zeros((capacity, layers, experts), np.float64)
        self.dropped = np.zeros((capacity, layers), np.int64)
        self.reports = np.zeros((capacity, layers), np.int32)
        self.count = 0  # steps started so far (the head is count % capacity)

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    @property
    def newest(self) -> int:
        return int(self.steps[(self.count - 1) % self.capacity]) if self.count else -1

    def grow(self, layers: int, experts: int, moved: I64) -> None:
        """Take a larger layer x expert shape; old layer row ``i`` moves to ``moved[i]``."""
        old = (self.tokens, self.prob_sum, self.dropped, self.reports)
        self.tokens = np.zeros((self.capacity, layers, experts), np.int64)
        self.prob_sum = np.zeros((self.capacity, layers, experts), np.float64)
        self.dropped = np.zeros((self.capacity, layers), np.int64)
        self.reports = np.zeros((self.capacity, layers), np.int32)
        e = old[0].shape[2]
        self.tokens[:, moved, :e] = old[0]
        self.prob_sum[:, moved, :e] = old[1]
        self.dropped[:, moved] = old[2]
        self.reports[:, moved] = old[3]

    def add(
        self, step: int, rows: I64, tokens: I64, probs: F32, dropped: I64, accumulate: bool
    ) -> bool:
        """Add one frame's layers (``rows``) to ``step``; returns whether anything was kept.

        ``accumulate``: add to layers the step already has (the merge); otherwise those are
        repeats and ignored.
        """
        held = np.flatnonzero(self.steps == step) if self.count else np.zeros(0, np.intp)
        if len(held):
            slot = int(held[0])
        elif step > self.newest:
            slot = self.count % self.capacity
            self.steps[slot] = step
            self.tokens[slot] = 0
            self.prob_sum[slot] = 0.0
            self.dropped[slot] = 0
            self.reports[slot] = 0
            self.count += 1
        else:
            return False
        if not accumulate:
            new = self.reports[slot, rows] == 0
            if not new.any():
                return False
            rows, tokens, probs, dropped = rows[new], tokens[new], probs[new], dropped[new]
        e = tokens.shape[1]
        self.tokens[slot, rows, :e] += tokens
        self.prob_sum[slot, rows, :e] += probs
        self.dropped[slot, rows] += dropped
        self.reports[slot, rows] += 1
        return True

    def copy(self) -> _Ring:
        ring = _Ring(self.capacity, 0, 0)
        ring.steps, ring.count = self.steps.copy(), self.count
        ring.tokens, ring.prob_sum = self.tokens.copy(), self.prob_sum.copy()
        ring.dropped, ring.reports = self.dropped.copy(), self.reports.copy()
        return ring

    def window(self, layers: I64, experts: I64, top_k: int) -> RoutingWindow:
        n = len(self)
        order = (np.arange(n) + self.count - n) % self.capacity
        return RoutingWindow(
            layers.copy(),
            experts.copy(),
            self.steps[order],
            self.tokens[order],
            self.prob_sum[order],
            self.reports[order],
            self.dropped[order],
            top_k,
        )


class RoutingHistory:
    """Per rank, and merged across ranks, a ring of the last ``capacity`` routing steps.

    ``changed`` fires from ``flush`` when anything was added or cleared. The layer x expert
    shape grows as layers and experts appear (memory: about
    ``capacity x layers x experts x 16`` bytes per rank, plus the merge with several ranks).
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity}")
        self.capacity = capacity
        self.changed = Signal()
        self.layers = np.zeros(0, np.int64)
        self.experts = np.zeros(0, np.int64)
        self.top_k = 0
        self._rings: dict[int, _Ring] = {}
        self._merged: _Ring | None = None  # kept from the second rank on
        self._dirty = False

    @property
    def ranks(self) -> list[int]:
        """The ranks that sent routing, ascending."""
        return sorted(self._rings)

    @property
    def empty(self) -> bool:
        return not any(len(ring) for ring in self._rings.values())

    def append(
        self,
        rank: int,
        step: int,
        layers: npt.ArrayLike,
        tokens: npt.ArrayLike,
        probs: npt.ArrayLike,
        dropped: npt.ArrayLike,
        top_k: int,
    ) -> bool:
        """Add one MOE_ROUTING frame of ``rank``; returns whether it was kept (not stale)."""
        ids = np.asarray(layers, np.int64).ravel()
        counts = np.asarray(tokens, np.int64).reshape(len(ids), -1)
        mean_probs = np.asarray(probs, np.float32).reshape(counts.shape)
        drops = np.asarray(dropped, np.int64).reshape(len(ids))
        rows = self._rows(ids, counts.shape[1])
        ring = self._rings.get(rank)
        if ring is None:
            ring = self._new_ring(rank)
        if not ring.add(step, rows, counts, mean_probs, drops, accumulate=False):
            return False
        if self._merged is not None:
            self._merged.add(step, rows, counts, mean_probs, drops, accumulate=True)
        self.top_k = int(top_k)
        self._dirty = True
        return True

    def shown(self, rank: int = MERGED) -> RoutingWindow:
        """The steps of ``rank``, or of the merge (``MERGED``; also for a rank that sent no
        routing, so a rank choice made for other data still shows something)."""
        ring = self._rings.get(rank)
        if ring is None:
            ring = self._merged if self._merged is not None else self._only()
        if ring is None:
            ring = _Ring(self.capacity, len(self.layers), int(self.experts.max(initial=0)))
        return ring.window(self.layers, self.experts, self.top_k)

    def clear(self) -> None:
        """Forget every step, rank and layer (a new training run)."""
        if self._rings:
            self._dirty = True
        self._rings.clear()
        self._merged = None
        self.layers = np.zeros(0, np.int64)
        self.experts = np.zeros(0, np.int64)
        self.top_k = 0

    def flush(self) -> None:
        """Emit ``changed()`` if anything was added or cleared since the last flush."""
        if self._dirty:
            self._dirty = False
            self.changed.emit()

    # -- helpers --------------------------------------------------------------------------------

    def _only(self) -> _Ring | None:
        return next(iter(self._rings.values()), None)

    def _new_ring(self, rank: int) -> _Ring:
        width = int(self.experts.max(initial=0))
        ring = _Ring(self.capacity, len(self.layers), width)
        if len(self._rings) == 1:  # the second rank: the merge starts as the first one's
            only = self._only()
            assert only is not None
            self._merged = only.copy()
        self._rings[rank] = ring
        return ring

    def _rows(self, ids: I64, n_experts: int) -> I64:
        """The rows of layer ``ids``, growing the shape for new layers or more experts."""
        known = np.isin(ids, self.layers)
        width = int(self.experts.max(initial=0))
        if known.all() and n_experts <= width:
            rows = np.searchsorted(self.layers, ids).astype(np.int64)
            self.experts[rows] = np.maximum(self.experts[rows], n_experts)
            return rows
        merged_ids = np.union1d(self.layers, ids).astype(np.int64)
        moved = np.searchsorted(merged_ids, self.layers).astype(np.int64)
        experts = np.zeros(len(merged_ids), np.int64)
        experts[moved] = self.experts
        rows = np.searchsorted(merged_ids, ids).astype(np.int64)
        experts[rows] = np.maximum(experts[rows], n_experts)
        width = max(width, n_experts)
        rings = [*self._rings.values(), *([self._merged] if self._merged is not None else [])]
        for ring in rings:
            ring.grow(len(merged_ids), width, moved)
        self.layers, self.experts = merged_ids, experts
        return rows


def layer_site(topology: Topology, layer: int) -> int:
    """The site that stands for MoE layer ``layer``: its MLP site, else its expert or router
    site, else its first site; -1 when the topology has none in that layer."""
    in_layer = [site for site in topology.sites if site.layer == layer]
    for kind in (SiteKind.MLP, SiteKind.EXPERT, SiteKind.ROUTER):
        for site in in_layer:
            if site.kind == kind:
                return site.index
    return in_layer[0].index if in_layer else -1
