"""Attention of the sampled sequence: the latest pattern per (layer, head) (ATTENTION), the
per-head entropy and max logit of each measured step (HEAD_STATS), and which head the views
show (``HeadChoice``).

Per rank like ``MetricsHistory``: every rank's data is kept, and a reader names a rank or
``None`` for the merged view. Merged patterns come from the lowest rank that sent the (layer,
head) (rank 0 normally; with pipeline stages, the rank that owns the layer): weights of one
rank's sequence, never an average of different sequences. Merged head statistics are the mean
across ranks, per layer over the ranks that report it, at the newest step every rank has sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.signal import Signal
from synapse_native.protocol import AttentionPattern, HeadStats

MAX_PATTERNS = 4096  # per rank (float16, 32 KiB each at 128 tokens); the oldest steps go first
STATISTICS = ("entropy", "max_logit")  # what the head heatmap can show
STATISTIC_LABELS = {"entropy": "entropy (nats)", "max_logit": "max logit"}

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Pattern:
    """One head's attention over one sampled sequence: ``weights[query, key]``."""

    layer: int
    head: int
    step: int
    tokens: tuple[str, ...]
    weights: npt.NDArray[np.float16]  # [T, T], a copy (the frame's buffer is not kept alive)
    sequence: int
    timestamp_ns: int  # the trainer's clock when it sent the frame
    rank: int


class AttentionPatterns:
    """The latest pattern of every (rank, layer, head); a pattern of an older step than the one
    held never replaces it. At most ``capacity`` heads per rank (the oldest steps are dropped).
    ``changed`` fires from ``flush`` when anything was kept or cleared."""

    def __init__(self, capacity: int = MAX_PATTERNS) -> None:
        self.capacity = capacity
        self.changed = Signal()
        self._by_rank: dict[int, dict[tuple[int, int], Pattern]] = {}
        self._dirty = False

    def apply(self, msg: AttentionPattern, step: int, rank: int, timestamp_ns: int = 0) -> None:
        """Keep the pairs of one ATTENTION frame (its header's step, rank and timestamp)."""
        held = self._by_rank.setdefault(rank, {})
        weights = np.asarray(msg.weights, np.float16)
        for i, (layer, head) in enumerate(
            zip(msg.layers.tolist(), msg.heads.tolist(), strict=True)
        ):
            old = held.get((layer, head))
            if old is not None and old.step > step:
                continue
            held[(layer, head)] = Pattern(
                layer, head, step, msg.tokens, weights[i].copy(), msg.sequence, timestamp_ns, rank
            )
            self._dirty = True
        while len(held) > self.capacity:
            del held[min(held, key=lambda pair: held[pair].step)]

    def pattern(self, layer: int, head: int, rank: int | None = None) -> Pattern | None:
        """The latest pattern of (layer, head): ``rank``'s, or with None the lowest rank's that
        has one."""
        ranks = [rank] if rank is not None else sorted(self._by_rank)
        for r in ranks:
            found = self._by_rank.get(r, {}).get((layer, head))
            if found is not None:
                return found
        return None

    def pairs(self, rank: int | None = None) -> list[tuple[int, int]]:
        """Every (layer, head) with a pattern (``rank``'s, or any rank's), sorted."""
        ranks = [rank] if rank is not None else list(self._by_rank)
        return sorted({pair for r in ranks for pair in self._by_rank.get(r, {})})

    def ranks(self) -> list[int]:
        """Every rank that sent a pattern, ascending."""
        return sorted(self._by_rank)

    def __len__(self) -> int:
        return sum(len(held) for held in self._by_rank.values())

    def clear(self) -> None:
        """Forget every pattern (a new training run)."""
        if self._by_rank:
            self._dirty = True
        self._by_rank.clear()

    def flush(self) -> None:
        """Emit ``changed()`` if anything was kept or cleared since the last flush."""
        if self._dirty:
            self._dirty = False
            self.changed.emit()


@dataclass(frozen=True, slots=True)
class HeadStatsFrame:
    """Entropy and max logit of every (layer, head) at one step; rows follow ``layers``."""

    step: int
    layers: tuple[int, ...]
    entropy: F32  # [L, H]; NaN where not reported, or where the trainer measured NaN
    max_logit: F32  # [L, H]
    reported: npt.NDArray[np.bool_]  # [L]: some rank sent the row at this step
    tokens: int  # T, the sampled sequence's length (entropy is at most log T)

    def values(self, statistic: str) -> F32:
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        return self.entropy if statistic == "entropy" else self.max_logit

    def row_of(self, layer: int) -> int:
        """The row of layer id ``layer`` (-1: not reported)."""
        return self.layers.index(layer) if layer in self.layers else -1


class _Ring:
    """One rank's head statistics of its last ``capacity`` steps, on a shared layer axis."""

    def __init__(self, capacity: int, n_layers: int, n_heads: int) -> None:
        self.capacity = capacity
        self.steps = np.full(capacity, -1, np.int64)
        self.entropy = np.full((capacity, n_layers, n_heads), np.nan, np.float32)
        self.max_logit = np.full((capacity, n_layers, n_heads), np.nan, np.float32)
        self.reported = np.zeros((capacity, n_layers), np.bool_)
        self.tokens = np.zeros(capacity, np.int64)
        self.count = 0  # steps appended so far (the head is count % capacity)

    @property
    def newest(self) -> int:
        return int(self.steps[(self.count - 1) % self.capacity]) if self.count else -1

    def __len__(self) -> int:
        return min(self.count, self.capacity)

    def slot_of(self, step: int) -> int:
        """The slot holding ``step`` (-1: not held)."""
        held = np.flatnonzero(self.steps == step)
        return int(held[0]) if len(held) else -1

    def grow(self, n_layers: int, n_heads: int) -> None:
        """Widen to at least ``n_layers`` rows and ``n_heads`` heads (NaN in the new cells)."""
        _, old_layers, old_heads = self.entropy.shape
        if n_layers <= old_layers and n_heads <= old_heads:
            return
        shape = (self.capacity, max(n_layers, old_layers), max(n_heads, old_heads))
        for name in ("entropy", "max_logit"):
            grown = np.full(shape, np.nan, np.float32)
            grown[:, :old_layers, :old_heads] = getattr(self, name)
            setattr(self, name, grown)
        reported = np.zeros(shape[:2], np.bool_)
        reported[:, :old_layers] = self.reported
        self.reported = reported

    def put(
        self, step: int, rows: npt.NDArray[np.intp], entropy: F32, max_logit: F32, t: int
    ) -> bool:
        """Write one frame's rows at ``step``; returns whether it was kept (a step older than
        every held one and not held itself is dropped)."""
        slot = self.slot_of(step) if self.count else -1
        if slot < 0:
            if step < self.newest:
                return False
            slot = self.count % self.capacity
            self.steps[slot] = step
            self.entropy[slot] = np.nan
            self.max_logit[slot] = np.nan
            self.reported[slot] = False
            self.count += 1
        heads = entropy.shape[1]
        self.entropy[slot, rows, :heads] = entropy
        self.max_logit[slot, rows, :heads] = max_logit
        self.reported[slot, rows] = True
        self.tokens[slot] = t
        return True

    def order(self) -> npt.NDArray[np.intp]:
        """The held slots, oldest first."""
        n = len(self)
        return (np.arange(n) + self.count - n) % self.capacity


class HeadStatsHistory:
    """Per rank, a ring of the last ``capacity`` steps of per-head entropy and max logit.

    Layers are the union of the layer ids received (any rank), ascending; a layer a rank does
    not report is NaN there. Frames of a step already held fill that step (a pipeline stage
    sends its own layers). ``changed`` fires from ``flush`` when anything was kept or cleared.
    """

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2, got {capacity}")
        self.capacity = capacity
        self.changed = Signal()
        self.layers: list[int] = []
        self.n_heads = 0
        self._rings: dict[int, _Ring] = {}
        self._dirty = False

    def apply(self, msg: HeadStats, step: int, rank: int) -> None:
        """Keep one HEAD_STATS frame (its header's step and rank)."""
        ids = [int(v) for v in msg.layers.tolist()]
        heads = int(msg.entropy.shape[1]) if msg.entropy.ndim == 2 else 0
        new = sorted(set(ids) - set(self.layers))
        if new:
            self._add_layers(new)
        self.n_heads = max(self.n_heads, heads)
        ring = self._rings.get(rank)
        if ring is None:
            ring = self._rings[rank] = _Ring(self.capacity, len(self.layers), self.n_heads)
        ring.grow(len(self.layers), self.n_heads)
        rows = np.searchsorted(np.asarray(self.layers), np.asarray(ids, np.int64))
        entropy = np.asarray(msg.entropy, np.float32).reshape(len(ids), heads)
        max_logit = np.asarray(msg.max_logit, np.float32).reshape(len(ids), heads)
        if ring.put(step, rows, entropy, max_logit, int(msg.tokens)):
            self._dirty = True

    def _add_layers(self, new: list[int]) -> None:
        """Insert layer ids into the shared axis, moving every ring's rows."""
        merged = sorted(set(self.layers) | set(new))
        where = np.searchsorted(np.asarray(merged), np.asarray(self.layers, np.int64))
        for ring in self._rings.values():
            shape = (ring.capacity, len(merged), ring.entropy.shape[2])
            for name in ("entropy", "max_logit"):
                moved = np.full(shape, np.nan, np.float32)
                moved[:, where] = getattr(ring, name)
                setattr(ring, name, moved)
            reported = np.zeros(shape[:2], np.bool_)
            reported[:, where] = ring.reported
            ring.reported = reported
        self.layers = merged

    def ranks(self) -> list[int]:
        """Every rank that sent head statistics, ascending."""
        return sorted(self._rings)

    @property
    def newest(self) -> int:
        """The newest step any rank sent (-1: none)."""
        return max((ring.newest for ring in self._rings.values()), default=-1)

    def latest(self, rank: int | None = None) -> HeadStatsFrame | None:
        """The newest step's statistics: ``rank``'s, or with None the mean across ranks at the
        newest step every rank has sent (per cell over the ranks that report it). None: no data
        (or, merged, no step held by every rank)."""
        rings = self._parts(rank)
        if not rings:
            return None
        step = min(ring.newest for ring in rings)
        slots = [ring.slot_of(step) for ring in rings]
        if any(slot < 0 for slot in slots):
            return None
        layers = tuple(self.layers)
        picked = list(zip(rings, slots, strict=True))
        if len(rings) == 1:
            ring, slot = picked[0]
            return HeadStatsFrame(
                step,
                layers,
                ring.entropy[slot].copy(),
                ring.max_logit[slot].copy(),
                ring.reported[slot].copy(),
                int(ring.tokens[slot]),
            )
        reported = np.stack([r.reported[s] for r, s in picked])  # [ranks, L]
        entropy = _mean_reported(np.stack([r.entropy[s] for r, s in picked]), reported)
        max_logit = _mean_reported(np.stack([r.max_logit[s] for r, s in picked]), reported)
        tokens = max(int(r.tokens[s]) for r, s in picked)
        return HeadStatsFrame(step, layers, entropy, max_logit, np.any(reported, axis=0), tokens)

    def series(
        self, layer: int, head: int, statistic: str, rank: int | None = None
    ) -> tuple[npt.NDArray[np.int64], F32]:
        """One head's statistic over the held steps, oldest first: ``rank``'s, or with None the
        mean across the ranks that report it at the steps every rank holds."""
        if statistic not in STATISTICS or layer not in self.layers:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        row = self.layers.index(layer)
        rings = [ring for ring in self._parts(rank) if head < ring.entropy.shape[2]]
        if not rings:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        lives = []
        for ring in rings:
            order = ring.order()
            values = getattr(ring, statistic)[order, row, head]
            lives.append((ring.steps[order], values, ring.reported[order, row]))
        common = lives[0][0]
        for steps, _, _ in lives[1:]:
            common = np.intersect1d(common, steps)
        at = [np.searchsorted(steps, common) for steps, _, _ in lives]
        values = np.stack([v[i] for (_, v, _), i in zip(lives, at, strict=True)])
        reported = np.stack([r[i] for (_, _, r), i in zip(lives, at, strict=True)])
        return common.astype(np.int64), _mean_reported(values[..., None], reported)[:, 0]

    def __len__(self) -> int:
        """Steps held by the rank holding most."""
        return max((len(ring) for ring in self._rings.values()), default=0)

    def clear(self) -> None:
        """Forget every step, layer and rank (a new training run)."""
        if self._rings:
            self._dirty = True
        self._rings.clear()
        self.layers = []
        self.n_heads = 0

    def flush(self) -> None:
        """Emit ``changed()`` if anything was kept or cleared since the last flush."""
        if self._dirty:
            self._dirty = False
            self.changed.emit()

    def _parts(self, rank: int | None) -> list[_Ring]:
        if rank is not None:
            one = self._rings.get(rank)
            return [] if one is None or not one.count else [one]
        return [self._rings[r] for r in sorted(self._rings) if self._rings[r].count]


def _mean_reported(values: F32, reported: npt.NDArray[np.bool_]) -> F32:
    """The mean over ranks (axis 0) of rows (axis 1) the ranks reported; NaN where none did. A
    NaN a rank measured stays NaN in the mean."""
    mask = reported[:, :, None] if values.ndim == 3 else reported
    count = mask.sum(axis=0)
    total = np.where(mask, values, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean.astype(np.float32)


class HeadChoice:
    """The head the attention views show, the statistic of the head heatmap, the query token
    clicked (``query``) and the one under the pointer (``hovered``); -1: none.

    ``changed`` fires when the head, statistic or clicked query changed; ``hovered_changed`` when
    the pointer moved to another query (cheap: the views only repaint).
    """

    def __init__(self) -> None:
        self.changed = Signal()
        self.hovered_changed = Signal()
        self.layer = -1
        self.head = -1
        self.statistic = "entropy"
        self.query = -1
        self.hovered = -1

    @property
    def shown_query(self) -> int:
        """The query the views highlight: the hovered one, else the clicked one."""
        return self.hovered if self.hovered >= 0 else self.query

    def choose(self, layer: int, head: int) -> None:
        if (layer, head) != (self.layer, self.head):
            self.layer, self.head = layer, head
            self.changed.emit()

    def show(self, statistic: str) -> None:
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")
        if statistic != self.statistic:
            self.statistic = statistic
            self.changed.emit()

    def focus(self, query: int) -> None:
        """Pin ``query`` (-1: none)."""
        if query != self.query:
            self.query = query
            self.changed.emit()

    def hover(self, query: int) -> None:
        if query != self.hovered:
            self.hovered = query
            self.hovered_changed.emit()
