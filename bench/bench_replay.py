"""Replay: opening a long recording and seeking in it, as the app does.

The recording: a ``synapse sim`` run (32 layers x attn/mlp/residual, up to 512 sparse points per
site, attention every tenth step) of ``--steps`` steps (100 000 by default), written by
``RecordingWriter`` (zstd, 1 MiB chunks). Simulating 100 000 steps takes long, so ``--pool``
distinct steps are simulated and written again and again with the header's step, sequence
number and timestamp (100 ms apart) of each step: every step has the frames and bytes of a
simulated one. The file is made once and kept at ``--path`` (``--fresh`` remakes it).

Measured, on the models alone (no Qt; what a seek costs the GUI thread before views refresh):

1. Open: ``RecordingSource`` (summary, chunk index, step index, MODEL_META) and the first seek,
   i.e. the state behind the first picture.
2. Seek: ``Replay.seek`` to ``--seeks`` random steps, for each window length; the baseline, in
   the same run, is reading the frames of that window from the file alone
   (``RecordingSource.window``), so the ratio is what applying them adds.
3. Play: ``Replay.advance`` one step at a time (what 1x..64x playback does per step).

``--gui`` also times it in the app (needs a display): ``MainWindow`` opening the recording
until the 3D view has drawn its first picture, and seeks until the views have drawn.

  python bench/bench_replay.py                   # makes /tmp/synapse-bench-100k.mcap once
  LIBGL_ALWAYS_SOFTWARE=1 xvfb-run -a python bench/bench_replay.py --gui
"""

from __future__ import annotations

import argparse
import random
import statistics
import struct
import sys
import time
from pathlib import Path

_STAMP = struct.Struct("<IQI")  # seq, timestamp_ns, step at header offset 12
T0_NS = 1_700_000_000 * 10**9
STEP_NS = 100_000_000


def make_recording(path: Path, steps: int, layers: int, pool: int) -> None:
    from synapse_native.protocol import HeaderFlag, Hello, Role, TrainingMetrics, encode
    from synapse_native.recording import RecordingWriter
    from synapse_serve.sim.simulator import SimOptions, Simulator, model_meta

    sim = Simulator(SimOptions(port=0, layers=layers))
    steps_frames: list[list[bytes]] = []
    for step in range(pool):
        sim.model.advance(step)
        messages = [TrainingMetrics(sim.model.metrics(step))]
        messages += sim.site_messages(step) + sim.attention.messages(step, sim.model.spike)
        last = len(messages) - 1
        steps_frames.append(
            [
                encode(m, step=step, flags=int(HeaderFlag.END_OF_STEP) if i == last else 0)
                for i, m in enumerate(messages)
            ]
        )
    started = time.perf_counter()
    seq = 0
    tmp = path.with_suffix(".part")
    with RecordingWriter(tmp, metadata={"source": "bench_replay"}) as writer:
        writer.write_frames(
            [
                encode(Hello(Role.TRAINER, "synapse-sim", 0), timestamp_ns=T0_NS),
                encode(model_meta(sim.model), timestamp_ns=T0_NS),
            ]
        )
        for step in range(steps):
            frames = []
            for i, frame in enumerate(steps_frames[step % pool]):
                seq += 1
                head = bytearray(frame[:32])
                _STAMP.pack_into(head, 12, seq, T0_NS + step * STEP_NS + i, step)
                frames.append(bytes(head) + frame[32:])
            writer.write_frames(frames)
            if step % 10_000 == 0:
                print(f"  writing step {step} ({writer.bytes_written / 1e9:.1f} GB)", flush=True)
    tmp.rename(path)
    size = path.stat().st_size
    print(
        f"made {path}: {steps} steps, {size / 1e9:.2f} GB in {time.perf_counter() - started:.0f} s"
    )


def _stats(times: list[float]) -> str:
    ms = sorted(t * 1e3 for t in times)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return f"median {statistics.median(ms):6.1f} ms  p95 {p95:6.1f} ms  max {ms[-1]:6.1f} ms"


def bench_models(path: Path, seeks: int, windows: list[int]) -> None:
    from synapse_desktop.models.session import Session
    from synapse_desktop.net.recording_source import RecordingSource
    from synapse_desktop.net.replay import WINDOW_STEPS, Replay

    started = time.perf_counter()
    source = RecordingSource(path)
    opened = time.perf_counter() - started
    session = Session()
    replay = Replay(session, source)
    replay.seek(source.steps()[0])
    first = time.perf_counter() - started
    steps = source.steps()
    print(
        f"open: {len(steps)} steps; reader ready {opened * 1e3:.0f} ms, "
        f"first state {first * 1e3:.0f} ms"
    )
    rng = random.Random(0)
    targets = [rng.randrange(steps[0], steps[-1] + 1) for _ in range(seeks)]
    for window in windows:
        replay = Replay(session, source, window_steps=window)
        reads, seeks_t = [], []
        for target in targets:
            i = max(0, steps.index(target) - window + 1) if target in steps else 0
            t = time.perf_counter()
            n = sum(1 for _ in source.window(steps[i], target))
            reads.append(time.perf_counter() - t)
            t = time.perf_counter()
            replay.seek(target)
            seeks_t.append(time.perf_counter() - t)
        ratio = statistics.median(seeks_t) / statistics.median(reads)
        mark = "  (the app's window)" if window == WINDOW_STEPS else ""
        print(f"seek, window {window:4d} steps ({n} frames): {_stats(seeks_t)}{mark}")
        print(f"   baseline, reading its frames:     {_stats(reads)}  -> seek/read {ratio:.2f}x")
    replay = Replay(session, source)
    start = targets[0]
    replay.seek(start)
    times = []
    for step in range(start + 1, min(steps[-1], start + 200) + 1):
        t = time.perf_counter()
        replay.advance(step)
        times.append(time.perf_counter() - t)
    print(
        f"play, one step forward:  {_stats(times)}  (-> {1 / statistics.median(times):.0f} steps/s)"
    )
    source.close()


def bench_gui(path: Path, seeks: int) -> None:
    from PySide6.QtCore import QElapsedTimer, QSettings
    from PySide6.QtWidgets import QApplication

    from synapse_desktop.commands.app import qt_application

    app = qt_application()
    from synapse_desktop.qt.main_window import MainWindow

    settings = QSettings(str(path.with_suffix(".ini")), QSettings.Format.IniFormat)
    window = MainWindow(settings)
    window.resize(1280, 800)
    window.show()
    for _ in range(20):
        app.processEvents()
    drawn = []
    window.grid.canvas.events.draw.connect(lambda event: drawn.append(time.perf_counter()))
    clock = QElapsedTimer()
    clock.start()
    started = time.perf_counter()
    window.recordings.open(path)
    while not drawn or drawn[-1] < started:
        QApplication.processEvents()
        if time.perf_counter() - started > 30:
            break
    print(f"gui open: first picture after {(drawn[-1] - started) * 1e3:.0f} ms")
    controller = window.recordings.controller
    steps = controller.timeline.steps
    rng = random.Random(1)
    times = []
    for _ in range(seeks):
        target = rng.randrange(steps[0], steps[-1] + 1)
        mark = len(drawn)
        t = time.perf_counter()
        controller.seek(target)
        window.inspector.refresh()
        window.overview.refresh()
        window.depth_panel.refresh()
        while len(drawn) == mark and time.perf_counter() - t < 5:
            QApplication.processEvents()
        times.append(time.perf_counter() - t)
    print(f"gui seek, until the 3D view drew: {_stats(times)}")
    window.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--pool", type=int, default=50, help="distinct simulated steps")
    parser.add_argument("--path", type=Path, default=Path("/tmp/synapse-bench-100k.mcap"))
    parser.add_argument("--fresh", action="store_true", help="make the recording again")
    parser.add_argument("--seeks", type=int, default=30)
    parser.add_argument("--windows", default="32,64,128,256")
    parser.add_argument("--gui", action="store_true", help="also time it in the app")
    args = parser.parse_args()
    if args.fresh or not args.path.exists():
        make_recording(args.path, args.steps, args.layers, args.pool)
    bench_models(args.path, args.seeks, [int(w) for w in args.windows.split(",")])
    if args.gui:
        bench_gui(args.path, min(args.seeks, 15))
    return 0


if __name__ == "__main__":
    sys.exit(main())
