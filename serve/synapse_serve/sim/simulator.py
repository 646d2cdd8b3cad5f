"""``synapse sim``: a synthetic Llama-3-8B training run, streamed through the probe's ``Server``.

Numpy only: importing this module never imports torch. Each tick is one simulated training step;
ticks come at the control state's ``rate_hz`` (so a rate change changes the frame rate), and a
sampled step sends one LAYER_SUMMARY_BATCH, one BLOCK_GRAD_NORMS and one SPARSE_ACTIVATIONS per
streamed site, then HEAD_STATS (with ATTENTION and RESIDUAL every tenth step) and, with
``moe``, MOE_ROUTING, the last frame flagged END_OF_STEP. CONTROL requests are applied between
steps, as in the probe.

The simulated probe keeps its overhead budget as the real one does: measuring a step costs it
``MEASURED_STEP_SHARE`` of the step, so under a smaller budget it measures every ``interval``-th
step only (TRAINING_METRICS still come every step), and PROBE_COST says so.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from synapse_native.protocol import (
    BlockGradNorms,
    Capability,
    ControlState,
    LayerSummaryBatch,
    Message,
    ModelMeta,
    ProbeCost,
    SiteInfo,
    SiteKind,
    SparseActivations,
    TrainingMetrics,
    grid_shape,
)

from ..control import ALL_KINDS, DEFAULT_BUDGET, DEFAULT_THRESHOLDS, kind_bit, parse_mode
from ..selection import host_cut, relative
from ..server import DEFAULT_CAPABILITIES, Server
from .attention import SimAttention
from .job import SimJob
from .model import HEAD_DIM, N_HEADS, SimModel, SimSite
from .routing import SimRouter
from .stats import cover_sparse, summarize

# What measuring one step costs the simulated trainer: 0.4 % of its step, about what a large
# model's fused statistics cost on a GPU (docs/PERFORMANCE.md), so the default 1 % budget lets it
# measure every step and a smaller one thins the measured steps.
MEASURED_STEP_SHARE = 0.004

MODEL_NAME = "Llama-3-8B (simulated)"
TOKENS_PER_STEP = 8 * 1024  # batch x sequence the statistics stand for
SAMPLE_SIZE = 2048  # values per site behind the summary statistics
STATS_INTERVAL_S = 1.0
_IDLE_WAIT_S = 0.05  # longest sleep between control polls

KIND_CODES = {"attn": SiteKind.ATTN, "mlp": SiteKind.MLP, "residual": SiteKind.RESIDUAL}
_SITE_NAMES = {
    "attn": "model.layers.{}.self_attn",
    "mlp": "model.layers.{}.mlp.act",
    "residual": "model.layers.{}",
}


@dataclass(frozen=True)
class SimOptions:
    """What ``synapse sim`` takes on its command line."""

    host: str = "127.0.0.1"
    port: int = 9000
    fps: float = 10.0
    threshold: float | None = None  # None: the mode's default
    threshold_mode: str = "sigma"  # absolute, sigma or top (docs/PROTOCOL.md 5.5)
    layers: int = 32
    per_block: str = "attn+mlp+residual"
    token: str | None = None
    steps: int | None = None  # stop after this many steps; None: run until stopped
    seed: int = 0
    top_k: int = 512
    port_fallback: bool = False
    announce: bool = True
    rank: int = 0  # the rank its frames carry (several simulators stand for several ranks)
    world_size: int = 1
    moe: int = 0  # experts per block (every block a mixture of experts); 0: a dense model
    ranks: int = 1  # > 1: the merged stream of a job of that many ranks (``job``)
    drift_rank: int | None = None  # the rank that drifts away (default: the last but one)
    drift_step: int = 100  # from this step on


def site_info(site: SimSite) -> SiteInfo:
    """The MODEL_META row of a simulated site (attention laid out one row per head)."""
    rows, cols = (N_HEADS, HEAD_DIM) if site.kind == "attn" else grid_shape(site.neurons)
    name = _SITE_NAMES[site.kind].format(site.layer)
    return SiteInfo(site.index, site.layer, KIND_CODES[site.kind], name, site.neurons, rows, cols)


def model_meta(model: SimModel, experts: int = 0) -> ModelMeta:
    """The site table of the simulated model."""
    name = f"{MODEL_NAME[:-1]}, {experts} experts)" if experts else MODEL_NAME
    return ModelMeta(name, model.n_layers, tuple(site_info(s) for s in model.sites))


class Simulator:
    """Owns a ``SimModel`` and a ``Server``; ``run`` streams until stopped or out of steps."""

    def __init__(self, options: SimOptions = SimOptions()) -> None:
        self.options = options
        self.model = SimModel(options.layers, options.per_block, seed=options.seed)
        mode = parse_mode(options.threshold_mode)
        self.state = ControlState(
            threshold=DEFAULT_THRESHOLDS[mode] if options.threshold is None else options.threshold,
            rate_hz=options.fps,
            site_kinds=ALL_KINDS,
            paused=False,
            top_k=options.top_k,
            threshold_mode=mode,
        )
        self.attention = SimAttention(options.layers, seed=options.seed)
        self.router = (
            SimRouter(options.layers, options.moe, tokens=TOKENS_PER_STEP, seed=options.seed)
            if options.moe
            else None
        )
        capabilities = (
            DEFAULT_CAPABILITIES
            | Capability.GRAD_NORMS
            | Capability.METRICS
            | Capability.ATTENTION
            | Capability.RESIDUAL
            | Capability.GOVERNOR
        )
        if self.router is not None:
            capabilities |= Capability.MOE
        self.job = self._job(options)
        if self.job is not None:
            capabilities |= Capability.JOB | Capability.RANK_RELAY
        self.server = Server(
            model_meta(self.model, options.moe),
            host=options.host,
            port=options.port,
            token=options.token,
            port_fallback=options.port_fallback,
            rank=options.rank,
            world_size=max(options.world_size, options.ranks),
            control=self.state,
            name="synapse-sim",
            announce=options.announce,
            capabilities=capabilities,
        )
        self.step = 0  # steps simulated so far
        self.steps_sampled = 0
        self.busy_ns = 0  # time spent producing frames
        self.budget = DEFAULT_BUDGET  # changed by CONTROL; reported in PROBE_COST
        self._kind_bits = np.array([kind_bit(KIND_CODES[s.kind]) for s in self.model.sites])
        self._counts = np.array([s.neurons * TOKENS_PER_STEP for s in self.model.sites])

    def start(self) -> tuple[str, int]:
        """Start listening; returns the address."""
        self.server.start()
        return self.server.address

    def close(self) -> None:
        """Stop the server (idempotent)."""
        self.server.close()

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, stop: threading.Event | None = None) -> int:
        """Simulate steps at ``rate_hz`` until ``stop`` is set or the steps run out."""
        stop = stop if stop is not None else threading.Event()
        last_tick = time.monotonic() - 1.0 / self.state.rate_hz
        next_stats = time.monotonic() + STATS_INTERVAL_S
        while not stop.is_set():
            if self.options.steps is not None and self.step >= self.options.steps:
                break
            self.apply_control()
            now = time.monotonic()
            due = last_tick + 1.0 / self.state.rate_hz
            if now < due:
                stop.wait(min(due - now, _IDLE_WAIT_S))
                continue
            last_tick = now if now - due > 1.0 / self.state.rate_hz else due  # no catch-up bursts
            self.tick()
            if now >= next_stats:
                self.report_stats()
                next_stats = now + STATS_INTERVAL_S
        return self.step

    def apply_control(self) -> None:
        """Take the CONTROL requests received since the last step (a step boundary)."""
        state = self.server.poll_control()
        if state is not None:
            self.state = state
        budget = self.server.take_budget()
        if budget is not None:
            self.budget = budget

    def tick(self) -> int:
        """One simulated step; sends its frames unless paused. Returns the frames sent."""
        step = self.step
        self.step += 1
        self.model.advance(step)
        # Every step, like a probe's log_metrics (pausing stops the statistics, not the loss).
        self.server.broadcast(TrainingMetrics(self.model.metrics(step)), step=step)
        if self.state.paused or step % self.interval():
            return 0
        started = time.perf_counter_ns()
        sent = self.emit(step)
        self.busy_ns += time.perf_counter_ns() - started
        self.steps_sampled += 1
        return sent

    def emit(self, step: int) -> int:
        """Broadcast the frames of ``step`` under the current control state."""
        summary, norms, *sparse = self.site_messages(step)
        # The probe's order: summary, block norms, cost, sparse frames, then the lenses' frames.
        messages = [summary, norms, self.cost(), *sparse]
        messages += self.attention.messages(step, self.model.spike)
        if self.router is not None:
            messages.append(self.router.routing(step))
        if self.job is not None:  # merged batch, status and skew first, flagged JOB
            relay = self.server.full_rank
            head, messages, relayed = self.job.messages(step, messages, relay)
            for message, flags in head:
                self.server.broadcast(message, step=step, flags=flags)
            self.server.broadcast_step(messages, step=step)
            if relayed:  # the rank the viewer follows in full, after the serving rank's own
                self.server.relay_step(relayed, step=step, rank=relay)
            return len(head) + len(messages) + len(relayed)
        self.server.broadcast_step(messages, step=step)
        return len(messages)

    def _job(self, options: SimOptions) -> SimJob | None:
        """With ``ranks`` > 1, the job the stream stands for: the MLP three quarters of the
        way down drifts on ``drift_rank``."""
        if options.ranks <= 1:
            return None
        layer = (3 * options.layers) // 4
        mlp = [s.index for s in self.model.sites if s.kind == "mlp" and s.layer == layer]
        site = mlp[0] if mlp else self.model.sites[-1].index
        rank = options.ranks - 2 if options.drift_rank is None else options.drift_rank
        return SimJob(
            options.ranks,
            len(self.model.sites),
            site,
            drift_rank=rank,
            drift_step=options.drift_step,
            seed=options.seed,
        )

    def site_messages(self, step: int) -> list[Message]:
        """The summary batch, block gradient norms and sparse frames of the streamed sites."""
        state = self.state
        chosen = np.flatnonzero(self._kind_bits & state.site_kinds)
        if chosen.size == 0:
            return []
        sites = [self.model.sites[i] for i in chosen]
        samples = self.model.samples(sites, step, SAMPLE_SIZE)
        records = summarize(samples, chosen, state.threshold, self._counts[chosen])
        peaks = np.array([self.model.massive_peak(site, step) for site in sites])
        records["max"] = np.maximum(records["max"], peaks)  # massive activations, both signs
        records["min"] = np.minimum(records["min"], -peaks)
        sparse = [self._sparse(site, step) for site in sites]
        cover_sparse(records, sparse)
        if relative(state.threshold_mode):  # the fraction of each site's neurons selected
            records["frac_above"] = [
                f.n_above / site.neurons for f, site in zip(sparse, sites, strict=True)
            ]
        return [LayerSummaryBatch(records), BlockGradNorms(self.model.grad_norms(step)), *sparse]

    def _sparse(self, site: SimSite, step: int) -> SparseActivations:
        """The site's neurons above the cut of the threshold mode in force."""
        state = self.state
        magnitudes = self.model.magnitudes(site, step)
        cut = host_cut(magnitudes, state.threshold_mode, state.threshold)
        indices, values, n_above = self.model.above(site, step, cut, state.top_k)
        return SparseActivations(site.index, cut, n_above, indices, values)

    def interval(self) -> int:
        """Measure every ``interval``-th step: the fewest that keep the simulated cost within
        the budget (every step when the budget is off), a function of the step number alone."""
        if self.budget <= 0:
            return 1
        return max(1, math.ceil(round(MEASURED_STEP_SHARE / self.budget, 6)))

    def cost(self) -> ProbeCost:
        """PROBE_COST of the simulated probe (not the simulator's own time: PROBE_STATS)."""
        step_ns = int(1e9 / self.state.rate_hz)
        interval = self.interval()
        measured_ns = int(MEASURED_STEP_SHARE * step_ns)
        share = MEASURED_STEP_SHARE / interval
        return ProbeCost(self.budget, share, interval, interval, step_ns, measured_ns, 0)

    def report_stats(self) -> None:
        """PROBE_STATS: time spent producing frames, steps sampled and seen."""
        self.server.report_stats(self.busy_ns, self.steps_sampled, self.step)


def run(options: SimOptions, stop: threading.Event | None = None) -> int:
    """Run a simulator until ``stop`` is set or its steps run out; returns the steps simulated."""
    with Simulator(options) as simulator:
        return simulator.run(stop)
