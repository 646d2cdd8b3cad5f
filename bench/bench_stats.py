"""The fused CPU statistics kernel against one read pass of the same tensor.

For each shape: median time of the kernel (summary + per-neuron |x| + finish + neuron selection)
with 1 and 2 threads, of ``x.sum()`` (torch when importable, else numpy), their ratio, and the
obvious torch way of getting the same numbers (var_mean, threshold count, isfinite, histc, per
neuron mean |x|). Measurements are interleaved so that machine noise hits all columns alike.

    python bench/bench_stats.py            # all shapes (~1 min)
    python bench/bench_stats.py --quick    # the two small shapes
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from synapse_native.stats import InputDtype, SiteStats, active_impl

try:
    import torch
except ImportError:  # the kernel needs no torch; compare against numpy then
    torch = None  # type: ignore[assignment]

SHAPES = [(8, 128, 256), (8, 512, 1024), (8, 1024, 4096), (8, 2048, 4096)]
BF16_SHAPE = (8, 1024, 4096)
THRESHOLD = 1.0
TOP_K = 64


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def make_input(
    shape: tuple[int, ...], bf16: bool
) -> tuple[Any, int, InputDtype, Callable[[], Any]]:
    """(tensor keeping the memory alive, data pointer, dtype, one read pass of it)."""
    if torch is not None:
        x = torch.randn(shape)
        if bf16:
            x = x.to(torch.bfloat16)
        return x, x.data_ptr(), InputDtype.BF16 if bf16 else InputDtype.F32, x.sum
    a = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    if bf16:
        a = (a.view(np.uint32) >> 16).astype(np.uint16)
        return a, a.ctypes.data, InputDtype.BF16, lambda: a.sum(dtype=np.float32)
    return a, a.ctypes.data, InputDtype.F32, a.sum


def torch_naive(x: Any, cols: int) -> Callable[[], Any]:
    """The obvious torch reductions for the same numbers."""

    def run() -> Any:
        var, mean = torch.var_mean(x)
        above = (x.abs() > THRESHOLD).sum()
        finite = torch.isfinite(x).all()
        hist = torch.histc(x.float(), bins=64)
        neurons = x.abs().reshape(-1, cols).mean(dim=0)
        return var, mean, above, finite, hist, neurons

    return run


def bench_shape(shape: tuple[int, ...], bf16: bool, budget_s: float) -> dict[str, float]:
    cols = shape[-1]
    rows = int(np.prod(shape[:-1]))
    x, ptr, dtype, read_pass = make_input(shape, bf16)
    kernels = {t: SiteStats(cols, top_k=TOP_K, threads=t) for t in (1, 2)}

    def kernel(t: int) -> Callable[[], None]:
        s = kernels[t]

        def run() -> None:
            s.compute_ptr(ptr, rows, dtype, THRESHOLD, neuron_mean=True)
            s.finish(0)
            s.select(THRESHOLD)

        return run

    fns: dict[str, Callable[[], Any]] = {"k1": kernel(1), "k2": kernel(2), "sum": read_pass}
    if torch is not None:
        fns["naive"] = torch_naive(x, cols)
    for fn in fns.values():  # warm up: page faults, thread pool start, caches
        fn()
    once = sum(timed(fn) for fn in fns.values())
    reps = max(3, min(30, int(budget_s / max(once, 1e-6))))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            times[name].append(timed(fn))
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the two small shapes")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per shape")
    args = parser.parse_args()
    cases = [(s, False) for s in SHAPES] + [(BF16_SHAPE, True)]
    if args.quick:
        cases = [(s, False) for s in SHAPES[:2]]
    base = "torch x.sum()" if torch is not None else "numpy x.sum()"
    threads = f", torch threads {torch.get_num_threads()}" if torch is not None else ""
    print(f"kernel build: {active_impl()}{threads}; medians in ms; ratio = kernel / {base}")
    print(f"{'shape':>18} {'dtype':>5} {'sum':>8} {'kernel 1T':>10} {'kernel 2T':>10}"
          f" {'ratio 1T':>8} {'ratio 2T':>8} {'torch naive':>12}")  # fmt: skip
    for shape, bf16 in cases:
        r = bench_shape(shape, bf16, args.budget)
        naive = f"{r['naive']:12.2f}" if "naive" in r else f"{'-':>12}"
        print(
            f"{'x'.join(map(str, shape)):>18} {'bf16' if bf16 else 'fp32':>5} {r['sum']:8.3f}"
            f" {r['k1']:10.3f} {r['k2']:10.3f} {r['k1'] / r['sum']:8.2f}"
            f" {r['k2'] / r['sum']:8.2f} {naive}",
            flush=True,
        )


if __name__ == "__main__":
    main()
