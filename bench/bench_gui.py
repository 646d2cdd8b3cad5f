"""The desktop app's GUI thread at Llama-8B scale, Mesa's frame time, and a flood.

1. Steady: a simulator process streams 32 layers x attn/mlp/residual (attn and residual 4096
   neurons, MLP 14336) at 10 summaries/s with up to 512 sparse points per site. The app's client
   ticks at display rate (16 ms), and the layer grid, as in the app, does its share of a batch
   (points, atlas, tint, uploads) one display frame later; all this GUI-thread work (drain,
   decode, state, visual ``set_data``, but no GL draw: the canvas is not shown) is timed, wall
   and thread CPU time, and summed per displayed frame (from one tick to the next). The
   simulator pushes a step's frames at once, so a tick that applies frames (a busy tick)
   normally applies a whole step; the last line printed is the median and p95 of the frames
   with a step's work (the busy tick's, or the grid's a frame later).
2. Frame time: the same scene rendered by Mesa's software OpenGL (``canvas.render``), with the
   glow (the bloom post-process) off and on.
3. Flood: another process writes frames as fast as loopback takes them. A 10 ms timer measures
   event-loop lag; resident memory is read before and after; drops are counted.

Run under a display, e.g.:
  LIBGL_ALWAYS_SOFTWARE=1 xvfb-run -a python bench/bench_gui.py
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import struct
import sys
import time

import numpy as np

STEADY_S = 12.0
FLOOD_S = 10.0
RENDER_SIZE = (1280, 800)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_sim(port: int, top_k: int) -> None:
    from synapse_serve.sim.simulator import SimOptions, run

    run(SimOptions(port=port, top_k=top_k, announce=False))


def _flood_frames(top_k: int) -> tuple[bytes, list[bytes]]:
    """HELLO + META, and one step's frames (one summary batch, one sparse frame per site)."""
    from synapse_native.protocol import (
        Hello,
        LayerSummaryBatch,
        Role,
        SparseActivations,
        encode,
        summary_records,
    )
    from synapse_serve.sim.simulator import SimOptions, Simulator

    sim = Simulator(SimOptions(port=0, top_k=top_k, announce=False))
    meta = sim.server._meta  # the simulator's site table (not started: nothing listens)
    rng = np.random.default_rng(0)
    records = summary_records(len(meta.sites))
    records["site_id"] = [s.site_id for s in meta.sites]
    records["rms"] = rng.uniform(0.05, 5.0, len(meta.sites))
    frames = [encode(LayerSummaryBatch(records), seq=1, step=1)]
    for site in meta.sites:
        idx = np.sort(rng.choice(site.neurons, top_k, replace=False)).astype(np.uint32)
        values = rng.uniform(0.5, 4.0, top_k).astype(np.float32)
        frames.append(encode(SparseActivations(site.site_id, 0.5, top_k, idx, values), seq=1))
    head = encode(Hello(Role.TRAINER, "flood")) + encode(meta)
    return head, frames


def _serve_flood(port: int, top_k: int, seconds: float) -> None:
    head, frames = _flood_frames(top_k)
    block = bytearray(b"".join(frames))
    offsets = np.cumsum([0] + [len(f) for f in frames[:-1]])
    listener = socket.create_server(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.sendall(head)
    seq, step = 1, 0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            for offset in offsets.tolist():
                struct.pack_into("<IQI", block, offset + 12, seq, time.time_ns(), step)
                seq += 1
            step += 1
            conn.sendall(block)
    except OSError:
        pass
    finally:
        conn.close()
        listener.close()


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _pump(app, seconds: float) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.001)


def _stats(values: list[float]) -> str:
    if not values:
        return "n/a"
    ms = np.array(values) * 1000
    return (
        f"median {np.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms, "
        f"max {ms.max():.2f} ms (n={len(ms)})"
    )


def _frames(events: list[tuple[float, float, float, str]]) -> list[tuple[float, float, bool]]:
    """Per displayed frame (from one client tick to the next): the wall and CPU time of the
    GUI-thread work in it (the tick, and any grid update that started before the next tick),
    and whether some of it was a step's (frames applied, or the grid placing them)."""
    out: list[list[float]] = []
    for _, wall, cpu, kind in sorted(events):
        if kind in ("busy", "idle") or not out:
            out.append([wall, cpu, kind != "idle"])
        else:
            out[-1][0] += wall
            out[-1][1] += cpu
            out[-1][2] = True
    return [(f[0], f[1], bool(f[2])) for f in out]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=STEADY_S)
    parser.add_argument("--flood-seconds", type=float, default=FLOOD_S)
    parser.add_argument("--top-k", type=int, default=512)
    args = parser.parse_args()

    ctx = mp.get_context("fork")  # before Qt starts: the children never touch Qt
    sim_port, flood_port = _free_port(), _free_port()
    sim = ctx.Process(target=_serve_sim, args=(sim_port, args.top_k), daemon=True)
    sim.start()

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from vispy import app as vispy_app

    vispy_app.use_app("pyside6")
    app = QApplication.instance() or QApplication([])
    from synapse_desktop.models.session import Session
    from synapse_desktop.net.client import Client
    from synapse_desktop.net.endpoint import Endpoint
    from synapse_desktop.views.layer_grid import LayerGrid

    FRAME_MS = 16.0  # the app's: views.layer_grid.FRAME_MS (absent from older builds)

    # Every piece of GUI-thread work: (start, wall time, the thread's CPU time, kind). Thread
    # CPU time leaves out the time the thread waited for a core while other processes ran: on
    # a shared machine, the steadier measure of the work.
    events: list[tuple[float, float, float, str]] = []

    class TimedClient(Client):
        def tick(self) -> None:
            frames = self.session.counters.frames
            start, start_cpu = time.perf_counter(), time.thread_time()
            super().tick()
            kind = "busy" if self.session.counters.frames > frames else "idle"
            cpu = time.thread_time() - start_cpu
            events.append((start, time.perf_counter() - start, cpu, kind))

    def make_grid(session: Session) -> LayerGrid:
        """The grid as the app makes it: its share of a step a display frame later, timed."""
        try:
            grid = LayerGrid(session, size=RENDER_SIZE, spread_ms=FRAME_MS)
        except TypeError:  # a build without spreading: the grid works inside the tick
            return LayerGrid(session, size=RENDER_SIZE)
        apply = grid.apply_pending

        def timed_apply() -> None:
            start, start_cpu = time.perf_counter(), time.thread_time()
            apply()
            cpu = time.thread_time() - start_cpu
            events.append((start, time.perf_counter() - start, cpu, "grid"))

        grid.apply_pending = timed_apply  # type: ignore[method-assign]
        return grid

    # 1. Steady state at Llama-8B scale.
    session = Session()
    grid = make_grid(session)
    client = TimedClient(session)
    time.sleep(1.0)  # let the simulator bind
    client.open(Endpoint("127.0.0.1", sim_port))
    _pump(app, 2.0)  # connect, meta, first steps
    events.clear()
    frames0 = session.counters.frames
    _pump(app, args.seconds)
    print(
        f"steady: {len(session.topology)} sites, {session.sparse.total} points held, "
        f"{(session.counters.frames - frames0) / args.seconds:.0f} frames/s, "
        f"step {session.counters.step}"
    )
    frames = _frames(events)
    busy = [f for f in frames if f[2]]
    print(f"  GUI work per displayed frame (all frames): {_stats([f[0] for f in frames])}")
    for kind, label in (("busy", "ticks that applied frames"), ("grid", "grid updates")):
        chosen = [e for e in events if e[3] == kind]
        if chosen:
            print(f"  {label}: {_stats([e[1] for e in chosen])}")
            print(f"    thread CPU time: {_stats([e[2] for e in chosen])}")
    print(f"  frames with a step's work: {_stats([f[0] for f in busy])}")
    print(f"    thread CPU time: {_stats([f[1] for f in busy])}")
    wall = np.array([f[0] for f in busy] or [np.nan]) * 1000
    cpu = np.array([f[1] for f in busy] or [np.nan]) * 1000
    headline = (
        f"BUSY-FRAME COST (GUI thread, frames with a step's work, n={len(busy)}): "
        f"median {np.median(wall):.2f} ms, p95 {np.percentile(wall, 95):.2f} ms "
        f"(thread CPU time: median {np.median(cpu):.2f} ms, p95 {np.percentile(cpu, 95):.2f} ms)"
    )
    print(
        f"  dropped: trainer {session.counters.dropped_by_trainer}, "
        f"app {session.counters.app_dropped}; lag {session.counters.lag_ms:.1f} ms"
    )

    # 2. Frame time with Mesa (the whole scene at RENDER_SIZE), glow (the bloom) off and on,
    # interleaved so that both see the same load.
    renders: dict[bool, list[float]] = {False: [], True: []}
    for glow in (False, True):
        session.view.set(glow=glow)
        grid.canvas.render()
    for _ in range(10):
        for glow in (False, True):
            session.view.set(glow=glow)
            start = time.perf_counter()
            grid.canvas.render()
            renders[glow].append(time.perf_counter() - start)
    size = f"{RENDER_SIZE[0]}x{RENDER_SIZE[1]}"
    for glow in (False, True):
        label = "on (bloom)" if glow else "off"
        print(f"frame time {size} (canvas.render, Mesa), glow {label}: {_stats(renders[glow])}")
    client.close()
    sim.terminate()
    sim.join()

    # 3. Flood.
    flood = ctx.Process(
        target=_serve_flood, args=(flood_port, args.top_k, args.flood_seconds + 3), daemon=True
    )
    flood.start()
    session = Session()
    grid2 = make_grid(session)
    client = TimedClient(session)
    time.sleep(0.5)
    rss0 = _rss_mb()
    client.open(Endpoint("127.0.0.1", flood_port))
    lags: list[float] = []
    last = [time.perf_counter()]

    def beat() -> None:
        now = time.perf_counter()
        lags.append(max(0.0, now - last[0] - 0.010))
        last[0] = now

    timer = QTimer(interval=10)
    timer.timeout.connect(beat)
    timer.start()
    _pump(app, 2.0)
    rss_warm = _rss_mb()
    lags.clear()
    events.clear()
    frames0, bytes0 = session.counters.frames, session.counters.bytes
    _pump(app, args.flood_seconds)
    timer.stop()
    rss_end = _rss_mb()
    c = session.counters
    print(
        f"flood: {(c.frames - frames0) / args.flood_seconds:.0f} frames/s read, "
        f"{(c.bytes - bytes0) / args.flood_seconds / 1e6:.0f} MB/s, step {c.step}"
    )
    print(f"  event-loop lag: {_stats(lags)}")
    flood_frames = [f[0] for f in _frames(events) if f[2]]
    print(f"  GUI work per displayed frame with frames to apply: {_stats(flood_frames)}")
    print(f"  memory: {rss0:.0f} MB before, {rss_warm:.0f} MB warm, {rss_end:.0f} MB after")
    print(f"  dropped: trainer (seq gaps) {c.dropped_by_trainer}, app {c.app_dropped}")
    client.close()
    flood.terminate()
    flood.join()
    grid.close()
    grid2.close()
    print(headline)
    return 0


if __name__ == "__main__":
    # Exits through the interpreter's normal teardown. (It used to abort there, "Fatal Python
    # error: none_dealloc", after tens of thousands of PySide6 calls on Python 3.11; importing
    # synapse_desktop now guards against that wheel bug: see synapse_desktop/_singletons.py.)
    sys.exit(main())
