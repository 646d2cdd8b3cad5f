"""CONTROL flood: the step time of a probed model while a viewer sends ~10 000 CONTROL a second.

The small GPT of ``bench_probe_overhead.py`` (d=256, 6 blocks, T=128, batch 8, AdamW) trains on
the CPU with the probe attached (default budget, ``grads=True``). One viewer (another process)
is connected throughout and reads every frame; rounds alternate (the order flips every round)
between a phase where it sends nothing and a phase where it sends valid CONTROL requests (the
threshold, as a slider being dragged) at ``--rate`` a second. Each phase is ``--steps`` steps,
after a short settling time, so the viewer's and the probe's network threads are in the state
of the phase being measured.

Prints the median step time of each phase, the median of per-round ratios (flood / quiet), the
ratio of medians and of total times; the training thread's own CPU time per step (which other
processes' load on a shared machine does not reach) and the whole trainer process's (the
probe's network threads included); then what the viewer sent, what the probe acknowledged as
applied or refused, and what it left unanswered (the probe drops and counts what it cannot take).
Run: ``nice -n 10 python bench/bench_control_flood.py --seconds 150``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from bench_probe_overhead import BATCH, BLOCKS, GPT, VOCAB, D, T  # bench/ is on the path

import synapse_probe

SETTLE_S = 0.3  # between phases: the flood starts or stops before steps are timed


def flood(
    host: str, port: int, rate: float, dry: bool, on: Any, stop: Any, ready: Any, counts: Any
) -> None:
    """The viewer: reads every frame; while ``on`` is set, sends ``rate`` CONTROL a second.
    With ``dry``, it makes and encodes them at that rate all the time and only sends them while
    ``on`` is set, so that its own CPU time (which a 2-core machine shares with the trainer) is
    the same in both phases.

    ``counts``: sent, not queued (the client's own queue full), acks applied, acks refused.
    """
    from synapse_native.client import StreamClient
    from synapse_native.protocol import Control, ControlAck, MsgType, decode_frame, encode

    ack_type = int(MsgType.CONTROL_ACK).to_bytes(2, "little")
    thresholds = (2.5, 2.6)  # valid in the default (sigma) mode
    request_id = 0
    with StreamClient.connect(host, port, name="control-flood") as client:
        ready.set()
        started: float | None = None
        sent_in_phase = 0
        while not stop.is_set():
            sending = on.is_set()
            if sending or dry:
                now = time.perf_counter()
                if started is None:
                    started, sent_in_phase = now, 0
                due = int((now - started) * rate) - sent_in_phase
                for _ in range(max(0, due)):
                    request_id = request_id % 0xFFFFFFFF + 1
                    frame = encode(Control(request_id, threshold=thresholds[request_id & 1]))
                    sent_in_phase += 1
                    if not sending:
                        continue
                    if client._pump.send(frame):  # what StreamClient.send does, encoded here
                        counts[0] += 1
                    else:
                        counts[1] += 1
            else:
                started = None
            for raw in client.raw_frames(0.001):
                if raw[6:8] != ack_type:
                    continue
                frame = decode_frame(raw)
                ack = frame.message if frame is not None else None
                if isinstance(ack, ControlAck) and ack.request_id:
                    counts[2 if ack.applied else 3] += 1


def train_step(model: GPT, opt: torch.optim.Optimizer, inputs: Any, targets: Any) -> float:
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    logits = model(inputs)
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
    torch.autograd.backward(loss)
    opt.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0, help="time for measured rounds")
    parser.add_argument("--rate", type=float, default=10_000.0, help="CONTROL a second")
    parser.add_argument("--steps", type=int, default=8, help="steps per phase")
    parser.add_argument("--min-rounds", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=30, help="steps before the first round")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the trainer")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--no-dry", action="store_true", help="the quiet viewer does not make CONTROLs either"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    probe = synapse_probe.attach(model, port=args.port, name="bench-gpt", grads=True)
    address = probe.address
    assert address is not None
    spawn = multiprocessing.get_context("spawn")
    on, stop, ready = spawn.Event(), spawn.Event(), spawn.Event()
    counts = spawn.Array("q", 4)
    viewer = spawn.Process(
        target=flood,
        args=(*address, args.rate, not args.no_dry, on, stop, ready, counts),
        daemon=True,
    )
    viewer.start()
    if not ready.wait(30):
        raise SystemExit("the viewer did not connect")
    ids = torch.randint(0, VOCAB, (BATCH, T + 1))
    inputs, targets = ids[:, :-1], ids[:, 1:]
    for _ in range(args.warmup):
        train_step(model, opt, inputs, targets)

    times: dict[str, list[float]] = {"quiet": [], "flood": []}
    cpu = {"quiet": 0.0, "flood": 0.0}  # the trainer process's CPU seconds (all its threads)
    own = {"quiet": 0.0, "flood": 0.0}  # the training thread's own CPU seconds
    paired: list[float] = []
    flood_s = 0.0
    deadline = time.perf_counter() + args.seconds
    r = 0
    while r < args.min_rounds or time.perf_counter() < deadline:
        medians = {}
        for phase in ("quiet", "flood") if r % 2 == 0 else ("flood", "quiet"):
            if phase == "flood":
                on.set()
            else:
                on.clear()
            time.sleep(SETTLE_S)
            began, cpu_began, own_began = (
                time.perf_counter(),
                time.process_time(),
                time.thread_time(),
            )
            steps = [train_step(model, opt, inputs, targets) for _ in range(args.steps)]
            cpu[phase] += time.process_time() - cpu_began
            own[phase] += time.thread_time() - own_began
            if phase == "flood":
                flood_s += time.perf_counter() - began + SETTLE_S
            times[phase] += steps
            medians[phase] = statistics.median(steps)
        paired.append(medians["flood"] / medians["quiet"])
        r += 1
    on.clear()
    time.sleep(1.0)  # the last acknowledgements arrive
    stats = probe.stats()
    probe.close()
    stop.set()
    viewer.join(10)

    quiet, flooded = times["quiet"], times["flood"]
    print(
        f"small GPT d={D} blocks={BLOCKS} T={T} batch={BATCH}, AdamW, CPU, "
        f"{torch.get_num_threads()} torch thread(s); probe: default budget, grads=True"
    )
    print(f"{'phase':<8} {'median step':>12} {'paired':>8} {'of medians':>11} {'of totals':>10}")
    print(f"{'quiet':<8} {statistics.median(quiet) * 1e3:>10.1f}ms")
    print(
        f"{'flood':<8} {statistics.median(flooded) * 1e3:>10.1f}ms "
        f"{statistics.median(paired):>8.3f} "
        f"{statistics.median(flooded) / statistics.median(quiet):>11.3f} "
        f"{sum(flooded) / sum(quiet):>10.4f}"
    )
    print(
        f"training thread CPU per step (blind to other processes' load): "
        f"quiet {own['quiet'] / len(quiet) * 1e3:.1f} ms, "
        f"flood {own['flood'] / len(flooded) * 1e3:.1f} ms "
        f"(x{own['flood'] / len(flooded) / (own['quiet'] / len(quiet)):.3f})"
    )
    print(
        f"trainer process CPU per step: quiet {cpu['quiet'] / len(quiet) * 1e3:.1f} ms, "
        f"flood {cpu['flood'] / len(flooded) * 1e3:.1f} ms; the quiet viewer "
        + ("made and encoded CONTROLs without sending them" if not args.no_dry else "was idle")
    )
    sent, not_queued, applied, refused = counts[:]
    unanswered = sent - applied - refused
    print(
        f"CONTROL: {sent} sent in {flood_s:.0f} s of flood ({sent / max(flood_s, 1e-9):.0f}/s), "
        f"{not_queued} not queued by the viewer; probe: {applied} applied, {refused} refused, "
        f"{unanswered} dropped unanswered"
    )
    print(
        f"rounds={r} steps/phase={args.steps} warmup={args.warmup} "
        f"steps measured={stats.steps_sampled}/{stats.steps_seen}"
    )
    if not math.isfinite(statistics.median(paired)):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
