"""Cost of measuring one tensor on a sampled step, next to one read pass (``x.sum()``).

"Measuring" is what a site's hook does on a sampled step: the whole summary (moments, min/max,
counts, the 64-bin histogram) and the per-neuron mean |x|, written into the step's buffers, plus
the step's begin/finish around it. On CPU that is the native single-pass kernel (or the torch
reductions when it is not built, or with ``--torch``); the "kernel" column is the native call
alone, the rest is the probe's Python around it. With ``--device cuda``: the on-device
reductions, timed with a synchronize after each run. Run: ``python bench/bench_hot_path.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from synapse_probe.collector import StepCollector
from synapse_probe.kernels import cpu_kernel

SHAPES = [(8, 128, 256), (8, 512, 1024), (8, 1024, 2048), (8, 2048, 4096)]
BF16_SHAPE = (8, 1024, 2048)
THRESHOLD = 1.0
TOP_K = 512


def timed_interleaved(
    fns: list[Callable[[], object]], device: torch.device, budget: float
) -> list[float]:
    """Median seconds of each function, run in turn, in a rotating order (so that load on a shared
    machine, and torch's worker threads still spinning after an op, hit all alike) for about
    ``budget`` seconds, after one warm-up run of each."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    deadline = time.perf_counter() + budget
    turn = 0
    while len(times[0]) < 3 or (time.perf_counter() < deadline and len(times[0]) < 200):
        turn += 1
        order = list(zip(fns, times, strict=True))
        for fn, out in order[turn % len(fns) :] + order[: turn % len(fns)]:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            out.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def hot_path(x: torch.Tensor, kernel: cpu_kernel.CpuKernel | None) -> Callable[[], None]:
    """One sampled step's work for one site holding ``x``."""
    collector = StepCollector(1, None, kernel)
    collector.max_width = x.shape[-1]

    def measure() -> None:
        collector.begin(0, THRESHOLD, TOP_K)
        collector.record(0, x, gradient=False)
        snapshot = collector.finish()
        assert snapshot is not None
        snapshot.release()

    return measure


def kernel_only(x: torch.Tensor, threads: int) -> Callable[[], None]:
    """The native kernel call and record write alone."""
    from synapse_native.stats import InputDtype, SiteStats

    context = SiteStats(x.shape[-1], threads=threads)
    dtype = InputDtype.BF16 if x.dtype == torch.bfloat16 else InputDtype.F32
    rows = x.numel() // x.shape[-1]

    def run() -> None:
        context.compute_ptr(x.data_ptr(), rows, dtype, THRESHOLD, neuron_mean=True)
        context.finish(0)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per shape")
    parser.add_argument("--torch", action="store_true", help="torch reductions even on CPU")
    parser.add_argument("--threads", type=int, default=0, help="torch and kernel threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    kernel = None if args.torch or device.type != "cpu" else cpu_kernel.load(args.threads or None)
    path = "native kernel" if kernel is not None else "torch reductions"
    threads = kernel.threads if kernel is not None else "-"
    print(f"device={device} path={path} threads: torch {torch.get_num_threads()}, kernel {threads}")
    print(f"{'shape':<16} {'dtype':<9} {'x.sum()':>9} {'kernel':>9} {'measure':>9} {'ratio':>6}")
    cases = [(shape, torch.float32) for shape in SHAPES] + [(BF16_SHAPE, torch.bfloat16)]
    for shape, dtype in cases:
        x = torch.randn(shape, device=device).to(dtype)
        fns: list[Callable[[], object]] = [x.sum, hot_path(x, kernel)]
        if kernel is not None:
            fns.append(kernel_only(x, kernel.threads))
        read, cost, *native = timed_interleaved(fns, device, args.budget)
        label = "x".join(map(str, shape))
        alone = f"{native[0] * 1e3:>7.2f}ms" if native else f"{'-':>9}"
        print(
            f"{label:<16} {str(dtype)[6:]:<9} {read * 1e3:>7.2f}ms {alone} {cost * 1e3:>7.2f}ms"
            f" {cost / read:>6.2f}"
        )


if __name__ == "__main__":
    main()
