"""What a CAPTURE costs the training step: the step it is taken on and the step after.

The demo's Llama-style model (``synapse_probe.demo``, preset ``demo``: 5.7M parameters, 8
layers, d 256, batch 8 x 128, the demo's own ``Trainer``) trains with the probe attached with
``capture=True``, measuring every step (``budget=None``, lenses off). Two copies run, in turn:
``acts`` (``grads=False``: a capture holds the sites' outputs) and ``acts+grads``
(``grads=True``: their gradients too, and the probe measures gradients every step). Each has a
viewer in another process that reads and decodes every frame, as the app would, and sends the
CAPTURE_REQUESTs.

One cycle, for one copy and N sites (the MLP outputs of the first N layers, N in 1, 4, 8):

- (a) a measured step without a capture; the viewer sends the request as it starts, so the
  server's event thread queues it during (a) (its cost there is a few microseconds);
- (b) the step the capture is taken on: the hooks copy the N outputs (and gradients);
- (c) the step after: its boundary hands the capture to the writer thread, which writes the
  ``safetensors`` file and sends CAPTURE_DONE while (c) trains.

The bench then waits for CAPTURE_DONE (and runs one untimed step when it had to wait, so that
every timed step follows a step), and checks that the capture was taken on (b). Cycles of all
six configurations run in rotating order, so that machine noise hits them alike. A step is
timed from its boundary (``probe.step``) to the end of its optimizer step; on CUDA with a
synchronize at both ends (the bench's only host syncs). On the CPU torch runs one thread
(``--threads``): with two on the 2-core development machine, any other process taking a core
stalled torch's threads at their barriers and made some steps ten times slower.

Prints per configuration: the median of (a), (b), (c), the medians of the per-cycle ratios
(b)/(a) and (c)/(a) (paired) and of the differences; the capture's bytes (file size); the
probe's own count of its time on the training thread in (a), (b) and (c) (``probe_ns``: the
forward copies and the writer's start, not the gradient copies, which run in autograd's
hooks); and the time from the end of (b) until CAPTURE_DONE reached the viewer, and how often
it arrived before (c) ended.

Run: ``python bench/bench_capture.py [--quick] [--device cuda --preset 1b --batch 4]``
(about 2.5 minutes; ``--quick`` about 30 s).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

import synapse_probe
from synapse_probe.demo.data import Windows, load_corpus, split
from synapse_probe.demo.model import PRESETS, DemoForCausalLM, preset
from synapse_probe.demo.train import DEFAULT_LR, Trainer, pick_device

VARIANTS = {"acts": False, "acts+grads": True}  # name: grads
COUNTS = (1, 4, 8)
DONE_TIMEOUT_S = 120.0


def viewer(host: str, port: int, conn: Any) -> None:
    """The viewer process: reads every frame; sends the CAPTURE_REQUESTs the bench asks for
    and reports each CAPTURE_DONE with its arrival time (``time.monotonic_ns``)."""
    from synapse_native.client import ConnectionClosed, StreamClient
    from synapse_native.protocol import CaptureDone, CaptureRequest, ModelMeta, MsgType

    with StreamClient.connect(host, port, timeout=30.0) as client:
        meta = client.wait_for(MsgType.MODEL_META, 30.0).message
        assert isinstance(meta, ModelMeta)
        conn.send({site.name: site.site_id for site in meta.sites})
        while True:
            if conn.poll():
                command = conn.recv()
                if command is None:
                    return
                request_id, site_ids = command
                client.send(CaptureRequest(request_id, tuple(site_ids)))
            try:
                frame = client.next_frame(0.005)
            except ConnectionClosed:
                return
            if frame is not None and isinstance(frame.message, CaptureDone):
                arrived = time.monotonic_ns()
                done = frame.message
                conn.send(
                    (done.request_id, int(done.status), done.step, done.size, done.path,
                     done.text, arrived)
                )  # fmt: skip


@dataclass
class Run:
    """One model with its trainer, probe and viewer."""

    trainer: Trainer
    probe: Any
    conn: Any
    process: Any
    sites: dict[str, int]
    n: int = 0  # the next step

    def step(self, sync: Callable[[], None], started: Callable[[], None] | None = None) -> float:
        """One training step, timed from its boundary; ``started`` runs right after it."""
        sync()
        start = time.perf_counter()
        self.probe.step(self.n)
        if started is not None:
            started()
        self.trainer.step(self.n)
        sync()
        elapsed = time.perf_counter() - start
        self.n += 1
        return elapsed


@dataclass
class Samples:
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    c: list[float] = field(default_factory=list)
    own: tuple[list[float], list[float], list[float]] = field(
        default_factory=lambda: ([], [], [])
    )  # the probe's own ms in (a), (b), (c)
    size: list[int] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)  # ms from the end of (b) to CAPTURE_DONE
    during_c: int = 0  # CAPTURE_DONE arrived before (c) ended
    missed: int = 0  # the capture was not taken on (b): cycle left out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=135.0, help="time for measured cycles")
    parser.add_argument("--min-rounds", type=int, default=3, help="rounds of all configurations")
    parser.add_argument("--warmup", type=int, default=3, help="plain steps per model first")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (0: all)")
    parser.add_argument("--max-mb", type=float, default=2048.0, help="capture_max_mb")
    parser.add_argument("--dir", default=None, help="where captures are written (a temp dir)")
    parser.add_argument("--quick", action="store_true", help="a short run: 12 s, 2 rounds")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.min_rounds, args.warmup = 12.0, 2, 2
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    torch.manual_seed(0)
    config = preset(args.preset)
    if config.n_layers < max(COUNTS):
        parser.error(f"preset {args.preset} has {config.n_layers} layers; {max(COUNTS)} needed")
    train_bytes, _ = split(load_corpus(2_000_000))
    base = DemoForCausalLM(config)
    captures = tempfile.TemporaryDirectory(prefix="synapse-bench-capture-", dir=args.dir)
    spawn = multiprocessing.get_context("spawn")
    runs: dict[str, Run] = {}
    for name, grads in VARIANTS.items():
        model = copy.deepcopy(base).to(device)
        windows = Windows(train_bytes, args.batch, config.seq_len, seed=0, device=device)
        trainer = Trainer(model, windows, lr=DEFAULT_LR[args.preset], warmup=20, horizon=10_000)
        probe = synapse_probe.attach(
            model, port=0, name=f"bench-capture-{name}", grads=grads, budget=None,
            rate_hz=1000.0, attention=False, routing=False, capture=True,
            capture_dir=os.path.join(captures.name, name), capture_max_mb=args.max_mb,
        )  # fmt: skip
        ours, theirs = spawn.Pipe()
        process = spawn.Process(target=viewer, args=(*probe.address, theirs), daemon=True)
        process.start()
        if not ours.poll(60.0):
            raise RuntimeError("the viewer did not connect")
        runs[name] = Run(trainer, probe, ours, process, ours.recv())
    del base

    request_ids = itertools.count(1)
    waited = [True]  # the bench paused since the last step: the next cycle starts with one

    def cycle(run: Run, count: int, samples: Samples | None) -> None:
        """(a), (b), (c) with a capture of ``count`` MLP outputs requested at the start of (a)."""
        if waited[0]:
            run.step(sync)  # untimed: every timed step follows a step, as in training
        request_id = next(request_ids)
        ids = [run.sites[f"model.layers.{i}.mlp"] for i in range(count)]
        probe = run.probe
        own = [probe.probe_ns]
        b_step = run.n + 1
        a = run.step(sync, lambda: run.conn.send((request_id, ids)))
        own.append(probe.probe_ns)
        b = run.step(sync)
        end_b = time.monotonic_ns()
        own.append(probe.probe_ns)
        c = run.step(sync)
        end_c = time.monotonic_ns()
        own.append(probe.probe_ns)
        waited[0] = not run.conn.poll()
        if not run.conn.poll(DONE_TIMEOUT_S):
            raise RuntimeError(f"no CAPTURE_DONE for request {request_id}")
        rid, status, step, size, path, text, arrived = run.conn.recv()
        if rid != request_id or status != 0:
            raise RuntimeError(f"capture {rid} (asked {request_id}): status {status} {text!r}")
        os.remove(path)
        if samples is None:
            return
        if step != b_step:
            samples.missed += 1
            return
        samples.a.append(a)
        samples.b.append(b)
        samples.c.append(c)
        for i in range(3):
            samples.own[i].append((own[i + 1] - own[i]) / 1e6)
        samples.size.append(size)
        samples.latency.append((arrived - end_b) / 1e6)
        samples.during_c += arrived <= end_c

    for run in runs.values():
        for _ in range(args.warmup):
            run.step(sync)
        cycle(run, max(COUNTS), None)  # the first capture pays the writer's imports
    configs = [(name, count) for name in VARIANTS for count in COUNTS]
    results = {config: Samples() for config in configs}
    started = time.perf_counter()
    deadline = started + args.seconds
    rounds = 0
    while rounds < args.min_rounds or time.perf_counter() < deadline:
        order = configs[rounds % len(configs) :] + configs[: rounds % len(configs)]
        for name, count in order:
            cycle(runs[name], count, results[(name, count)])
        rounds += 1
    measured = time.perf_counter() - started

    for run in runs.values():
        run.conn.send(None)
        run.process.join(10)
        run.probe.close()
    captures.cleanup()
    model = runs["acts"].trainer.model
    print(
        f"demo model, preset {args.preset}: {model.num_parameters() / 1e6:.1f}M parameters, "
        f"{config.n_layers} layers, d {config.d_model}, batch {args.batch} x {config.seq_len}, "
        f"{device.type}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
        + "; probe measuring every step, lenses off; capture of the MLP outputs of layers 0..N-1"
    )
    report(results)
    stats = {name: run.probe.stats() for name, run in runs.items()}
    print(
        f"rounds={rounds} in {measured:.0f} s, threads={torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f}; steps measured/seen: "
        + ", ".join(f"{n} {s.steps_sampled}/{s.steps_seen}" for n, s in stats.items())
    )


def report(results: dict[tuple[str, int], Samples]) -> None:
    """Two tables: step times and ratios; the capture's bytes, own time and CAPTURE_DONE."""
    med = statistics.median
    print(
        f"{'variant':<11} {'N':>2} {'(a) step':>10} {'(b) capture':>12} {'(b)/(a)':>8} "
        f"{'b-a':>8} {'(c) next':>10} {'(c)/(a)':>8} {'c-a':>8} {'cycles':>7}"
    )
    for (name, count), s in results.items():
        if not s.a:
            print(f"{name:<11} {count:>2} no cycle ({s.missed} missed)")
            continue
        pairs_b = list(zip(s.b, s.a, strict=True))
        pairs_c = list(zip(s.c, s.a, strict=True))
        print(
            f"{name:<11} {count:>2} {med(s.a) * 1e3:>8.1f}ms {med(s.b) * 1e3:>10.1f}ms "
            f"{med(b / a for b, a in pairs_b):>8.3f} "
            f"{med(b - a for b, a in pairs_b) * 1e3:>6.1f}ms "
            f"{med(s.c) * 1e3:>8.1f}ms {med(c / a for c, a in pairs_c):>8.3f} "
            f"{med(c - a for c, a in pairs_c) * 1e3:>6.1f}ms {len(s.a):>4}"
            + (f" ({s.missed} missed)" if s.missed else "")
        )
    print(
        f"{'variant':<11} {'N':>2} {'bytes':>9} {'own (a)':>9} {'own (b)':>9} {'own (c)':>9} "
        f"{'CAPTURE_DONE after (b)':>23} {'before (c) ended':>17}"
    )
    for (name, count), s in results.items():
        if not s.a:
            continue
        own_a, own_b, own_c = (med(x) for x in s.own)
        latency = sorted(s.latency)
        print(
            f"{name:<11} {count:>2} {med(s.size) / (1 << 20):>5.1f} MiB {own_a:>7.2f}ms "
            f"{own_b:>7.2f}ms {own_c:>7.2f}ms {med(latency):>9.1f}ms (max {latency[-1]:>6.1f}) "
            f"{s.during_c:>10}/{len(s.a)}"
        )


if __name__ == "__main__":
    main()
