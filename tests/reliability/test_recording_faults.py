"""Recording under faults: ``synapse record`` killed mid-run, a disk that fills under it, and
the probe's own recording (``attach(record=...)``) failing while the model trains.

A recording cut short opens up to its last whole chunk, says what was lost, and every frame in
it is whole; the frames kept are a gapless run (a prefix of what the probe sent, never holes).
A write that fails stops the recording with one clear line; it never hangs the recorder and
never stalls training.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from synapse_native.protocol import HEADER_SIZE, HeaderFlag, MsgType, decode_frame
from synapse_native.recording import RecordingWriter, open_recording
from synapse_serve.sim import SimOptions, Simulator

PROBE_TESTS = Path(__file__).parents[1] / "probe"
LIMIT = 2 << 20  # RLIMIT_FSIZE of the "full disk"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    simulator = Simulator(SimOptions(port=0, announce=False, layers=16, fps=50.0))
    simulator.start()
    stop = threading.Event()
    thread = threading.Thread(target=simulator.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield simulator
    finally:
        stop.set()
        thread.join(5)
        simulator.close()


def _record_cli(sim: Simulator, path: Path, **popen: object) -> subprocess.Popen[str]:
    host, port = sim.server.address
    command = [sys.executable, "-m", "synapse_desktop", "record", f"{host}:{port}", "-o", str(path)]
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, **popen)  # type: ignore[call-overload, no-any-return]


def _whole_gapless_frames(path: Path) -> tuple[str, list[bytes]]:
    """(damage, frames) of a cut recording, asserting every frame whole and no seq missing."""
    with open_recording(path) as rec:
        damage = rec.damage
        frames = [f for _, f in rec.frames()]
        assert rec.check() == rec.problems  # reading every chunk finds nothing new to say
    assert damage is not None
    for frame in frames:
        assert len(frame) == HEADER_SIZE + int.from_bytes(frame[8:12], "little")
        assert decode_frame(frame) is not None
    live = [int.from_bytes(f[12:16], "little") for f in frames if not f[30] & HeaderFlag.BACKLOG]
    live = [s for s in live if s]
    assert live, "no whole chunk in the file"
    assert len(set(live)) == len(live)  # nothing twice
    # With the backlog replayed on connect: a run from the first frame on, the cut losing only
    # the end. (A frame the probe dropped for a recorder that fell behind, on a loaded machine,
    # is a counted seq gap: `synapse record`'s "lost"; a few may show.)
    seqs = sorted({int.from_bytes(f[12:16], "little") for f in frames} - {0})
    assert len(seqs) >= 0.99 * (seqs[-1] - seqs[0] + 1)
    return damage, frames


def test_synapse_record_killed_mid_run_leaves_a_gapless_run_of_whole_frames(
    sim: Simulator, tmp_path: Path
) -> None:
    path = tmp_path / "killed.mcap"
    child = _record_cli(sim, path)
    try:
        assert child.stderr is not None and "recording" in child.stderr.readline()
        time.sleep(2.5)  # past the writer's 1 s flush interval, in the middle of a chunk
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=10)
    damage, frames = _whole_gapless_frames(path)
    assert "not closed" in damage or "file ends at byte" in damage
    types = [int.from_bytes(f[6:8], "little") for f in frames]
    assert types[0] == MsgType.MODEL_META and MsgType.HELLO in types
    steps = sorted({int.from_bytes(f[24:28], "little") for f in frames})
    assert len(steps) >= 25  # at least the first second at 50 steps a second
    assert steps == list(range(steps[0], steps[0] + len(steps)))  # every step, up to the cut


def _full_disk() -> None:
    """In the child: files stop growing at LIMIT bytes; a write past it fails with EFBIG."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def test_synapse_record_on_a_full_disk_stops_with_one_line_naming_the_file(
    sim: Simulator, tmp_path: Path
) -> None:
    path = tmp_path / "full.mcap"
    started = time.monotonic()
    child = _record_cli(sim, path, preexec_fn=_full_disk)
    try:
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 1
    assert time.monotonic() - started < 15
    assert "Traceback" not in err, err
    assert err.splitlines()[-1] == f"synapse record: cannot write {path}: File too large"
    assert path.stat().st_size <= LIMIT
    damage, frames = _whole_gapless_frames(path)
    assert "file ends at byte" in damage and len(frames) > 100


# -- the probe's own recording ----------------------------------------------------------------


def _tiny_probe(path: Path) -> tuple[object, object, object]:
    sys.path.insert(0, str(PROBE_TESTS))
    from probe_models import batch, llama_like, lm_loss

    import synapse_probe

    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(model, port=0, rate_hz=1000.0, budget=None, record=path)
    return model, probe, lambda step: lm_loss(model, *batch(seed=step))


def test_a_probe_whose_recording_fails_trains_on_logs_once_and_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import torch

    import synapse_probe

    calls = 0
    write_frames = RecordingWriter.write_frames

    def filling_disk(self: RecordingWriter, frames: object) -> None:
        nonlocal calls
        calls += 1
        if calls > 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write_frames(self, frames)  # type: ignore[arg-type]

    monkeypatch.setattr(RecordingWriter, "write_frames", filling_disk)
    path = tmp_path / "failing.mcap"
    _, probe, step = _tiny_probe(path)
    slowest = 0.0
    with caplog.at_level(logging.INFO, logger="synapse_probe.recorder"):
        try:
            for i in range(60):
                began = time.perf_counter()
                synapse_probe.log_metrics(i, loss=1.0)
                with torch.no_grad():
                    step(i)  # type: ignore[operator]
                if i >= 5:  # past the first steps' warm-up
                    slowest = max(slowest, time.perf_counter() - began)
                time.sleep(0.002)
            assert probe._encoder.flush(10)  # type: ignore[attr-defined]
            counters = probe.stats()  # type: ignore[attr-defined]
        finally:
            closing = time.monotonic()
            probe.close()  # type: ignore[attr-defined]
            closed_in = time.monotonic() - closing
    stopped = [r for r in caplog.records if "stopped" in r.getMessage()]
    assert len(stopped) == 1 and stopped[0].levelno == logging.ERROR
    assert "No space left on device" in stopped[0].getMessage()
    assert str(path) in stopped[0].getMessage()
    assert not [r for r in caplog.records if "not closed cleanly" in r.getMessage()]
    assert counters.steps_seen >= 59 and counters.frames_not_recorded > 0
    assert slowest < 1.0 and closed_in < 2.0  # the failing write is never the step's


_TRAINER_ON_A_FULL_DISK = """
import sys, time, torch
sys.path.insert(0, {tests!r})
from probe_models import batch, llama_like, lm_loss
import synapse_probe
model = llama_like(n_layers=2)
probe = synapse_probe.attach(model, port=0, rate_hz=1000.0, budget=None, record={path!r})
slowest = 0.0
started = time.monotonic()
step = failed_at = 0
while (not failed_at or step < failed_at + 20) and time.monotonic() - started < 60:
    if not failed_at and probe.stats().frames_not_recorded:
        failed_at = step
    began = time.perf_counter()
    synapse_probe.log_metrics(step, loss=1.0)
    with torch.no_grad():
        lm_loss(model, *batch(b=8, t=64, seed=step))
    if step >= 5:  # past the first steps' warm-up
        slowest = max(slowest, time.perf_counter() - began)
    step += 1
    time.sleep(0.02)  # at most ~50 steps a second: the first chunks fit under the limit
probe.close()
print(failed_at, slowest, probe.stats().frames_not_recorded, flush=True)
"""


def test_a_probe_recording_past_rlimit_fsize_trains_on_and_keeps_a_file_that_opens(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rlimit.mcap"
    limit = 128 << 10  # a few seconds of this run's frames, a few chunks

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    script = _TRAINER_ON_A_FULL_DISK.format(tests=str(PROBE_TESTS), path=str(path))
    child = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=90,
        preexec_fn=small_disk,
    )
    assert child.returncode == 0, child.stderr
    failed_at, slowest, not_recorded = child.stdout.split()
    assert int(failed_at) > 5 and int(not_recorded) > 0
    assert float(slowest) < 1.0  # the failing write is the encoder thread's, never the step's
    stopped = [line for line in child.stderr.splitlines() if "recording to" in line]
    assert len(stopped) == 1 and "File too large" in stopped[0], child.stderr
    assert path.stat().st_size <= limit
    _, frames = _whole_gapless_frames(path)
    assert int.from_bytes(frames[0][6:8], "little") == MsgType.HELLO
