"""The overhead governor under a fake clock: it keeps the probe's cost under the budget while the
model speeds up, slows down, turns a lens on or has a slow step, and plans by step number."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import cycle

import pytest

from synapse_probe.governor import BASELINE_STEPS, EPOCH, Governor, Plan, next_power_of_two
from synapse_serve.control import budget_errors

MS = 1_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class Trainer:
    """Steps a governor the way the probe does; records what each step cost."""

    def __init__(self, governor: Governor, clock: FakeClock) -> None:
        self.governor = governor
        self.clock = clock
        self.step = 0
        self.plans: list[tuple[int, Plan, int, int]] = []  # (step, plan, base ns, probe ns)
        self.spilt = 0  # what the last measured step leaves to the next one
        governor.step_ended(0, 0)  # the probe's first boundary, before step 0

    def run(
        self,
        steps: int,
        base_ns: int | Callable[[int], int],
        stats_ns: int,
        lens_ns: int = 0,
        gpu_ns: int = 0,
        hidden_ns: int | Sequence[int] = 0,
        spill_ns: int = 0,
        every_ns: int = 0,
    ) -> None:
        """``hidden_ns``: what a measured step costs beyond any count (caches, contention), or
        a sequence of such costs the measured steps take in turn; ``spill_ns``: what it costs
        the step after it, also uncounted (threads that encode and decode its data on the same
        cores); ``every_ns``: what the probe costs every step, measured or not (the boundary,
        ``log_metrics``)."""
        hidden = cycle([hidden_ns] if isinstance(hidden_ns, int) else hidden_ns)
        for _ in range(steps):
            plan = self.governor.plan(self.step)
            base = base_ns(self.step) if callable(base_ns) else base_ns
            lens = lens_ns if plan.lenses else 0
            host = (stats_ns if plan.measure else 0) + lens + every_ns
            unseen = ((gpu_ns + next(hidden)) if plan.measure else 0) + self.spilt
            self.spilt = spill_ns if plan.measure else 0
            self.clock.now += base + host + unseen
            self.governor.step_ended(host, lens)
            if plan.measure and gpu_ns:
                self.governor.add_cost(self.step, gpu_ns)  # lands a step later, like an event
            self.plans.append((self.step, plan, base, host + unseen))
            self.step += 1

    def overhead(self, last: int) -> float:
        """The probe's share of the step time over the last ``last`` steps."""
        window = self.plans[-last:]
        return sum(p[3] for p in window) / sum(p[2] for p in window)

    def measured(self, last: int) -> list[int]:
        return [s for s, plan, _, _ in self.plans[-last:] if plan.measure]


def trainer(budget: float | None = 0.01, **kwargs: object) -> Trainer:
    clock = FakeClock()
    return Trainer(Governor(budget, clock=clock, **kwargs), clock)  # type: ignore[arg-type]


def test_holds_the_budget_without_wasting_it() -> None:
    t = trainer()
    t.run(20 * EPOCH, base_ns=100 * MS, stats_ns=5 * MS)
    assert t.governor.interval == 8  # 5 ms / 8 = 0.63 ms a step, 1 ms allowed
    assert 0.004 <= t.overhead(8 * EPOCH) <= 0.01
    report = t.governor.report()
    assert report.budget == 0.01 and report.interval == 8
    assert report.cost == pytest.approx(0.00625, rel=0.01)
    assert report.step_ns == 100 * MS and report.stats_ns == 5 * MS


def test_what_a_measured_step_costs_beyond_the_count_is_learnt_from_the_step_times() -> None:
    """The bench on the CPU: a measured step takes about twice what the probe counts. The
    governor sees it in the measured steps' times and keeps the real cost in the budget."""
    t = trainer()
    t.run(30 * EPOCH, base_ns=100 * MS, stats_ns=5 * MS, hidden_ns=5 * MS)
    assert t.governor.interval == 16  # (5 + 5) ms / 16 = 0.63 ms a step, 1 ms allowed
    assert 0.004 <= t.overhead(8 * EPOCH) <= 0.01
    report = t.governor.report()
    assert report.stats_ns == pytest.approx(10 * MS, rel=0.01) and report.step_ns == 100 * MS


def test_a_cost_skewed_to_a_few_slow_measured_steps_counts_by_its_mean() -> None:
    """Most measured steps cost about the count, a few much more (the demo model on the CPU):
    the run pays the mean, 4 ms here, where the median of the step times sees 1 ms."""
    t = trainer()
    skewed = [ms * MS for ms in (0, 0, 0, 1, 1, 2, 4, 24)]
    t.run(40 * EPOCH, base_ns=100 * MS, stats_ns=5 * MS, hidden_ns=skewed)
    assert t.governor.interval == 16  # (5 + 4) ms / 8 = 1.1 ms a step, over the 1 ms allowed
    assert 0.004 <= t.overhead(16 * EPOCH) <= 0.01
    assert t.governor.report().stats_ns == pytest.approx(9 * MS, rel=0.01)


def test_what_a_measured_step_costs_the_step_after_it_is_learnt_too() -> None:
    """The demo model on the CPU: a measured step slows the next one, where the encoder and
    the viewer work on the same cores (docs/PERFORMANCE.md); a governor that looked at the
    measured steps alone would measure twice as often as the budget allows."""
    t = trainer()
    t.run(30 * EPOCH, base_ns=100 * MS, stats_ns=5 * MS, hidden_ns=1 * MS, spill_ns=3 * MS)
    assert t.governor.interval == 16  # (5 + 1 + 3) ms / 16 = 0.56 ms a step; / 8 over 1 ms
    assert 0.004 <= t.overhead(8 * EPOCH) <= 0.01
    assert t.governor.report().stats_ns == pytest.approx(9 * MS, rel=0.01)


def test_a_probe_cheap_by_its_count_learns_its_cost_from_the_baseline_steps() -> None:
    """Lenses on every measured step and every other step measured by the count: the baseline
    steps still show what the count misses."""
    t = trainer(has_lenses=True)
    t.run(30 * EPOCH, base_ns=100 * MS, stats_ns=MS, lens_ns=MS // 2, spill_ns=MS)
    governor = t.governor
    assert governor.lens_interval == governor.interval == 4  # (1 + 0.5 + 1) ms / 4 a step
    assert 0.004 <= t.overhead(8 * EPOCH) <= 0.01


def test_slow_steps_after_measured_ones_count_at_most_as_much_as_the_count() -> None:
    """On a noisy machine a few slow steps can look like a large cost; the governor trusts the
    step times up to the count again, so it measures at worst half as often as it could."""
    t = trainer()
    t.run(30 * EPOCH, base_ns=100 * MS, stats_ns=5 * MS, spill_ns=50 * MS)
    assert t.governor.report().stats_ns == 10 * MS
    assert t.governor.interval == 16  # 10 ms / 16 = 0.63 ms a step


def test_what_the_probe_costs_every_step_comes_off_the_budget_first() -> None:
    t = trainer()
    t.run(30 * EPOCH, base_ns=100 * MS, stats_ns=5 * MS, every_ns=MS // 2)
    assert t.governor.interval == 16  # 0.5 ms + 5 ms / 16 = 0.81 ms a step, 1 ms allowed
    assert 0.006 <= t.overhead(8 * EPOCH) <= 0.01
    assert t.governor.report().cost == pytest.approx(0.0081, rel=0.01)


def test_costs_landing_later_are_not_counted_twice_from_the_step_times() -> None:
    """GPU time (an event pair) that the step time shows too, as in a loop that waits for
    the device each step, is counted once."""
    t = trainer()
    t.run(30 * EPOCH, base_ns=100 * MS, stats_ns=1 * MS, gpu_ns=4 * MS)
    assert t.governor.interval == 8  # (1 + 4) ms / 8 = 0.63 ms a step
    assert t.governor.report().stats_ns == pytest.approx(5 * MS, rel=0.01)


def test_every_step_is_measured_while_it_fits_and_during_calibration() -> None:
    t = trainer()
    t.run(EPOCH, base_ns=100 * MS, stats_ns=50 * MS)  # way over budget, but calibrating
    assert t.measured(EPOCH) == list(range(EPOCH))
    cheap = trainer()
    cheap.run(10 * EPOCH, base_ns=100 * MS, stats_ns=MS // 2)
    # all but the two steps of each block that show the step time without the probe
    last_block = range(9 * EPOCH, 10 * EPOCH)
    assert cheap.measured(EPOCH) == [s for s in last_block if s % EPOCH not in BASELINE_STEPS]
    assert cheap.governor.report().step_ns == 100 * MS


@pytest.mark.parametrize("factor", [0.1, 10.0])
def test_follows_the_model_when_it_gets_faster_or_slower(factor: float) -> None:
    t = trainer()
    t.run(10 * EPOCH, base_ns=100 * MS, stats_ns=5 * MS)
    before = t.governor.interval
    t.run(20 * EPOCH, base_ns=int(100 * MS * factor), stats_ns=5 * MS)
    assert t.overhead(8 * EPOCH) <= 0.01
    assert (t.governor.interval > before) if factor < 1 else (t.governor.interval < before)


@pytest.mark.parametrize("ms_a_step", [-0.1, 0.1])
def test_a_model_that_speeds_up_or_slows_down_steadily_is_not_taken_for_the_probe(
    ms_a_step: float,
) -> None:
    """E.g. a sequence-length warm-up: the step time moves by 0.1 ms a step. The measured steps
    are compared with the unmeasured steps next to them, not with those of another time."""
    t = trainer()
    t.run(
        40 * EPOCH,
        base_ns=lambda s: int((150 + ms_a_step * (s - 320)) * MS),
        stats_ns=5 * MS,
        hidden_ns=2 * MS,
    )
    assert t.governor.report().stats_ns == pytest.approx(7 * MS, rel=0.05)
    assert t.overhead(8 * EPOCH) <= 0.01


def test_a_lens_switched_on_stays_in_the_budget_and_runs_less_often_than_statistics() -> None:
    t = trainer(has_lenses=True)
    t.run(10 * EPOCH, base_ns=100 * MS, stats_ns=2 * MS)
    assert t.overhead(4 * EPOCH) <= 0.01
    t.run(20 * EPOCH, base_ns=100 * MS, stats_ns=2 * MS, lens_ns=12 * MS)
    assert t.overhead(8 * EPOCH) <= 0.01
    governor = t.governor
    assert governor.lens_interval > governor.interval
    assert governor.lens_interval % governor.interval == 0
    lens_steps = [s for s, plan, _, _ in t.plans[-8 * EPOCH :] if plan.lenses]
    assert lens_steps and all(s % governor.lens_interval == 0 for s in lens_steps)


def test_a_step_time_jump_or_a_compile_does_not_derail_it() -> None:
    t = trainer()
    slow_steps = {3 * EPOCH + 5, 7 * EPOCH + 1}  # e.g. a checkpoint save
    t.run(
        12 * EPOCH, base_ns=lambda s: 10_000 * MS if s in slow_steps else 100 * MS, stats_ns=800_000
    )
    assert t.governor.interval == 1  # 0.8 % of 100 ms a step fits every step
    first = trainer()
    first.governor.plan(0)
    first.clock.now += 3_000 * MS  # the first measured step compiles kernels
    first.governor.step_ended(2_900 * MS, 0)
    first.step = 1
    first.run(4 * EPOCH, base_ns=100 * MS, stats_ns=MS // 2)
    assert first.governor.interval == 1
    compiled = trainer()  # torch.compile: the model's first step is slow, the probe's is not
    compiled.run(1, base_ns=3_000 * MS, stats_ns=MS // 2)
    for _ in range(8):
        compiled.run(EPOCH, base_ns=100 * MS, stats_ns=MS // 2)
        assert compiled.governor.interval == 1 and compiled.governor.report().stats_ns == MS // 2


def test_measured_steps_are_a_function_of_the_step_number() -> None:
    # Two ranks with different step-time noise and the same costs plan the same steps.
    a, b = trainer(), trainer()
    a.run(30 * EPOCH, base_ns=lambda s: 100 * MS + (s % 7) * MS // 10, stats_ns=5 * MS)
    b.run(30 * EPOCH, base_ns=lambda s: 100 * MS + (s % 3) * MS // 10, stats_ns=5 * MS)
    assert a.measured(20 * EPOCH) == b.measured(20 * EPOCH)
    # Once decided, a step is measured iff it is a multiple of the interval of its block.
    assert all(s % a.governor.interval == 0 for s in a.measured(8 * EPOCH))


def test_rate_hz_stays_an_upper_limit() -> None:
    t = trainer(rate_hz=10.0)
    t.run(10 * EPOCH, base_ns=10 * MS, stats_ns=0)  # free, but at most 10 a second
    assert t.governor.interval == 16
    assert len(t.measured(10 * EPOCH)) <= 10 * EPOCH * 10 * 10 // 1000 + 1


def test_the_budget_and_the_pause_change_live() -> None:
    t = trainer()
    t.run(10 * EPOCH, base_ns=100 * MS, stats_ns=5 * MS)
    t.governor.budget = 0.1
    t.run(4 * EPOCH, base_ns=100 * MS, stats_ns=5 * MS)
    assert t.governor.interval == 1
    t.governor.paused = True
    t.run(EPOCH, base_ns=100 * MS, stats_ns=5 * MS)
    assert t.measured(EPOCH) == []


def test_async_costs_count_encoder_and_gpu_time() -> None:
    t = trainer()
    t.run(20 * EPOCH, base_ns=100 * MS, stats_ns=MS, gpu_ns=4 * MS)
    assert t.governor.interval == 8 and t.overhead(8 * EPOCH) <= 0.01
    assert t.governor.report().stats_ns == 5 * MS


def test_without_a_budget_every_step_at_the_rate_is_measured() -> None:
    t = trainer(None)
    t.run(10 * EPOCH, base_ns=100 * MS, stats_ns=50 * MS)
    assert len(t.measured(10 * EPOCH)) == 10 * EPOCH
    assert t.governor.report().budget == 0.0 and t.governor.report().cost == pytest.approx(0.5)


def test_budget_values_and_powers_of_two() -> None:
    assert budget_errors(0.01) == [] and budget_errors(1) == []
    for bad in (0, -0.1, 1.5, math.nan, math.inf, True, "1%"):
        assert budget_errors(bad)
    with pytest.raises(ValueError, match="budget"):
        Governor(0.0)
    assert [next_power_of_two(x) for x in (0, 1, 1.5, 8, 9)] == [1, 1, 2, 8, 16]


class FakeEvent:
    """A CUDA timing event on a fake GPU clock: completes when the test says so."""

    gpu_ms = 0.0
    made: list[FakeEvent] = []

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        FakeEvent.made.append(self)
        self.at: float | None = None
        self.done = False

    def record(self) -> None:
        self.at, self.done = FakeEvent.gpu_ms, False

    def query(self) -> bool:
        return self.done

    def elapsed_time(self, end: FakeEvent) -> float:
        assert self.done and end.done, "elapsed_time on an event in flight would wait"
        assert self.at is not None and end.at is not None
        return end.at - self.at


def test_gpu_timer_reads_completed_pairs_only_and_reuses_events(monkeypatch) -> None:
    import torch

    from synapse_probe.gpu_timer import GpuTimer

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    FakeEvent.made = []
    timer = GpuTimer()
    for step, lens in ((3, False), (3, True), (4, False)):
        start = timer.start()
        FakeEvent.gpu_ms += 0.25 if lens else 0.5
        timer.stop(start, step, lens=lens)
    assert timer.collect() == []  # nothing completed: nothing read, nothing waited for
    for event in FakeEvent.made[:4]:  # the first two pairs complete; the third is in flight
        event.done = True
    assert timer.collect() == [(3, False, 500_000), (3, True, 250_000)]
    timer.stop(timer.start(), 5)
    assert len(FakeEvent.made) == 6  # a read pair's events are recorded again
