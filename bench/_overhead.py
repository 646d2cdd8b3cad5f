"""The report shared by the overhead benchmarks: step-time ratios to plain, and the probe's own
view of its cost (``Probe.cost()``, what its governor keeps under the budget)."""

from __future__ import annotations

import statistics
from typing import Any


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
