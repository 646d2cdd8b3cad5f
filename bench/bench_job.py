"""The app following a 64-rank x 80-layer job: GUI work per displayed frame, lag, drops.

A simulator process streams what a job's serving rank sends (``synapse sim --ranks 64
--layers 80``: merged summaries, rank skew, job status, the serving rank's sparse frames) at 10
summaries/s. The app's client, session and layer grid (as in the app, the canvas not shown)
follow it twice in the same run: first as before this change (512 frames drained a tick, every
step applied: ``skip_steps = False``), then skipping whole old steps. For each: GUI-thread work
per displayed frame (wall and thread CPU time), end-to-end lag per applied batch (p50, p95, and
the p50 of the last third against the first third: growth), drops and skipped steps.

  LIBGL_ALWAYS_SOFTWARE=1 xvfb-run -a .venv/bin/python bench/bench_job.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import time

import numpy as np

RENDER_SIZE = (1280, 800)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(port: int, ranks: int, layers: int, fps: float) -> None:
    from synapse_serve.sim import SimOptions, Simulator

    options = SimOptions(port=port, layers=layers, ranks=ranks, fps=fps, announce=False)
    with Simulator(options) as sim:
        sim.run()


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _follow(app, port: int, seconds: float, skip: bool) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from synapse_desktop.models.session import Session
    from synapse_desktop.net.client import Client
    from synapse_desktop.net.endpoint import Endpoint
    from synapse_desktop.views.layer_grid import LayerGrid

    events: list[tuple[float, float, float]] = []  # (start, wall, thread cpu) of GUI work
    lags: list[tuple[float, float]] = []  # (when, lag ms) per applied batch

    session = Session()
    grid = LayerGrid(session, size=RENDER_SIZE, spread_ms=16.0)
    apply_grid = grid.apply_pending

    def timed_grid() -> None:
        start, cpu = time.perf_counter(), time.thread_time()
        apply_grid()
        events.append((start, time.perf_counter() - start, time.thread_time() - cpu))

    grid.apply_pending = timed_grid  # type: ignore[method-assign]
    fold_lag = session.counters.lag

    def record_lag(lag_ms: float) -> None:
        lags.append((time.perf_counter(), lag_ms))
        fold_lag(lag_ms)

    session.counters.lag = record_lag  # type: ignore[method-assign]

    class TimedClient(Client):
        def tick(self) -> None:
            start, cpu = time.perf_counter(), time.thread_time()
            super().tick()
            events.append((start, time.perf_counter() - start, time.thread_time() - cpu))

    client = TimedClient(session)
    client.skip_steps = skip
    if not skip:
        client.max_frames = 512  # the client as it was
    client.open(Endpoint("127.0.0.1", port))
    _pump(app, 3.0)
    events.clear()
    lags.clear()
    c = session.counters
    steps0, frames0, gaps0, dropped0 = c.step, c.frames, c.dropped_by_trainer, c.app_dropped
    start = time.perf_counter()
    _pump(app, seconds)
    elapsed = time.perf_counter() - start
    # GUI work per displayed frame: the work that started within each 16 ms frame, summed.
    frames: dict[int, list[float]] = {}
    for began, wall, cpu in events:
        slot = frames.setdefault(int((began - start) / 0.016), [0.0, 0.0])
        slot[0] += wall
        slot[1] += cpu
    busy = [v for v in frames.values() if v[0] > 0.002]
    values = [lag for _, lag in lags]
    third = max(1, len(values) // 3)
    result = {
        "steps/s shown": (c.step - steps0) / elapsed,
        "frames/s read": (c.frames - frames0) / elapsed,
        "work p50 ms": 1000 * _pct([b[0] for b in busy], 50),
        "work p95 ms": 1000 * _pct([b[0] for b in busy], 95),
        "cpu p50 ms": 1000 * _pct([b[1] for b in busy], 50),
        "lag p50 ms": _pct(values, 50),
        "lag p95 ms": _pct(values, 95),
        "lag p50 first third ms": _pct(values[:third], 50),
        "lag p50 last third ms": _pct(values[-third:], 50),
        "trainer dropped": c.dropped_by_trainer - gaps0,
        "app dropped": c.app_dropped - dropped0,
        "steps skipped": c.steps_skipped,
    }
    client.close()
    grid.close()
    return result


def _pump(app, seconds: float) -> None:  # type: ignore[no-untyped-def]
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.001)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per variant")
    parser.add_argument("--ranks", type=int, default=64)
    parser.add_argument("--layers", type=int, default=80)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--only-new", action="store_true", help="skip the baseline (long runs)")
    args = parser.parse_args()

    ctx = mp.get_context("fork")  # before Qt starts: the child never touches Qt
    port = _free_port()
    sim = ctx.Process(target=_serve, args=(port, args.ranks, args.layers, args.fps), daemon=True)
    sim.start()
    from PySide6.QtWidgets import QApplication
    from vispy import app as vispy_app

    vispy_app.use_app("pyside6")
    app = QApplication.instance() or QApplication([])
    time.sleep(1.5)
    print(
        f"job stream: {args.ranks} ranks x {args.layers} layers (3 sites each) at {args.fps:g} "
        f"summaries/s, {args.seconds:g} s per variant"
    )
    results = {}
    variants = [(True, "skipping old steps")]
    if not args.only_new:
        variants.insert(0, (False, "before (no skipping, 512 frames per tick)"))
    for skip, label in variants:
        results[skip] = _follow(app, port, args.seconds, skip)
        print(f"{label}:")
        for key, value in results[skip].items():
            print(f"  {key}: {value:.1f}")
    if not args.only_new:
        old, new = results[False], results[True]
        print(
            f"RATIO lag p95 before/after: {old['lag p95 ms'] / new['lag p95 ms']:.1f}x; "
            f"work p50 before/after: {old['work p50 ms'] / new['work p50 ms']:.2f}x"
        )
    sim.terminate()
    sim.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
