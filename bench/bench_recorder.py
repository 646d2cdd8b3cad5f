"""The recorder against ``synapse sim``: does it keep up, what it costs, how big an hour is.

1. Flood: ``synapse sim`` (32 layers, every site) at its fastest (``--fps 1000``; the simulator
   itself is the limit) in its own process; this process records it with ``synapse record``'s
   code for ``--flood-seconds`` while a plain reader process (reads and decodes, writes
   nothing) is connected to the same simulator: the baseline of the same run. Prints frames
   recorded against frames the reader got, frames lost (seq gaps: the trainer dropped them for
   the recorder), MB/s written and received, and CPU seconds of this process per MB written.
2. Capacity: the writer alone, the flood's frames from memory into a new file: how far above
   the simulator's rate the recorder could go.
3. Size: ``synapse sim`` at its defaults (10 steps/s, 32 layers) recorded by two recorders at
   once, one at the defaults and one with ``--sparse-hz 1``, for ``--size-seconds``; the size
   of one hour is extrapolated from the bytes written over the span of log time recorded.

Run: ``python bench/bench_recorder.py`` (about two minutes).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _reader import read_frames  # bench/ is on the path of a script run from it

from synapse_desktop.commands.record import record
from synapse_desktop.net.endpoint import Endpoint
from synapse_native.recording import RecordingWriter, open_recording


def _sim(port: int, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "synapse_desktop", "sim", "--port", str(port), *extra]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def flood(port: int, seconds: float, directory: Path) -> None:
    sim = _sim(port, "--fps", "1000")
    spawn = multiprocessing.get_context("spawn")
    stop, baseline = spawn.Event(), spawn.Value("q", 0)
    try:
        time.sleep(2.0)
        reader = spawn.Process(target=read_frames, args=("127.0.0.1", port, stop, baseline))
        reader.start()
        time.sleep(1.0)
        counts = [baseline.value]
        sample = threading.Timer(seconds, lambda: counts.append(baseline.value))
        sample.start()  # the reader's count over the recorder's window
        figures = record(
            [Endpoint("127.0.0.1", port)],
            str(directory / "flood.mcap"),
            duration=seconds,
            log=io.StringIO(),
            quiet=True,
        )
        sample.join()
        read = counts[1] - counts[0]
    finally:
        stop.set()
        sim.terminate()
        sim.wait(10)
    reader.join(10)
    raw = live = 0
    seqs: set[int] = set()
    with open_recording(directory / "flood.mcap") as rec:
        for _, frame in rec.frames():
            raw += len(frame)
            live += not frame[30] & 2  # not replayed from the backlog on connect
            seqs.add(int.from_bytes(frame[12:16], "little"))
        span = ((rec.end_ns or 0) - (rec.start_ns or 0)) / 1e9
    seqs.discard(0)  # frames addressed to this client only
    broadcast = max(seqs) - min(seqs) + 1  # what the simulator sent from the first to the last
    written = figures["bytes"] / 1e6
    print(f"flood: synapse sim --fps 1000 (32 layers), {figures['seconds']:.1f} s")
    print(
        f"  recorder: {int(figures['frames_received'])} frames received, "
        f"{int(figures['frames_lost'])} lost (seq gaps), {int(figures['frames_written'])} written; "
        f"{int(figures['frames_received']) - live} of them the probe's backlog"
    )
    print(
        f"  recorded {len(seqs)} of the {broadcast} frames the simulator broadcast from the "
        f"first recorded to the last (seq): {len(seqs) / broadcast:.4f}; plain reader (baseline, "
        f"same run, same {seconds:.0f} s): {read} frames, recorder/reader "
        f"{figures['frames_received'] / max(read, 1):.3f} (the recorder's count includes the "
        f"backlog it got on connecting, the reader's the live frames its connection missed)"
    )
    print(
        f"  {raw / 1e6 / figures['seconds']:.1f} MB/s of frames in, {figures['mb_per_s']:.2f} MB/s "
        f"written (zstd: {raw / max(figures['bytes'], 1):.1f}x), "
        f"{figures['cpu_s_per_mb'] * 1e3:.0f} ms CPU per MB written "
        f"({figures['cpu_s_per_mb'] * figures['bytes'] / 1e6 / figures['seconds']:.0%} of a core); "
        f"{written:.1f} MB over {span:.1f} s of log time"
    )


def capacity(directory: Path) -> None:
    """How fast the writer alone goes: the flood's frames, from memory, into a new file."""
    with open_recording(directory / "flood.mcap") as rec:
        frames = [frame for _, frame in rec.frames()]
    raw = sum(map(len, frames)) / 1e6
    wall, cpu = time.perf_counter(), time.process_time()
    with RecordingWriter(directory / "capacity.mcap") as writer:
        for i in range(0, len(frames), 512):
            writer.write_frames(frames[i : i + 512])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"capacity: the writer alone, {len(frames)} of those frames from memory: "
        f"{raw / wall:.0f} MB/s of frames in ({len(frames) / wall:.0f} frames/s), "
        f"{cpu / (writer.bytes_written / 1e6) * 1e3:.0f} ms CPU per MB written"
    )


def size(port: int, seconds: float, directory: Path) -> None:
    stop = threading.Event()
    results: dict[str, dict[str, float]] = {}

    def recorder(name: str, sparse_hz: float | None) -> None:
        results[name] = record(
            [Endpoint("127.0.0.1", port)],
            str(directory / f"{name}.mcap"),
            sparse_hz=sparse_hz,
            stop=stop,
            log=io.StringIO(),
            quiet=True,
        )

    threads = [
        threading.Thread(target=recorder, args=("defaults", None)),
        threading.Thread(target=recorder, args=("sparse-hz-1", 1.0)),
    ]
    for thread in threads:
        thread.start()  # they connect (retrying) as soon as the simulator listens
    sim = _sim(port)
    try:
        time.sleep(seconds)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        sim.terminate()
        sim.wait(10)
    print(f"size: synapse sim at its defaults (10 steps/s, 32 layers), {seconds:.0f} s recorded")
    for name, figures in sorted(results.items()):
        with open_recording(directory / f"{name}.mcap") as rec:
            span = ((rec.end_ns or 0) - (rec.start_ns or 0)) / 1e9
            steps = len(rec.step_index())
        per_hour = figures["bytes"] / max(span, 1e-9) * 3600 / 1e9
        at_ten = figures["bytes"] / max(steps, 1) * 10 * 3600 / 1e9
        print(
            f"  {name:<12} {figures['bytes'] / 1e6:7.1f} MB, {steps} steps over {span:5.1f} s of "
            f"log time ({steps / max(span, 1e-9):.1f} steps/s) -> {per_hour:.2f} GB per hour as "
            f"run, {at_ten:.2f} GB per hour at 10 steps/s (extrapolated); "
            f"{int(figures['frames_lost'])} lost"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9710)
    parser.add_argument("--flood-seconds", type=float, default=20.0)
    parser.add_argument("--size-seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="synapse-bench-rec-") as tmp:
        flood(args.port, args.flood_seconds, Path(tmp))
        capacity(Path(tmp))
        size(args.port + 1, args.size_seconds, Path(tmp))


if __name__ == "__main__":
    main()
