"""A synthetic transformer whose activation statistics look like Llama-3-8B's while it trains.

Numpy only (no torch). Each site keeps a per-neuron profile of mean |x| that drifts slowly over
steps; a step scales it by a training trend, a per-site jitter and, rarely, a spike. Values for
summary statistics are drawn from small per-kind pools shaped like the real distributions
(Gaussian-ish attention output, heavy-tailed SwiGLU products, a residual stream with a few
massive-activation channels), so one step costs a handful of vector operations per site.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]

# Llama-3-8B.
HIDDEN = 4096
INTERMEDIATE = 14336
N_HEADS = 32
N_KV_HEADS = 8
HEAD_DIM = HIDDEN // N_HEADS

# Site kinds shown per block, by --per-block preset.
PER_BLOCK: dict[str, tuple[str, ...]] = {
    "attn+mlp": ("attn", "mlp"),
    "attn+mlp+residual": ("attn", "mlp", "residual"),
    "residual": ("residual",),
}
NEURONS = {"attn": HIDDEN, "mlp": INTERMEDIATE, "residual": HIDDEN}

# Residual channels that carry massive activations (fixed across layers and steps).
MASSIVE_CHANNELS = np.array([788, 1384, 4062], dtype=np.int64)
_MASSIVE_FROM_LAYER = 2  # massive activations appear after the first blocks
_MASSIVE_PEAK = 400.0  # peak |x| on a massive channel, relative to its layer's typical |x|

_POOL_SIZE = 1 << 18  # values per kind; a step takes a random window of them
_DRIFT_FRACTION = 1 / 128  # share of a site's neurons that move each step
_SPIKE_PROBABILITY = 1 / 150
_TREND_STEPS = 400.0
_GRAD_DECAY_STEPS = 300.0  # parameter-gradient norms settle from their early-training level
_PEAK_LR, _WARMUP_STEPS, _DECAY_STEPS = 3e-4, 100, 20_000  # linear warm-up, then cosine decay


@dataclass(frozen=True)
class SimSite:
    """One hooked point of the synthetic model; ``row`` is its row in its kind's matrices."""

    index: int
    layer: int
    kind: str
    neurons: int
    row: int


class SimModel:
    """Per-site profiles that evolve over steps; deterministic for a given seed.

    The profiles of the sites of one kind form one matrix (a row per site), so a step drifts,
    samples and scales every site of a kind in a few vectorised operations.
    """

    def __init__(
        self, n_layers: int = 32, per_block: str = "attn+mlp+residual", *, seed: int = 0
    ) -> None:
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        if per_block not in PER_BLOCK:
            raise ValueError(f"per_block must be one of {sorted(PER_BLOCK)}, got {per_block!r}")
        self.n_layers = n_layers
        self._rng = np.random.default_rng(seed)
        kinds = PER_BLOCK[per_block]
        self.sites = [
            SimSite(layer * len(kinds) + k, layer, kind, NEURONS[kind], layer)
            for layer in range(n_layers)
            for k, kind in enumerate(kinds)
        ]
        self._base_log = {kind: self._initial_log_profiles(kind) for kind in kinds}
        self._log = {kind: base.copy() for kind, base in self._base_log.items()}
        self._profile: dict[str, Matrix] = {k: np.exp(log) for k, log in self._log.items()}
        self._level: dict[str, Vector] = {
            kind: np.exp(np.median(base, axis=1)) for kind, base in self._base_log.items()
        }
        self._pools = {kind: _value_pool(kind, self._rng) for kind in kinds}
        self._spike: tuple[int, float] | None = None
        # Gradient norms draw from their own generator, so the activations stay as they were.
        self._grad_rng = np.random.default_rng([seed, 1])
        self._grad_base = self._initial_grad_norms()
        self._metric_rng = np.random.default_rng([seed, 2])

    # -- construction ---------------------------------------------------------------------------

    def _initial_log_profiles(self, kind: str) -> Matrix:
        """Log of mean |x| per neuron, one row per layer: level by kind and depth, spread across
        neurons (heavy-tailed for the MLP)."""
        rng = self._rng
        shape = (self.n_layers, NEURONS[kind])
        depth = np.arange(self.n_layers)[:, None] / max(1, self.n_layers - 1)
        if kind == "residual":
            # The residual norm grows with depth; channels vary mildly.
            level = math.log(0.08) + 3.2 * depth
            log = level + rng.normal(0.0, 0.35, shape)
            massive = self._massive_layers()
            log[np.ix_(massive, MASSIVE_CHANNELS)] = level[massive] + math.log(40.0)
        elif kind == "mlp":
            # SwiGLU intermediates: most neurons quiet, a heavy tail of specialists.
            log = math.log(0.06) + 0.8 * depth + rng.normal(0.0, 1.0, shape)
        else:
            # Attention output: a per-head gain (some heads are loud), mild per-channel spread.
            heads = rng.normal(0.0, 0.6, (self.n_layers, N_HEADS))
            log = math.log(0.12) + 0.6 * depth + np.repeat(heads, HEAD_DIM, axis=1)
            log += rng.normal(0.0, 0.3, shape)
        return log.astype(np.float32)

    def _initial_grad_norms(self) -> npt.NDArray[np.float64]:
        """Per-block parameter-gradient norm at step 0: largest at both ends of the stack."""
        depth = np.arange(self.n_layers) / max(1, self.n_layers - 1)
        ends = 1.0 + 1.5 * np.exp(-8.0 * depth) + 0.8 * np.exp(-8.0 * (1.0 - depth))
        spread = self._grad_rng.lognormal(0.0, 0.15, self.n_layers)
        base: npt.NDArray[np.float64] = 0.35 * ends * spread
        return base

    def _massive_layers(self) -> npt.NDArray[np.intp]:
        return np.arange(_MASSIVE_FROM_LAYER, self.n_layers - 1)

    # -- one step -------------------------------------------------------------------------------

    def advance(self, step: int) -> None:
        """Move the sparse patterns a little and decide whether this step carries a spike."""
        del step  # the drift is a random walk: only the number of steps taken matters
        rng = self._rng
        for kind, log in self._log.items():
            rows, neurons = log.shape
            moved = max(1, int(neurons * _DRIFT_FRACTION))
            r = np.repeat(np.arange(rows), moved)
            c = rng.integers(0, neurons, rows * moved)
            # Mean-reverting random walk in log space: patterns wander but stay plausible.
            walk = rng.normal(0.0, 0.45, r.size).astype(np.float32)
            log[r, c] = 0.85 * log[r, c] + 0.15 * self._base_log[kind][r, c] + walk
            self._profile[kind][r, c] = np.exp(log[r, c])
        self._spike = None
        if rng.random() < _SPIKE_PROBABILITY:
            self._spike = (int(rng.integers(0, len(self.sites))), float(rng.uniform(6.0, 20.0)))

    @property
    def spike(self) -> tuple[int, float] | None:
        """This step's activation spike as (block, factor), or None on a quiet step."""
        if self._spike is None:
            return None
        return self.sites[self._spike[0]].layer, self._spike[1]

    def scale(self, site: SimSite, step: int) -> float:
        """This step's multiplier on the site's profile: trend x jitter x spike."""
        trend = training_trend(step)
        wobble = 1.0 + 0.05 * math.sin(0.07 * step + 1.3 * site.index)
        spike = self._spike[1] if self._spike and self._spike[0] == site.index else 1.0
        return trend * wobble * spike

    def profile(self, site: SimSite) -> Vector:
        """Mean |x| per neuron at scale 1 (a live view: do not modify)."""
        row: Vector = self._profile[site.kind][site.row]
        return row

    def magnitudes(self, site: SimSite, step: int) -> Vector:
        """Mean |x| per neuron at this step (float32, a new array)."""
        return self.profile(site) * np.float32(self.scale(site, step))

    def above(
        self, site: SimSite, step: int, threshold: float, top_k: int
    ) -> tuple[npt.NDArray[np.uint32], Vector, int]:
        """Neurons whose mean |x| exceeds threshold: (indices ascending, values, how many).

        At most ``top_k`` are returned (the largest); the count is of all above the threshold.
        """
        values = self.magnitudes(site, step)
        idx = np.flatnonzero(values > threshold)
        n_above = int(idx.size)
        if n_above > top_k:
            keep = np.argpartition(values[idx], n_above - top_k)[n_above - top_k :]
            idx = np.sort(idx[keep])
        return idx.astype(np.uint32), values[idx], n_above

    def samples(self, sites: Sequence[SimSite], step: int, size: int = 2048) -> Matrix:
        """Raw activation values, one row of ``size`` per site: |value| follows the profile.

        Massive activations are too rare to show in a sample of this size; see ``massive_peak``.
        """
        rng = self._rng
        out = np.empty((len(sites), size), np.float32)
        for kind, profile in self._profile.items():
            at = [i for i, site in enumerate(sites) if site.kind == kind]
            if not at:
                continue
            rows = np.array([sites[i].row for i in at])
            # The same random neurons for every site of the kind: one gather, no per-site draw.
            neurons = rng.integers(0, profile.shape[1], size)
            pool = self._pools[kind]
            start = int(rng.integers(0, pool.size - len(at) * size + 1))
            shapes = pool[start : start + len(at) * size].reshape(len(at), size)
            scales = np.array([self.scale(sites[i], step) for i in at], np.float32)[:, None]
            out[at] = shapes * np.take(profile, neurons, axis=1)[rows] * scales
        return out

    def grad_norms(self, step: int) -> Vector:
        """This step's per-block parameter-gradient L2 norms (float32, one per block).

        High early in training, settling to about a third; noisy from step to step, and the block
        of this step's activation spike (if any) gets a matching gradient spike.
        """
        decay = 0.35 + 0.65 * math.exp(-step / _GRAD_DECAY_STEPS)
        noise = self._grad_rng.lognormal(0.0, 0.12, self.n_layers)
        norms = self._grad_base * decay * noise
        if self._spike is not None:
            norms[self.sites[self._spike[0]].layer] *= self._spike[1] / 2.0
        return norms.astype(np.float32)

    def metrics(self, step: int) -> dict[str, float]:
        """This step's training metrics: a loss that falls with the training trend, noisy and
        jumping with this step's activation spike (if any), the learning-rate schedule and the
        total gradient norm (the L2 norm of the blocks' typical norms)."""
        loss = 1.7 + 2.6 * math.exp(-step / _TREND_STEPS) + self._metric_rng.normal(0.0, 0.03)
        decay = 0.35 + 0.65 * math.exp(-step / _GRAD_DECAY_STEPS)
        grad_norm = float(np.sqrt(np.sum(self._grad_base.astype(np.float64) ** 2))) * decay
        if self._spike is not None:
            loss *= 1.0 + self._spike[1] / 40.0
            grad_norm *= self._spike[1] / 4.0
        warm = min(1.0, (step + 1) / _WARMUP_STEPS)
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / _DECAY_STEPS)))
        return {"loss": loss, "lr": _PEAK_LR * warm * cosine, "grad_norm": grad_norm}

    def massive_peak(self, site: SimSite, step: int) -> float:
        """The largest |x| this step on the site's massive-activation channels (0 when none).

        They sit at a few tokens of a few channels: huge, but too rare to move the moments.
        """
        if site.kind != "residual" or not _MASSIVE_FROM_LAYER <= site.layer < self.n_layers - 1:
            return 0.0
        level = float(self._level[site.kind][site.row])
        return level * self.scale(site, step) * _MASSIVE_PEAK


def training_trend(step: int) -> float:
    """How far training has moved the activations: 1 at step 0, rising to 1.6."""
    return 1.0 + 0.6 * (1.0 - math.exp(-step / _TREND_STEPS))


def _value_pool(kind: str, rng: np.random.Generator) -> Vector:
    """Standardised values (mean |v| = 1) with the shape of the kind's distribution."""
    if kind == "mlp":
        gate = rng.normal(0.0, 1.0, _POOL_SIZE)
        up = rng.normal(0.0, 1.0, _POOL_SIZE)
        values = gate / (1.0 + np.exp(-gate)) * up  # SwiGLU: silu(gate) * up, heavy-tailed
    elif kind == "residual":
        values = rng.standard_t(5, _POOL_SIZE)  # a little heavier than Gaussian
    else:
        values = rng.normal(0.0, 1.0, _POOL_SIZE)
    values /= np.mean(np.abs(values))
    return values.astype(np.float32)
