"""What the overhead benchmarks share: the order their variants step in (``interleave``), and
the report of step-time ratios to plain next to the probe's own view of its cost
(``Probe.cost()``, what its governor keeps under the budget)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator
from typing import Any

# Steps each variant runs in a row. A probe's governor takes the time between its step
# boundaries for the step time, so a variant must run steps in a row for it to see its own step
# time: stepping the variants one step each in turn gave it the time of a whole round, and it
# let the probe cost twice or three times its budget of one step. A block's first step, whose
# boundary waited for the other variants' blocks, is one sample in 7, which the governor's
# medians pass over; and in a row, what a measured step leaves to the next one lands on its own
# variant (but at a block's end). Short blocks keep the steps compared close in time.
BLOCK = 7


def interleave(
    names: list[str], *, warmup: int, seconds: float, min_rounds: int, block: int = BLOCK
) -> Iterator[tuple[str, int, bool]]:
    """(variant, its step number, whether the step is timed): ``block`` steps of each variant
    in turn, the order rotating every round so that machine noise hits every variant alike;
    the first ``warmup`` steps of each are not timed, then rounds run for ``seconds`` (at
    least ``min_rounds``)."""
    warmup_rounds = -(-warmup // block)
    deadline = math.inf
    r = 0
    while r < warmup_rounds + min_rounds or time.perf_counter() < deadline:
        if r == warmup_rounds:
            deadline = time.perf_counter() + seconds
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for i in range(block):
                yield name, r * block + i, r >= warmup_rounds
        r += 1


def report(times: dict[str, list[float]], probes: dict[str, Any]) -> None:
    """Per variant: median step, the median of per-round ratios to plain (paired), the ratio of
    medians, and the ratio of total times (the one that counts the rare measured steps: with a
    governor most steps are not measured, and a median does not see the ones that are)."""
    plain = times["plain"]
    print(
        f"{'variant':<12} {'median step':>12} {'paired':>8} {'of medians':>11} {'of totals':>10}"
        f"  probe's own count"
    )
    for name, steps in times.items():
        paired = statistics.median(a / b for a, b in zip(steps, plain, strict=True))
        median = statistics.median(steps)
        line = (
            f"{name:<12} {median * 1e3:>10.1f}ms {paired:>8.3f}"
            f" {median / statistics.median(plain):>11.3f} {sum(steps) / sum(plain):>10.4f}"
        )
        probe = probes.get(name)
        if probe is not None:
            line += "  " + describe(probe)
        print(line)


def describe(probe: Any) -> str:
    """The probe's budget, measured cost and plan, and its counters, in one line."""
    cost, stats = probe.cost(), probe.stats()
    budget = f"{cost.budget:.1%}" if cost.budget else "none"
    lenses = f", lenses every {cost.lens_interval}" if cost.lens_interval else ""
    return (
        f"cost {cost.cost:.2%} of step (budget {budget}): every {cost.interval} step(s){lenses}, "
        f"{cost.stats_ns / 1e6:.1f} ms a measured step, lenses {cost.lens_ns / 1e6:.1f} ms; "
        f"{stats.steps_sampled}/{stats.steps_seen} measured, "
        f"{stats.snapshots_dropped} dropped, {stats.steps_skipped} skipped"
    )


def report_by_offset(name: str, times: dict[str, list[float]], measured: list[bool]) -> None:
    """``name``'s extra step time over plain's step of the same number, by steps since its last
    measured step (0: the measured step itself), medians and means: where the cost lands."""
    extra: dict[int, list[float]] = {}
    since = None
    for step, plain, was_measured in zip(times[name], times["plain"], measured, strict=True):
        since = 0 if was_measured else None if since is None else since + 1
        if since is not None:
            extra.setdefault(min(since, 4), []).append((step - plain) * 1e3)
    cells = [
        f"{'measured' if k == 0 else f'+{k}' if k < 4 else '+4 on'}: "
        f"{statistics.median(v):+.1f} / {statistics.mean(v):+.1f} ms (n={len(v)})"
        for k, v in sorted(extra.items())
    ]
    print(f"{name} over plain, median / mean, by steps since a measured step: " + "; ".join(cells))
