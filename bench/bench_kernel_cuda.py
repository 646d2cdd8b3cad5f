"""GPU time of the fused statistics kernel for one site, next to one read pass (``x.sum()``).

One 8 x 1024 x 2048 bf16 activation (and the other shapes of ``SHAPES``): the probe's whole
per-site work on a measured step (``cuda_kernel.summarize_with``: scratch memset, tile kernel,
merge, top-k into the slot) against ``x.sum()`` of the same tensor. CUDA events around
``--calls`` back-to-back calls of each, interleaved, median over ``--repeats``; also the host
time of one call (launch overhead). The aim (issue #11): <= 2x ``x.sum()``.

Run (needs CUDA): ``python bench/bench_kernel_cuda.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

SHAPES = [((8, 1024, 2048), torch.bfloat16), ((8, 1024, 2048), torch.float32)]
SHAPES += [((8, 1024, 4096), torch.bfloat16), ((4, 512, 8192), torch.bfloat16)]
THRESHOLD, TOP_K = 1.0, 512


def gpu_us(fn: Callable[[], object], calls: int) -> float:
    """Microseconds of GPU time per call, over ``calls`` back-to-back calls."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return float(start.elapsed_time(end)) * 1e3 / calls


def host_us(fn: Callable[[], object], calls: int) -> float:
    """Microseconds of host time per call (launches only: no sync inside the loop)."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed * 1e6 / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_kernel_cuda: no CUDA device here, nothing measured")
        return
    from synapse_probe.kernels import _triton_stats
    from synapse_probe.kernels.cuda_kernel import summarize_with
    from synapse_probe.slots import SlotBuffer

    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    head = f"{'shape':<18} {'dtype':<9} {'x.sum() us':>10} {'kernel us':>10}"
    print(f"{head} {'ratio':>6} {'host us':>8}")
    for shape, dtype in SHAPES:
        x = torch.randn(shape, device="cuda").to(dtype)
        slots = SlotBuffer(x.device, n_sites=1, n_blocks=0, top_k=TOP_K)
        row = slots.activations[0]

        def kernel(x: torch.Tensor = x, row: torch.Tensor = row) -> None:
            summarize_with(_triton_stats, x, row, THRESHOLD, TOP_K)

        def read(x: torch.Tensor = x) -> None:
            x.sum()

        kernel()
        read()  # compile and warm up
        sums, kernels = [], []
        for _ in range(args.repeats):
            sums.append(gpu_us(read, args.calls))
            kernels.append(gpu_us(kernel, args.calls))
        s, k = statistics.median(sums), statistics.median(kernels)
        h = host_us(kernel, args.calls)
        name = "x".join(map(str, shape))
        print(f"{name:<18} {str(dtype)[6:]:<9} {s:>10.1f} {k:>10.1f} {k / s:>6.2f} {h:>8.1f}")


if __name__ == "__main__":
    main()
