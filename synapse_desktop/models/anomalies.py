"""Alerts found in the frames as they arrive: from the activation summaries, non-finite values,
exploding norms, attention/MLP output-norm growth and dead sites; from MoE routing, experts that
receive no tokens and layers that drop too many; and the early warnings that come before a
divergence (``early_warning``): attention-logit growth, gradient-norm and loss spikes, update
ratio jumps and Adam's second moment falling below the squared gradients (a bounded list,
newest last). Every detector is a pure function of the frames fed, in order, so the app, a
recording's replay and ``synapse watch`` raise the same alerts."""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from synapse_desktop.models.early_warning import Check, Evidence, Finding, Rule, Series, evidence_of
from synapse_desktop.models.routing import layer_site
from synapse_desktop.models.signal import Signal
from synapse_desktop.models.topology import Topology

I64 = npt.NDArray[np.int64]


class Severity(enum.IntEnum):
    INFO = 0
    WARNING = 1
    ERROR = 2


class AlertKind(enum.Enum):
    NONFINITE = "non-finite"
    EXPLODING = "exploding"
    DEAD = "dead"
    IDLE_EXPERT = "idle expert"
    DROPPING = "dropping tokens"
    NORM_GROWTH = "output-norm growth"
    LOGIT_GROWTH = "attention-logit growth"
    LOGIT_LEVEL = "attention logits too large"
    GRAD_SPIKE = "gradient-norm spike"
    UPDATE_SPIKE = "update-ratio jump"
    SECOND_MOMENT = "second moment below g^2"
    LOSS_SPIKE = "loss spike"
    RANK_SKEW = "rank skew"  # a job's rank far from the others (models/skew.py)
    JOB_STOPPED = "job stream stopped"  # a job's reductions stopped (a rank lost)


ROUTING_ALERTS = frozenset({AlertKind.IDLE_EXPERT, AlertKind.DROPPING})  # from MOE_ROUTING frames
# The early warnings: signals that come before a loss spike (docs/APP.md, "Early warning").
EARLY_WARNINGS = frozenset(
    {
        AlertKind.NORM_GROWTH,
        AlertKind.LOGIT_GROWTH,
        AlertKind.LOGIT_LEVEL,
        AlertKind.GRAD_SPIKE,
        AlertKind.UPDATE_SPIKE,
        AlertKind.SECOND_MOMENT,
    }
)


# The early-warning rules' defaults (docs/APP.md, "Early warning", gives their sources).
LOGIT_GROWTH = Rule(Check.RATIO, 2.5, 1.75, window=32, min_samples=8, confirm=3)
LOGIT_LEVEL = Rule(Check.LEVEL, 100.0, 80.0)  # QK-Clip caps max logits at 100
GRAD_SPIKE = Rule(Check.SCORE, 6.0, 3.0, floor=6.0, window=128, min_samples=32, confirm=2)
UPDATE_SPIKE = Rule(Check.RATIO, 4.0, 2.0, window=32, min_samples=8)
SECOND_MOMENT = Rule(Check.RISE, 0.25, 0.1, floor=0.8, window=32, min_samples=8)
LOSS_SPIKE = Rule(Check.SCORE, 6.0, 3.0, floor=1.1, window=128, min_samples=16)


@dataclass(frozen=True, slots=True)
class AnomalyConfig:
    """Thresholds. ``spike_factor``: an rms above this times the site's recent median is an
    explosion (once per episode, re-armed when the rms is back under ``rearm_factor`` times
    the median); the median is over the last ``window`` finite samples and needs
    ``min_samples`` of them. A site is dead after ``dead_steps`` consecutive measured steps on
    which its output is gone (``rms == 0``, or every value zero) or has collapsed: ``frac_zero
    >= dead_frac_zero`` with the rms under ``dead_rms_fraction`` times the site's median (the
    median when the run began; while not known, ``frac_zero`` alone). Mostly-zero layers whose
    surviving neurons carry their usual rms are sparse, not dead (arXiv 2309.04827). An MoE
    expert is idle after ``idle_expert_steps`` consecutive routing steps without a token; a
    layer drops too many when its dropped / routed assignments exceed ``drop_fraction`` (once
    per episode, re-armed under half of it). ``capacity``: alerts kept.

    Early warning: before step ``warmup_steps`` the detectors judged against a baseline
    (explosions, growth and every ``Rule``) only learn it, since leaving the initialisation and
    the learning-rate warm-up move every signal by orders of magnitude; an attention or MLP
    output whose rms passes ``growth_factor`` times its median grows (re-armed under half way
    back); the ``Rule`` fields judge the per-block and scalar signals (``early_warning``)."""

    spike_factor: float = 10.0
    rearm_factor: float = 5.0
    window: int = 50
    min_samples: int = 10
    dead_frac_zero: float = 0.99
    dead_steps: int = 20
    dead_rms_fraction: float = 0.01  # a collapse: rms under 1 % of its median (arXiv 2309.04827)
    idle_expert_steps: int = 20
    drop_fraction: float = 0.1
    capacity: int = 500
    # Early warning; docs/APP.md gives each default's source.
    warmup_steps: int = 200  # relative detectors learn their baselines, quietly, until then
    growth_factor: float = 4.0  # attn/mlp output rms over its median (arXiv 2410.16682)
    logit_growth: Rule = LOGIT_GROWTH
    logit_level: Rule = LOGIT_LEVEL
    grad_spike: Rule = GRAD_SPIKE
    update_spike: Rule = UPDATE_SPIKE
    second_moment: Rule = SECOND_MOMENT
    loss_spike: Rule = LOSS_SPIKE
    loss_metric: str = "loss"
    grad_metric: str = "grad_norm"

    def __post_init__(self) -> None:
        if not 0 < self.rearm_factor <= self.spike_factor:
            raise ValueError("need 0 < rearm_factor <= spike_factor")
        if not 1 <= self.min_samples <= self.window:
            raise ValueError("need 1 <= min_samples <= window")
        if self.warmup_steps < 0:
            raise ValueError("warmup_steps must be >= 0")
        if self.dead_steps < 1 or self.idle_expert_steps < 1 or self.capacity < 1:
            raise ValueError("dead_steps, idle_expert_steps and capacity must be at least 1")
        if not 0 < self.drop_fraction < 1:
            raise ValueError("need 0 < drop_fraction < 1")
        if not 0 < self.dead_rms_fraction < 1:
            raise ValueError("need 0 < dead_rms_fraction < 1")
        if not 1 < self.growth_factor <= self.spike_factor:
            raise ValueError("need 1 < growth_factor <= spike_factor")


@dataclass(frozen=True, slots=True)
class Alert:
    """One finding. ``site_id`` is the wire id (stable across topology rebuilds); ``layer``
    and ``site`` (the kind's name) are as the topology said at the time; ``sites`` is how many
    sites the finding covers (the named one first in forward order, then the others). Routing
    findings name the layer's MLP site (the expert layer's place in the site table) and
    ``expert`` (-1: the finding is about no one expert)."""

    kind: AlertKind
    step: int
    rank: int
    site_id: int
    layer: int
    site: str
    message: str
    severity: Severity
    sites: int = 1
    expert: int = -1
    evidence: Evidence | None = None  # the signal and its baseline up to the alert


@dataclass(slots=True)
class _Onset:
    """A non-finite onset of one rank not yet published (frames of its step may follow)."""

    step: int
    first: int  # site index
    affected: int  # non-finite sites at that step, the first included
    nan: int
    inf: int


@dataclass(slots=True)
class _RankState:
    """Per-site detector state of one rank (rows: site indices)."""

    size: int
    window: int
    last_step: I64 = field(init=False)
    bad: npt.NDArray[np.bool_] = field(init=False)
    ring: npt.NDArray[np.float32] = field(init=False)
    ring_steps: I64 = field(init=False)
    filled: I64 = field(init=False)
    exploding: npt.NDArray[np.bool_] = field(init=False)
    growing: npt.NDArray[np.bool_] = field(init=False)
    alive: npt.NDArray[np.bool_] = field(init=False)  # was alive at some measured step
    dead_run: I64 = field(init=False)
    dead_base: npt.NDArray[np.float32] = field(init=False)  # median held through a dead run
    dead_alerted: npt.NDArray[np.bool_] = field(init=False)

    def __post_init__(self) -> None:
        n = self.size
        self.last_step = np.full(n, -1, np.int64)
        self.bad = np.zeros(n, bool)
        self.ring = np.full((n, self.window), np.nan, np.float32)
        self.ring_steps = np.full((n, self.window), -1, np.int64)
        self.filled = np.zeros(n, np.int64)  # finite rms samples written so far
        self.exploding = np.zeros(n, bool)
        self.growing = np.zeros(n, bool)
        self.alive = np.zeros(n, bool)
        self.dead_run = np.zeros(n, np.int64)
        self.dead_base = np.full(n, np.nan, np.float32)  # NaN: not in a run, or not known
        self.dead_alerted = np.zeros(n, bool)

    def remap(self, old_to_new: I64, size: int) -> None:
        """Row ``i`` moves to ``old_to_new[i]`` (-1: dropped); the state gets ``size`` rows."""
        old = {name: getattr(self, name) for name in _STATE_ARRAYS}
        mapping = old_to_new[: self.size]
        self.size = size
        self.__post_init__()
        keep = np.flatnonzero((mapping >= 0) & (mapping < size))
        for name, values in old.items():
            getattr(self, name)[mapping[keep]] = values[keep]


_STATE_ARRAYS = (
    "last_step",
    "bad",
    "ring",
    "ring_steps",
    "filled",
    "exploding",
    "growing",
    "alive",
    "dead_run",
    "dead_base",
    "dead_alerted",
)


@dataclass(slots=True)
class _LayerRouting:
    """Routing detector state of one MoE layer of one rank."""

    idle_run: I64  # [E] consecutive routing steps without a token
    idle_alerted: npt.NDArray[np.bool_]  # [E] inside an alerted idle episode
    dropping: bool = False  # inside an alerted drop episode

    def fit(self, experts: int) -> None:
        if experts > len(self.idle_run):
            grow = experts - len(self.idle_run)
            self.idle_run = np.concatenate([self.idle_run, np.zeros(grow, np.int64)])
            self.idle_alerted = np.concatenate([self.idle_alerted, np.zeros(grow, bool)])


class Anomalies:
    """Detectors over the activation summaries of every rank, and the alerts they raised.

    ``feed`` takes one LAYER_SUMMARY_BATCH's activation records (vectorised over them);
    ``changed`` fires from ``flush``, once per batch, when the list changed. ``reset`` (a new
    run) forgets the alerts and the detectors' state; ``clear`` (the user) only the alerts.
    """

    def __init__(self, topology: Topology, config: AnomalyConfig | None = None) -> None:
        self.topology = topology
        self.config = config if config is not None else AnomalyConfig()
        self.changed = Signal()
        self.alerts: deque[Alert] = deque(maxlen=self.config.capacity)
        self.total = 0  # alerts raised since the last reset or clear, dropped ones included
        self.generation = 0  # counts resets and clears (a view that lists alerts starts over)
        self._states: dict[int, _RankState] = {}
        self._onsets: dict[int, _Onset] = {}
        self._routing: dict[tuple[int, int], _LayerRouting] = {}  # (rank, layer)
        self._routing_steps: dict[int, int] = {}  # per rank, the newest routing step fed
        self._series: dict[tuple[int, AlertKind, str], Series] = {}  # (rank, kind, source)
        self._grad_bad: dict[tuple[int, str], bool] = {}  # (rank, source): in an episode
        self._loss_bad: dict[int, bool] = {}  # per rank: inside a non-finite loss episode
        self._kinds: tuple[tuple[object, ...], npt.NDArray[np.bool_]] = ((), np.zeros(0, bool))
        self._dirty = False

    def __len__(self) -> int:
        return len(self.alerts)

    def newest_first(self) -> list[Alert]:
        return list(reversed(self.alerts))

    # -- input ----------------------------------------------------------------------------------

    def feed(self, rank: int, indices: I64, records: npt.NDArray[np.void], step: int) -> None:
        """Check one batch of activation records (rows for site ``indices``) of ``step``."""
        onset = self._onsets.get(rank)
        if onset is not None and onset.step != step:  # its step is over: list it in order
            self._publish_onset(rank)
        state = self._state(rank)
        inside = (indices >= 0) & (indices < state.size)
        fresh = inside.copy()
        fresh[inside] = step > state.last_step[indices[inside]]
        if not fresh.any():
            return
        idx = indices[fresh]
        rec = records[fresh]
        state.last_step[idx] = step
        self._nonfinite(rank, state, idx, rec, step)
        rms = rec["rms"].astype(np.float32)
        median, filled = self._median(state, idx)  # the ring before this step's rms joins it
        self._exploding(rank, state, idx, rms, step, median, filled)
        frac_zero = rec["frac_zero"].astype(np.float32)
        self._dead(rank, state, idx, frac_zero, rms, step, median, filled)
        self._remember(state, idx, rms, step)

    def feed_routing(
        self,
        rank: int,
        step: int,
        layers: npt.ArrayLike,
        tokens: npt.ArrayLike,
        dropped: npt.ArrayLike,
    ) -> None:
        """Check one MOE_ROUTING frame: experts without tokens, layers dropping too many."""
        if step <= self._routing_steps.get(rank, -1):
            return
        self._routing_steps[rank] = step
        ids = np.asarray(layers, np.int64).ravel()
        counts = np.asarray(tokens, np.int64).reshape(len(ids), -1)
        drops = np.asarray(dropped, np.int64).reshape(len(ids))
        for layer, row, drop in zip(ids.tolist(), counts, drops.tolist(), strict=True):
            state = self._routing.get((rank, layer))
            if state is None:
                state = self._routing[(rank, layer)] = _LayerRouting(
                    np.zeros(len(row), np.int64), np.zeros(len(row), bool)
                )
            state.fit(len(row))
            self._idle_experts(rank, step, layer, state, row)
            self._dropping(rank, step, layer, state, int(row.sum()), drop)

    def _idle_experts(
        self, rank: int, step: int, layer: int, state: _LayerRouting, counts: I64
    ) -> None:
        n = len(counts)
        idle = counts == 0
        run = np.where(idle, state.idle_run[:n] + 1, 0)
        state.idle_run[:n] = run
        alerted = state.idle_alerted[:n]
        new = idle & (run >= self.config.idle_expert_steps) & ~alerted
        state.idle_alerted[:n] = idle & (alerted | new)
        if not new.any():
            return
        experts = np.flatnonzero(new)
        first = int(experts[0])
        what = f"expert {first} received no tokens for {int(run[first])} routing steps"
        if len(experts) > 1:
            more = len(experts) - 1
            what += f" (+{more} more expert{'' if more == 1 else 's'})"
        self._add_routing(AlertKind.IDLE_EXPERT, rank, step, layer, what, first)

    def _dropping(
        self, rank: int, step: int, layer: int, state: _LayerRouting, routed: int, dropped: int
    ) -> None:
        fraction = min(1.0, dropped / routed) if routed > 0 else 0.0
        limit = self.config.drop_fraction
        over, back = fraction > limit, fraction <= limit / 2
        if over and not state.dropping:
            what = (
                f"{100 * fraction:.1f}% of the routed assignments dropped "
                f"({dropped} of {routed}; alert above {100 * limit:g}%)"
            )
            self._add_routing(AlertKind.DROPPING, rank, step, layer, what, -1)
        state.dropping = (state.dropping or over) and not back

    def _add_routing(
        self, kind: AlertKind, rank: int, step: int, layer: int, what: str, expert: int
    ) -> None:
        index = layer_site(self.topology, layer)
        self._add(
            kind,
            Severity.WARNING,
            rank,
            step,
            index,
            1,
            what,
            where=f"layer {layer} experts",
            layer=layer,
            expert=expert,
        )

    def _nonfinite(
        self, rank: int, state: _RankState, idx: I64, rec: npt.NDArray[np.void], step: int
    ) -> None:
        nan, inf = rec["nan_count"], rec["inf_count"]
        bad = (nan > 0) | (inf > 0)
        was_bad = bool(state.bad.any())
        state.bad[idx] = bad
        if not bad.any():
            return
        bad_rows = np.flatnonzero(bad)
        i = int(bad_rows[np.argmin(idx[bad_rows])])
        first, n_nan, n_inf = int(idx[i]), int(nan[i]), int(inf[i])
        onset = self._onsets.get(rank)
        if onset is not None and onset.step == step:  # more frames of the onset's step
            onset.affected += len(bad_rows)
            if first < onset.first:
                onset.first, onset.nan, onset.inf = first, n_nan, n_inf
        elif not was_bad:
            self._publish_onset(rank)
            self._onsets[rank] = _Onset(step, first, len(bad_rows), n_nan, n_inf)

    def _median(
        self, state: _RankState, idx: I64
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Per row, the site's median rms over its ring (its last ``window`` finite samples)
        and how many samples that is; NaN where the ring is empty. Take it before the step's
        own rms is written (``_remember``): the detectors judge a sample against the past."""
        window = self.config.window
        filled = np.minimum(state.filled[idx], window)
        ring = np.sort(state.ring[idx], axis=1)  # NaN (never written) sorts last
        rows = np.arange(len(idx))
        lo, hi = np.maximum(filled - 1, 0) // 2, filled // 2
        hi = np.minimum(hi, window - 1)
        return 0.5 * (ring[rows, lo] + ring[rows, hi]), filled

    def _remember(
        self, state: _RankState, idx: I64, rms: npt.NDArray[np.float32], step: int
    ) -> None:
        """Write the step's finite rms samples into their sites' rings (the oldest goes)."""
        finite = np.isfinite(rms)
        written = idx[finite]
        slots = state.filled[written] % self.config.window
        state.ring[written, slots] = rms[finite]
        state.ring_steps[written, slots] = step
        state.filled[written] += 1

    def _exploding(
        self,
        rank: int,
        state: _RankState,
        idx: I64,
        rms: npt.NDArray[np.float32],
        step: int,
        median: npt.NDArray[np.float32],
        filled: I64,
    ) -> None:
        """Explosions and output-norm growth: the rms against the site's ``median``."""
        cfg = self.config
        enough = (filled >= cfg.min_samples) & (median > 0) & (step >= cfg.warmup_steps)
        with np.errstate(invalid="ignore", over="ignore"):
            over = enough & (rms > cfg.spike_factor * median)
            back = enough & (rms <= cfg.rearm_factor * median)
            grow = enough & self._growth_sites()[idx] & (rms > cfg.growth_factor * median)
            settled = enough & (rms <= 0.5 * (1 + cfg.growth_factor) * median)
        new = over & ~state.exploding[idx]
        state.exploding[idx] = (state.exploding[idx] | over) & ~back
        new_growth = grow & ~state.growing[idx] & ~over
        state.growing[idx] = (state.growing[idx] | grow) & ~settled
        alerts = []
        for kind, found, factor in (
            (AlertKind.EXPLODING, new, cfg.spike_factor),
            (AlertKind.NORM_GROWTH, new_growth, cfg.growth_factor),
        ):
            if found.any():
                rows_new = np.flatnonzero(found)
                i = int(rows_new[np.argmin(idx[rows_new])])
                evidence = self._ring_evidence(
                    state, int(idx[i]), step, float(rms[i]), float(median[i]), factor
                )
                alerts.append((kind, i, len(rows_new), evidence))
        for kind, i, count, evidence in alerts:
            ratio = float(rms[i] / median[i])
            what = (
                f"rms {float(rms[i]):.3g} = {ratio:.3g}x its median {float(median[i]):.3g} "
                f"(last {int(filled[i])} samples)"
            )
            severity = Severity.WARNING
            self._add(kind, severity, rank, step, int(idx[i]), count, what, evidence=evidence)

    def _ring_evidence(
        self, state: _RankState, index: int, step: int, rms: float, median: float, factor: float
    ) -> Evidence:
        order = np.argsort(state.ring_steps[index])
        kept = order[state.ring_steps[index][order] >= 0]
        steps = [*state.ring_steps[index][kept].tolist(), step]
        values = [*state.ring[index][kept].tolist(), rms]
        return Evidence("output rms", tuple(steps), tuple(values), median, factor * median)

    def _growth_sites(self) -> npt.NDArray[np.bool_]:
        """Per site index: an attention or MLP output (the sites whose growth warns)."""
        sites = self.topology.sites
        if self._kinds[0] is not sites:
            mask = np.array([site.kind in (1, 2) for site in sites], bool)
            self._kinds = (sites, mask)
        mask = self._kinds[1]
        size = max((state.size for state in self._states.values()), default=0)
        if len(mask) < size:  # sites guessed before the table came: not known to grow
            mask = np.concatenate([mask, np.zeros(size - len(mask), bool)])
        return mask

    def _dead_baseline(
        self,
        state: _RankState,
        idx: I64,
        median: npt.NDArray[np.float32],
        filled: I64,
    ) -> npt.NDArray[np.float32]:
        """Per row, the rms a site's death is judged against; NaN: not known (fewer than
        ``min_samples`` samples, or a zero median). Inside a dead run, the median when the run
        began, held: the run's own collapsed samples join the ring and would drag the median
        down after them; outside one, the median now."""
        known = (filled >= self.config.min_samples) & (median > 0)
        now = np.where(known, median, np.nan).astype(np.float32)
        return np.where(state.dead_run[idx] > 0, state.dead_base[idx], now)

    def _dead(
        self,
        rank: int,
        state: _RankState,
        idx: I64,
        frac_zero: npt.NDArray[np.float32],
        rms: npt.NDArray[np.float32],
        step: int,
        median: npt.NDArray[np.float32],
        filled: I64,
    ) -> None:
        """Dead sites: the output gone (rms 0, every value zero) or collapsed (mostly zeros and
        the rms far under its baseline) for ``dead_steps`` measured steps. Mostly zeros alone is
        sparse, not dead, while the surviving neurons keep the site's rms."""
        cfg = self.config
        base = self._dead_baseline(state, idx, median, filled)
        with np.errstate(invalid="ignore"):
            gone = (rms == 0) | (frac_zero >= 1)  # every value zero: rms 0 on real data
            collapsed = np.isnan(base) | (rms < cfg.dead_rms_fraction * base)
            dead = gone | ((frac_zero >= cfg.dead_frac_zero) & collapsed)
        state.alive[idx] |= ~dead & np.isfinite(rms)
        dead &= state.alive[idx]  # a site dead from its first step on is how the model is built
        run = np.where(dead, state.dead_run[idx] + 1, 0)
        state.dead_run[idx] = run
        state.dead_base[idx] = np.where(dead, base, np.nan)
        alerted = state.dead_alerted[idx]
        new = dead & (run >= cfg.dead_steps) & ~alerted
        state.dead_alerted[idx] = dead & (alerted | new)
        if new.any():
            rows_new = np.flatnonzero(new)
            i = int(rows_new[np.argmin(idx[rows_new])])
            level, held = float(rms[i]), float(base[i])
            if np.isnan(held):
                against = f"rms {level:.3g}, its median not known yet"
            else:
                against = f"rms {level:.3g} = {level / held:.3g}x its median {held:.3g}"
            what = (
                f"dead for {int(run[i])} measured steps "
                f"({100 * float(frac_zero[i]):.1f}% zeros, {against})"
            )
            self._add(AlertKind.DEAD, Severity.INFO, rank, step, int(idx[i]), len(rows_new), what)

    # -- early warning: per-block and scalar signals --------------------------------------------

    def feed_head_stats(
        self, rank: int, step: int, layers: npt.ArrayLike, max_logit: npt.ArrayLike
    ) -> None:
        """HEAD_STATS: each layer's largest attention logit, its growth and its level."""
        logits = np.asarray(max_logit, np.float64)
        with np.errstate(invalid="ignore"):
            peak = np.where(np.isnan(logits), -np.inf, logits).max(axis=-1, initial=-np.inf)
        peak[peak == -np.inf] = np.nan
        samples = _by_layer(layers, peak)
        cfg = self.config
        for kind, rule in (
            (AlertKind.LOGIT_LEVEL, cfg.logit_level),
            (AlertKind.LOGIT_GROWTH, cfg.logit_growth),
        ):
            self._signal(rank, kind, "heads", rule, step, samples, "max attention logit")

    def feed_grad_norms(self, rank: int, step: int, norms: npt.ArrayLike) -> None:
        """BLOCK_GRAD_NORMS: non-finite gradients, and each block's gradient-norm spike score."""
        values = np.asarray(norms, np.float64).ravel()
        self._nonfinite_grads(rank, step, values, "block gradient norm")
        rule = self.config.grad_spike
        self._signal(rank, AlertKind.GRAD_SPIKE, "blocks", rule, step, values, "gradient norm")

    def feed_optimizer(
        self,
        rank: int,
        step: int,
        layers: npt.ArrayLike,
        update_ratio: npt.ArrayLike,
        grad_norm: npt.ArrayLike,
        v_below_g2: npt.ArrayLike,
    ) -> None:
        """OPTIMIZER_STATS: update-ratio jumps, Adam's second moment falling below g^2."""
        grads = _by_layer(layers, grad_norm)
        self._nonfinite_grads(rank, step, grads, "optimizer gradient norm")
        cfg = self.config
        ratio = _by_layer(layers, update_ratio)
        self._signal(
            rank, AlertKind.UPDATE_SPIKE, "update", cfg.update_spike, step, ratio, "update ratio"
        )
        below = _by_layer(layers, v_below_g2)
        label = "fraction with v < g^2"
        self._signal(rank, AlertKind.SECOND_MOMENT, "adam", cfg.second_moment, step, below, label)

    def feed_metrics(self, rank: int, step: int, values: dict[str, float]) -> None:
        """TRAINING_METRICS: the loss (spike score, non-finite) and the logged gradient norm."""
        cfg = self.config
        loss = values.get(cfg.loss_metric)
        if loss is not None:
            bad = not np.isfinite(loss)
            if bad and not self._loss_bad.get(rank, False):
                what = f"{cfg.loss_metric} is {loss}"
                evidence = self._recent(rank, AlertKind.LOSS_SPIKE, "loss", step, loss)
                self._add(
                    AlertKind.LOSS_SPIKE,
                    Severity.ERROR,
                    rank,
                    step,
                    -1,
                    1,
                    what,
                    where="training loss",
                    evidence=evidence,
                )
            self._loss_bad[rank] = bad
            rule = cfg.loss_spike
            self._signal(rank, AlertKind.LOSS_SPIKE, "loss", rule, step, [loss], cfg.loss_metric)
        norm = values.get(cfg.grad_metric)
        if norm is not None:
            rule = cfg.grad_spike
            self._signal(rank, AlertKind.GRAD_SPIKE, "metric", rule, step, [norm], cfg.grad_metric)

    def _nonfinite_grads(
        self, rank: int, step: int, norms: npt.NDArray[np.float64], label: str
    ) -> None:
        bad = np.flatnonzero(np.isinf(norms) | (norms != norms))
        was_bad = self._grad_bad.get((rank, label), False)  # an episode per source
        self._grad_bad[(rank, label)] = len(bad) > 0
        if len(bad) == 0 or was_bad:
            return
        layer = int(bad[0])
        what = f"non-finite gradients ({label} {norms[layer]})"
        if len(bad) > 1:
            what += f"; {len(bad) - 1} more block{'' if len(bad) == 2 else 's'}"
        self._add(
            AlertKind.NONFINITE,
            Severity.ERROR,
            rank,
            step,
            layer_site(self.topology, layer),
            len(bad),
            what,
            others=False,
            where=f"layer {layer} gradients",
            layer=layer,
            evidence=evidence_of(label, [step], [float(norms[layer])], float("inf")),
        )

    def _signal(
        self,
        rank: int,
        kind: AlertKind,
        source: str,
        rule: Rule,
        step: int,
        samples: npt.ArrayLike,
        label: str,
    ) -> None:
        """Judge one sample per row (rows: blocks, or one row) of a signal; alert on a finding."""
        key = (rank, kind, source)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Series(rule, label)
        found = series.check(step, samples, armed=step >= self.config.warmup_steps)
        if found is not None:
            per_block = source not in ("loss", "metric")
            self._add_signal(kind, rank, step, found, rule, label, per_block)

    def _add_signal(
        self,
        kind: AlertKind,
        rank: int,
        step: int,
        found: Finding,
        rule: Rule,
        label: str,
        per_block: bool,
    ) -> None:
        value, base = found.value, found.baseline
        if rule.test is Check.SCORE:
            score = rule.limit * (value - base) / (found.limit - base) if found.limit > base else 0
            what = f"{label} {value:.4g}, spike score {score:.1f} (mean {base:.4g})"
        elif rule.test is Check.RATIO:
            what = f"{label} {value:.3g} = {value / base:.3g}x its median {base:.3g}"
        elif rule.test is Check.RISE:
            what = f"{label} {value:.3g}, up from its median {base:.3g}"
        else:
            what = f"{label} {value:.4g} above {rule.limit:g}"
        count = found.rows
        if per_block:
            layer = found.row
            kind_of_site = "attn" if kind in (AlertKind.LOGIT_GROWTH, AlertKind.LOGIT_LEVEL) else ""
            index = self._layer_site(layer, kind_of_site)
            if count > 1:
                what += f" (+{count - 1} more block{'' if count == 2 else 's'})"
            where = f"layer {layer} {kind_of_site or 'block'}"
        else:
            layer, index, where = -1, -1, "training loss" if kind is AlertKind.LOSS_SPIKE else label
        severity = Severity.ERROR if kind is AlertKind.LOSS_SPIKE else Severity.WARNING
        self._add(
            kind,
            severity,
            rank,
            step,
            index,
            count,
            what,
            others=False,
            where=where,
            layer=layer,
            evidence=found.evidence,
        )

    def _layer_site(self, layer: int, kind_name: str) -> int:
        if kind_name:
            for site in self.topology.sites:
                if site.layer == layer and site.kind_name == kind_name:
                    return site.index
        return layer_site(self.topology, layer)

    def _recent(self, rank: int, kind: AlertKind, source: str, step: int, value: float) -> Evidence:
        series = self._series.get((rank, kind, source))
        if series is None or series.n == 0:
            return evidence_of(source, [step], [value], float("nan"))
        order = np.argsort(series.steps[0])
        kept = order[series.steps[0][order] >= 0]
        steps = [*series.steps[0][kept].tolist(), step]
        return evidence_of(source, steps, [*series.values[0][kept].tolist(), value], float("nan"))

    # -- upkeep ---------------------------------------------------------------------------------

    def remap(self, old_to_new: I64, size: int) -> None:
        """Follow a topology rebuild (see ``LatestStats.remap``); alerts keep their site ids."""
        self._publish_onsets()
        for state in self._states.values():
            state.remap(old_to_new, size)

    def clear(self) -> None:
        """Forget the alerts (the detectors keep their state: an ongoing episode stays quiet)."""
        self._publish_onsets()
        if self.alerts or self.total:
            self.alerts.clear()
            self.total = 0
            self.generation += 1
            self._dirty = True

    def reset(self) -> None:
        """A new run: forget the alerts and every detector's state."""
        self._onsets.clear()
        self._states.clear()
        self._routing.clear()
        self._routing_steps.clear()
        self._series.clear()
        self._grad_bad.clear()
        self._loss_bad.clear()
        self.alerts.clear()
        self.total = 0
        self.generation += 1
        self._dirty = True

    def add_job_alert(
        self,
        kind: AlertKind,
        severity: Severity,
        step: int,
        rank: int,
        message: str,
        site_id: int = -1,
        layer: int = -1,
        site: str = "",
    ) -> None:
        """An alert about a job as a whole, already worded (rank skew, a lost rank)."""
        self.alerts.append(Alert(kind, step, rank, site_id, layer, site, message, severity))
        self.total += 1
        self._dirty = True

    def flush(self) -> None:
        """Publish pending findings; emit ``changed`` if the list changed."""
        self._publish_onsets()
        if self._dirty:
            self._dirty = False
            self.changed.emit()

    # -- helpers --------------------------------------------------------------------------------

    def _state(self, rank: int) -> _RankState:
        state = self._states.get(rank)
        size = len(self.topology)
        if state is None:
            state = self._states[rank] = _RankState(size, self.config.window)
        elif state.size < size:  # sites guessed before the table came: grow, indices stay
            state.remap(np.arange(state.size, dtype=np.int64), size)
        return state

    def _publish_onsets(self) -> None:
        for rank in list(self._onsets):
            self._publish_onset(rank)

    def _publish_onset(self, rank: int) -> None:
        onset = self._onsets.pop(rank, None)
        if onset is None:
            return
        counts = ", ".join(
            f"{n} {name}" for n, name in ((onset.nan, "NaN"), (onset.inf, "inf")) if n
        )
        downstream = onset.affected - 1
        what = (
            f"first non-finite values ({counts}); "
            f"{downstream} site{'' if downstream == 1 else 's'} downstream affected"
        )
        self._add(
            AlertKind.NONFINITE,
            Severity.ERROR,
            rank,
            onset.step,
            onset.first,
            onset.affected,
            what,
            others=False,
        )

    def _add(
        self,
        kind: AlertKind,
        severity: Severity,
        rank: int,
        step: int,
        index: int,
        sites: int,
        what: str,
        others: bool = True,
        where: str = "",
        layer: int = -1,
        expert: int = -1,
        evidence: Evidence | None = None,
    ) -> None:
        """Add an alert about site ``index`` (else ``layer``); ``where`` replaces the site's
        "layer L kind" at the start of the message."""
        topo = self.topology.sites
        if 0 <= index < len(topo):
            site = topo[index]
            site_id, layer, name = site.site_id, site.layer, site.kind_name
        else:
            site_id, name = -1, "?"
        message = f"{where or f'layer {layer} {name}'}: {what}"
        if others and sites > 1:
            message += f" (+{sites - 1} more site{'' if sites == 2 else 's'})"
        ranks = set(self._states) | set(self._routing_steps)
        if len(ranks) > 1 or rank:
            message = f"rank {rank}, {message}"
        self.alerts.append(
            Alert(
                kind, step, rank, site_id, layer, name, message, severity, sites, expert, evidence
            )
        )
        self.total += 1
        self._dirty = True


def _by_layer(layers: npt.ArrayLike, values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``values[i]`` of block ``layers[i]`` placed at row ``layers[i]`` (other rows NaN)."""
    ids = np.asarray(layers, np.int64).ravel()
    flat = np.asarray(values, np.float64).ravel()
    rows = np.full(int(ids.max()) + 1 if len(ids) else 0, np.nan)
    rows[ids] = flat[: len(ids)]
    return rows
