"""Step-time cost of the probe on the demo's Llama-style model (``synapse_probe.demo``).

Copies of one model train side by side on the same batches, a block of steps each in turn (the
order rotates every round, after a warm-up; ``_overhead.interleave``), so that machine noise hits
every variant alike:

- plain: no probe;
- stats: ``attach(model, attention=False, routing=False)``: activation statistics only;
- lenses: ``attach(model)``: plus head statistics every measured step, attention patterns and
  per-token residual norms at ``pattern_hz``, and MoE routing with ``--moe``;
- all: ``attach(model, grads=True)`` (what the demo runs): plus gradients;
- every: ``all`` without a budget (``budget=None``): every step measured, the cost the governor
  spreads out.

The probe variants other than ``every`` run at the default budget (1 % of the step: the
governor chooses which steps are measured and how often the lenses run). Every probe variant
also calls ``log_metrics`` each step.

Each probe streams to a reader process that decodes every frame, as the app would. A step is
timed from its start to the end of its optimizer step; on CUDA with a synchronize at both ends
(the bench's only host syncs; the trainer itself has none). Prints each variant's median step
time and its ratio to plain: the median of per-round ratios (paired), the ratio of medians and
the ratio of total times (which counts a governed probe's rare measured steps); then each probe's
own count of its cost. The viewers' CPU time is printed too: where torch's threads take every
core, the viewers' decoding slows the step though it is not the probe's; ``--viewer-core`` gives
them a CPU of their own (training runs on the others, one torch thread each), as a viewer on
another machine or a spare core would be. ``--by-offset`` shows where a measured step's cost
lands: each probe's extra step time over plain, by steps since its last measured step.

Run: ``python bench/bench_demo_overhead.py [--device cuda --preset 1b] [--seconds 60]``.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import time
from typing import Any

import torch
from _overhead import BLOCK, interleave, report, report_by_offset  # bench/ is on the path
from _reader import read_frames, viewer_core

import synapse_probe
from synapse_probe.demo.data import Windows, load_corpus, split
from synapse_probe.demo.model import PRESETS, DemoForCausalLM, preset
from synapse_probe.demo.train import DEFAULT_LR, Trainer, pick_device

VARIANTS = ("plain", "stats", "lenses", "all", "every")
OPTIONS: dict[str, dict[str, Any]] = {
    "stats": {"grads": False, "attention": False, "routing": False},
    "lenses": {"grads": False},
    "all": {"grads": True},
    "every": {"grads": True, "budget": None},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--moe", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=60.0, help="time for measured rounds")
    parser.add_argument("--warmup", type=int, default=34, help="steps past the calibration (16)")
    parser.add_argument("--min-rounds", type=int, default=2, help=f"of {BLOCK} steps a variant")
    parser.add_argument("--variants", default="plain,stats,all,every", help="comma-separated")
    parser.add_argument(
        "--viewer-core", action="store_true", help="the viewers on a CPU of their own"
    )
    parser.add_argument(
        "--by-offset",
        action="store_true",
        help="each probe's extra step time by steps since its last measured step",
    )
    args = parser.parse_args()
    device = pick_device(args.device)
    variants = [name for name in args.variants.split(",") if name]
    if "plain" not in variants or not set(variants) <= set(VARIANTS):
        parser.error(f"--variants: 'plain' and any of {', '.join(VARIANTS[1:])}")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True

    torch.manual_seed(0)
    config = preset(args.preset, moe_experts=args.moe)
    train_bytes, _ = split(load_corpus())
    base = DemoForCausalLM(config)
    trainers: dict[str, Trainer] = {}
    for name in variants:
        model = copy.deepcopy(base).to(device)
        windows = Windows(train_bytes, args.batch, config.seq_len, seed=0, device=device)
        lr = DEFAULT_LR[args.preset]
        trainers[name] = Trainer(model, windows, lr=lr, warmup=20, horizon=10_000)
    del base

    core = viewer_core() if args.viewer_core else None
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    viewer_ns = spawn.Value("q", 0)
    probes: dict[str, Any] = {}
    readers: list[tuple[Any, Any]] = []
    for name in variants[1:]:
        probe = synapse_probe.attach(
            trainers[name].model, port=0, name="demo-llama", **OPTIONS[name]
        )
        probes[name] = probe
        count = spawn.Value("q", 0)
        reader = spawn.Process(
            target=read_frames, args=(*probe.address, stop, count, viewer_ns, core)
        )
        reader.start()
        readers.append((reader, count))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times: dict[str, list[float]] = {name: [] for name in variants}
    measured: dict[str, list[bool]] = {name: [] for name in probes}
    sampled: dict[str, int] = {}  # each probe's measured steps so far
    losses: dict[str, torch.Tensor] = {}
    steps = 0
    schedule = interleave(
        variants, warmup=args.warmup, seconds=args.seconds, min_rounds=args.min_rounds
    )
    for name, step, timed in schedule:
        probe = probes.get(name)
        sync()
        start = time.perf_counter()
        if probe is not None:
            probe.step(step + 1)
        loss, lr, norm = trainers[name].step(step)
        if probe is not None:
            probe.log_metrics(loss=loss, lr=lr, grad_norm=norm)
        sync()
        if timed:
            times[name].append(time.perf_counter() - start)
        if probe is not None:
            so_far = probe.stats().steps_sampled
            if timed:
                measured[name].append(so_far > sampled.get(name, 0))
            sampled[name] = so_far
        losses[name] = loss
        steps = max(steps, step + 1)

    for probe in probes.values():
        probe.flush()
    stop.set()
    for reader, _ in readers:
        reader.join(10)
    frames = [int(count.value) for _, count in readers]
    model = trainers["plain"].model
    print(
        f"demo model, preset {args.preset}: {model.num_parameters() / 1e6:.1f}M parameters, "
        f"{config.n_layers} layers, d {config.d_model}, batch {args.batch} x {config.seq_len}, "
        f"{device.type}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    report(times, probes)
    if args.by_offset:
        for name in probes:
            report_by_offset(name, times, measured[name])
    for probe in probes.values():
        probe.close()
    print(
        f"timed steps={len(times['plain'])} a variant, warmup={args.warmup} "
        f"threads={torch.get_num_threads()} "
        f"frames read={frames} loss after {steps} steps: "
        + ", ".join(f"{name} {float(loss):.3f}" for name, loss in losses.items())
    )
    where = f"on CPU {core} of their own" if core is not None else "on the training CPUs"
    print(
        f"viewers ({where}): {viewer_ns.value / 1e6 / steps:.1f} ms of CPU a step of "
        f"every variant, {sum(frames) / steps:.0f} frames"
    )


if __name__ == "__main__":
    main()
