"""The overhead governor: which steps the probe measures, so that its cost stays under a budget.

The probe tells the governor what each step cost it: time on the training thread (hooks, the
step boundary, the lenses' hooks and captures), and, as they land, the encoder thread's CPU time
and the GPU time of its kernels (CUDA event pairs read a step later, ``gpu_timer``). From these
the governor estimates the cost of one measured step (median of the last few, so a one-off JIT
compile does not count) and of one lens step, and the step time without the probe. What the
probe costs every step, measured or not (the step boundary, ``log_metrics``), is taken from the
budget first.

What a measured step costs beyond that count (the caches and allocator state its work leaves
behind, threads it competes with, the encoder's and the viewers' work slowing the next step where
they share its cores) shows in the step times. The governor takes each step's time less the
counted host time, and the kind of step: measured (after an unmeasured step), the one after a
measured step, or another unmeasured step (the baseline). For the first two kinds it keeps the
difference to the latest baseline step before them, and adds the mean of each kind's differences,
less the asynchronous costs already counted, to its estimate of a measured step
(``uncounted_ns``; zero until both the measured steps' differences and the baseline have
``UNCOUNTED_MIN`` samples). Differences to a neighbour, so that a model that gets faster or
slower does not read as the probe's cost, and the history can be long (``PAIRS``); means,
because what the probe costs a run is a sum of step times, and a measured step's are skewed to
the right (on the demo model their medians saw about half of what their means did). A one-off
slow step (a checkpoint save) is bounded by ``UNCOUNTED_MAX``; the first measured step (compiles)
is left out.

Which steps are measured is a function of the step number: step ``s`` is measured when
``s % interval == 0``, and the lenses run on measured steps with ``s % lens_interval == 0``.
At intervals 1 and 2 the steps in ``BASELINE_STEPS`` of each block of ``EPOCH`` are not measured,
so that the baseline has samples there too.
Both intervals are powers of two (``lens_interval`` a multiple of ``interval``) and change only
at the first step seen in each block of ``EPOCH`` step numbers (a multiple of ``EPOCH`` when
steps are counted one by one), chosen as the most frequent pair whose estimated cost
per step fits ``budget x step time`` (statistics first, lenses at most ``LENS_RATIO_MAX`` times
rarer). ``rate_hz`` stays an upper limit: the interval is never below ``1 / (rate_hz x step
time)``. Until the first decision (the first ``EPOCH`` steps, the calibration), steps are
measured at ``rate_hz`` by the clock. ``budget=None`` turns the governor off: the clock rule
alone, costs still measured and reported.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from synapse_serve.control import DEFAULT_BUDGET, budget_errors

from .sampling import Sampler

EPOCH = 16  # the intervals change only at multiples of this step number
MAX_INTERVAL = 1 << 16
LENS_RATIO_MAX = 8  # lenses run at least once every 8 measured steps
HYSTERESIS = 0.8  # measure more often only when the new plan costs <= 80 % of the budget
HISTORY = 3  # measured steps whose median cost is the estimate
STEP_HISTORY = EPOCH  # steps whose median time is the step-time estimate
PAIRS = 2 * EPOCH  # differences to the baseline kept for each kind of step
UNCOUNTED_MIN = 4  # samples of measured and of unmeasured steps before their difference counts
# What the step times add to a measured step's count is at most the count itself: on a noisy
# machine a few slow steps would otherwise set a large interval, which brings new samples too
# rarely to correct it (measured on the CPU: 0.35 - 0.5 times the count).
UNCOUNTED_MAX = 1.0
BASELINE_STEPS = (EPOCH // 2, EPOCH // 2 + 1)  # of a block: not measured at intervals 1 and 2


@dataclass(frozen=True, slots=True)
class Plan:
    """What the coming step runs."""

    measure: bool
    lenses: bool


@dataclass(frozen=True, slots=True)
class CostReport:
    """The governor's view of the probe's cost (PROBE_COST on the wire)."""

    budget: float  # share of the step time allowed; 0 when the governor is off
    cost: float  # estimated share of the step time spent by the probe at the current plan
    interval: int  # statistics measured every ``interval`` steps (1 while calibrating)
    lens_interval: int  # lenses every ``lens_interval`` steps (0: no lens)
    step_ns: int  # step time without the probe (median)
    stats_ns: int  # cost of a measured step beyond an unmeasured one (host, encoder, GPU)
    lens_ns: int  # cost of the lenses on a step they run


def next_power_of_two(x: float) -> int:
    """The smallest power of two >= ``x`` (1 for ``x <= 1``), at most ``MAX_INTERVAL``."""
    if not x > 1:
        return 1
    if x >= MAX_INTERVAL:
        return MAX_INTERVAL
    return 1 << math.ceil(math.log2(x))


def is_measured(step: int, interval: int) -> bool:
    """Whether ``step`` is measured at ``interval``: a multiple of it, but not one of the
    ``BASELINE_STEPS`` at intervals 1 and 2 (the same on every rank)."""
    if interval <= 2 and step % EPOCH in BASELINE_STEPS:
        return False
    return step % interval == 0


class _StepCost:
    __slots__ = ("async_ns", "lens_ns", "lenses", "stats_ns")

    def __init__(self, lenses: bool) -> None:
        self.lenses = lenses
        self.stats_ns = 0
        self.lens_ns = 0
        self.async_ns = 0  # of stats_ns, what landed later (encoder CPU, GPU)


class Governor:
    """Plans each step (``plan``) and learns what the plans cost (``step_ended``, ``add_cost``).

    ``plan`` and ``step_ended`` run on the training thread; ``add_cost`` on any thread.
    """

    def __init__(
        self,
        budget: float | None = DEFAULT_BUDGET,
        *,
        rate_hz: float = math.inf,
        has_lenses: bool = False,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        if budget is not None and budget_errors(budget):
            raise ValueError(budget_errors(budget)[0])
        self.budget = budget
        self.has_lenses = has_lenses
        self.paused = False
        self._sampler = Sampler(rate_hz)
        self._clock = clock
        self._lock = threading.Lock()
        self._costs: dict[int, _StepCost] = {}  # measured steps still in the history
        self._measured: deque[int] = deque()  # their step numbers, oldest first
        self._step_ns: deque[int] = deque(maxlen=STEP_HISTORY)
        # Step time less counted host time: of the baseline steps, and by kind of the other steps
        # less that of the baseline step before them.
        self._base_ns: deque[int] = deque(maxlen=STEP_HISTORY)
        self._excess: dict[str, deque[int]] = {
            kind: deque(maxlen=PAIRS) for kind in ("measured", "lenses", "after")
        }
        self._last_measured = False  # whether the step before the current one was measured
        self._base_host_ns: deque[int] = deque(maxlen=STEP_HISTORY)  # counted, baseline steps
        self._warm = False  # the first measured step (JIT compiles, allocations) is left out
        self._last_boundary: int | None = None
        self._current: tuple[int, Plan] | None = None
        self._block: int | None = None  # the last block of EPOCH steps that had a decision
        self._decided = False
        self.interval = 1
        self.lens_interval = 1

    @property
    def rate_hz(self) -> float:
        return self._sampler.rate_hz

    @rate_hz.setter
    def rate_hz(self, value: float) -> None:
        self._sampler.rate_hz = value

    @property
    def calibrating(self) -> bool:
        """True until the first decision: steps are measured at ``rate_hz`` by the clock."""
        return not self._decided

    # -- training thread ------------------------------------------------------------------------

    def plan(self, step: int) -> Plan:
        """At the boundary before ``step``: whether it is measured, and whether lenses run."""
        block = step // EPOCH
        if self.budget is not None and step >= EPOCH and block != self._block:
            self._block = block
            self._decide(step)
        if self.paused:
            plan = Plan(False, False)
        elif self.calibrating or self.budget is None:
            due = self._sampler.due(self._clock())
            plan = Plan(due, due and self.has_lenses)
        else:
            measure = is_measured(step, self.interval)
            plan = Plan(measure, measure and self.has_lenses and step % self.lens_interval == 0)
        self._current = (step, plan)
        return plan

    def ran(self, plan: Plan) -> None:
        """The coming step runs ``plan`` instead of the governor's (a job's plan, on ranks)."""
        if self._current is not None:
            self._current = (self._current[0], plan)

    def step_ended(self, host_ns: int, lens_ns: int, now_ns: int | None = None) -> None:
        """At the boundary after a step: what it cost the training thread, in all (``host_ns``)
        and of that in the lenses (``lens_ns``); the wall time comes from the clock."""
        now = self._clock() if now_ns is None else now_ns
        last, self._last_boundary = self._last_boundary, now
        current, self._current = self._current, None
        after_measured, self._last_measured = (
            self._last_measured,
            current is not None and current[1].measure,
        )
        warming = current is not None and current[1].measure and not self._warm
        if last is not None:
            sample = max(0, now - last - host_ns)
            with self._lock:
                self._step_ns.append(sample)
                kind = None if current is None or warming else _kind(current[1], after_measured)
                if kind == "base":
                    self._base_ns.append(sample)
                    self._base_host_ns.append(host_ns)
                elif kind is not None and self._base_ns:
                    self._excess[kind].append(sample - self._base_ns[-1])
        if current is None:
            return
        step, plan = current
        if not plan.measure:
            return
        with self._lock:
            if not self._warm:
                self._warm = True  # the first measured step is not representative
                return
            cost = self._costs.get(step)
            if cost is None:
                cost = self._costs[step] = _StepCost(plan.lenses)
                self._measured.append(step)
                while len(self._measured) > 4 * HISTORY:
                    self._costs.pop(self._measured.popleft(), None)
            cost.stats_ns += max(0, host_ns - lens_ns)
            cost.lens_ns += lens_ns

    # -- any thread -----------------------------------------------------------------------------

    def add_cost(self, step: int, ns: int, *, lens: bool = False) -> None:
        """Cost of ``step`` that lands later: the encoder's CPU time, GPU time of its kernels."""
        with self._lock:
            cost = self._costs.get(step)
            if cost is None:
                return  # the warm-up step, or one that left the history
            if lens:
                cost.lens_ns += ns
            else:
                cost.stats_ns += ns
                cost.async_ns += ns

    def report(self) -> CostReport:
        """The current estimates and plan."""
        stats_ns, lens_ns = self._estimates()
        step_ns = self._step_time()
        interval = 1 if self.calibrating else self.interval
        lens_interval = 1 if self.calibrating else self.lens_interval
        per_step = stats_ns / interval + (lens_ns / lens_interval if self.has_lenses else 0)
        per_step += self.every_step_ns()
        return CostReport(
            budget=self.budget or 0.0,
            cost=per_step / step_ns if step_ns else 0.0,
            interval=interval,
            lens_interval=lens_interval if self.has_lenses else 0,
            step_ns=int(step_ns),
            stats_ns=int(stats_ns),
            lens_ns=int(lens_ns),
        )

    # -- the decision ---------------------------------------------------------------------------

    def _decide(self, step: int) -> None:
        with self._lock:
            have_costs = bool(self._measured)
        if not have_costs or len(self._step_ns) < 2:
            return  # nothing measured yet (paused, or the first steps): keep calibrating
        assert self.budget is not None
        stats_ns, lens_ns = self._estimates()
        lens_ns = lens_ns if self.has_lenses else 0.0
        step_ns = max(self._step_time(), 1.0)
        every_step = self.every_step_ns()
        allowed = self.budget * step_ns - every_step
        floor = 1 if math.isinf(self.rate_hz) else next_power_of_two(1e9 / (self.rate_hz * step_ns))
        plan = _choose(stats_ns, lens_ns, allowed, floor)
        current = (self.interval, self.lens_interval)
        keep = self._decided and current[0] >= floor
        keep = keep and stats_ns / current[0] + lens_ns / current[1] <= allowed
        if keep and plan < current:  # measuring more often: only with headroom
            careful = _choose(
                stats_ns, lens_ns, HYSTERESIS * self.budget * step_ns - every_step, floor
            )
            plan = careful if careful < current else current
        self._decided = True
        self.interval, self.lens_interval = plan

    def _estimates(self) -> tuple[float, float]:
        """(cost of one measured step beyond what every step costs, cost of the lenses on a
        step they ran), in ns."""
        with self._lock:
            recent = [self._costs[s] for s in self._measured]
        stats = [c.stats_ns for c in recent[-HISTORY:]]
        lenses = [c.lens_ns for c in recent if c.lenses][-HISTORY:]
        if not stats:
            return 0.0, statistics.median(lenses) if lenses else 0.0
        landed_later = statistics.median(c.async_ns for c in recent[-HISTORY:])
        counted = max(0.0, statistics.median(stats) - self.every_step_ns())
        uncounted = min(max(0.0, self.uncounted_ns() - landed_later), UNCOUNTED_MAX * counted)
        return counted + uncounted, statistics.median(lenses) if lenses else 0.0

    def uncounted_ns(self) -> float:
        """How much longer a measured step and the step after it take than the baseline steps
        before them, beyond the host time counted (means; 0 until the measured steps, those
        without lenses if there are enough, and the baseline have ``UNCOUNTED_MIN`` samples
        each)."""
        with self._lock:
            excess = {kind: list(samples) for kind, samples in self._excess.items()}
            base_samples = len(self._base_ns)
        measured = excess["measured"]
        if len(measured) < UNCOUNTED_MIN:
            measured = excess["lenses"]  # lenses on every measured step
        if min(len(measured), base_samples) < UNCOUNTED_MIN:
            return 0.0
        extra = statistics.fmean(measured)
        if len(excess["after"]) >= UNCOUNTED_MIN:
            extra += statistics.fmean(excess["after"])
        return max(0.0, extra)

    def every_step_ns(self) -> float:
        """What the probe costs a step it does not measure (the step boundary, ``log_metrics``):
        the median counted host time of the baseline steps."""
        with self._lock:
            samples = list(self._base_host_ns)
        return float(statistics.median(samples)) if samples else 0.0

    def _step_time(self) -> float:
        """The step time without the probe: the baseline steps' once there are enough (their
        median, below their mean, so that the share errs high)."""
        with self._lock:
            base, every = list(self._base_ns), list(self._step_ns)
        samples = base if len(base) >= UNCOUNTED_MIN else every
        return float(statistics.median(samples)) if samples else 0.0


def _kind(plan: Plan, after_measured: bool) -> str | None:
    """Which step-time history a step with ``plan`` belongs to (None: none; a measured step
    after a measured one also carries what that one left behind)."""
    if plan.measure:
        return None if after_measured else "lenses" if plan.lenses else "measured"
    return "after" if after_measured else "base"


def _choose(stats_ns: float, lens_ns: float, allowed_ns: float, floor: int) -> tuple[int, int]:
    """The most frequent (interval, lens_interval) whose cost per step fits ``allowed_ns``."""
    interval = floor
    while interval < MAX_INTERVAL:
        left = allowed_ns - stats_ns / interval
        if left > 0:
            if not lens_ns:
                return interval, interval
            lens_interval = max(interval, next_power_of_two(lens_ns / left))
            if lens_interval <= LENS_RATIO_MAX * interval:
                return interval, lens_interval
        interval *= 2
    return MAX_INTERVAL, MAX_INTERVAL
