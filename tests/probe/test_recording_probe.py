"""attach(record=...): the probe records on its encoder thread, alone, even when killed; the
backlog replays the latest frames to a viewer that connects late."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from probe_models import batch, llama_like, lm_loss

import synapse_probe
from synapse_native.client import StreamClient
from synapse_native.protocol import (
    Capability,
    HeaderFlag,
    LayerSummaryBatch,
    ModelMeta,
    MsgType,
    decode_frame,
)
from synapse_native.recording import RecordingWriter, open_recording

HERE = Path(__file__).parent


def _train(model: torch.nn.Module, steps: int, pause_s: float = 0.0) -> None:
    for step in range(steps):
        synapse_probe.log_metrics(step, loss=1.0 / (step + 1))
        with torch.no_grad():
            lm_loss(model, *batch(seed=step))
        time.sleep(pause_s)


def test_a_probe_with_no_viewer_records_every_step_from_its_encoder_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writers: set[str] = set()
    write_frames = RecordingWriter.write_frames

    def spy(self: RecordingWriter, frames: object) -> None:
        writers.add(threading.current_thread().name)
        write_frames(self, frames)  # type: ignore[arg-type]

    monkeypatch.setattr(RecordingWriter, "write_frames", spy)
    path = tmp_path / "exp1.mcap"
    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(
        model, port=0, rate_hz=1000.0, budget=None, record=path, name="tiny-llama"
    )
    try:
        _train(model, 30, pause_s=0.005)  # under the probe's 1 000 measured steps a second
        assert probe._encoder.flush(10)
        during = set(writers)
    finally:
        probe.close()
    assert during == {"synapse-encoder"}  # never the training (main) thread
    with open_recording(path) as rec:
        assert rec.damage is None
        assert rec.metadata["model"] == "tiny-llama"
        frames = [decode_frame(f) for _, f in rec.frames()]
        index = rec.step_index()
    types = [f.header.msg_type for f in frames if f is not None]
    assert types[:3] == [MsgType.HELLO, MsgType.MODEL_META, MsgType.CONTROL_ACK]
    summaries = [f for f in frames if f is not None and isinstance(f.message, LayerSummaryBatch)]
    counters = probe.stats()
    assert counters.snapshots_encoded == len(summaries) >= 10  # every encoded step is recorded
    assert counters.snapshots_encoded + counters.snapshots_dropped == counters.steps_sampled
    assert {f.header.step for f in summaries} <= set(range(30))
    assert set(range(30)) <= set(int(s) for s in index.steps)  # the metrics of every step


_KILLED_TRAINER = """
import sys, torch
sys.path.insert(0, {here!r})
from probe_models import batch, llama_like, lm_loss
import synapse_probe
model = llama_like(n_layers=2)
probe = synapse_probe.attach(model, port=0, rate_hz=1000.0, budget=None, record={path!r})
step = 0
while True:
    synapse_probe.log_metrics(step, loss=1.0 / (step + 1))
    with torch.no_grad():
        lm_loss(model, *batch(seed=step))
    step += 1
    if step == 50:
        print("running", flush=True)
"""


def test_a_run_killed_halfway_leaves_a_recording_that_opens(tmp_path: Path) -> None:
    path = tmp_path / "killed.mcap"
    script = _KILLED_TRAINER.format(here=str(HERE), path=str(path))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "running\n"
        time.sleep(2.5)  # more than the writer's 1 s flush interval
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with open_recording(path) as rec:
        assert rec.damage is not None
        frames = [decode_frame(f) for _, f in rec.frames()]
        assert len(rec.step_index()) >= 50
    assert all(f is not None for f in frames)
    assert isinstance(frames[1].message, ModelMeta)  # type: ignore[union-attr]
    assert sum(isinstance(f.message, LayerSummaryBatch) for f in frames) >= 20  # type: ignore[union-attr]


def test_a_viewer_that_connects_late_gets_the_backlog_first(tmp_path: Path) -> None:
    model = llama_like(n_layers=2)
    probe = synapse_probe.attach(model, port=0, rate_hz=1000.0, budget=None)
    try:
        _train(model, 20)
        assert probe._encoder.flush(10)
        host, port = probe.address
        with StreamClient.connect(host, port) as client:
            assert client.hello.message.capabilities & Capability.BACKLOG  # type: ignore[union-attr]
            got = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                not f.header.flags & HeaderFlag.BACKLOG and f.header.msg_type == MsgType.CONTROL_ACK
                for f in got
            ):
                got += list(client.frames(timeout=0.1))
            _train(model, 3)
            got += list(client.frames(timeout=1.0))
    finally:
        probe.close()
    backlog = [f for f in got if f.header.flags & HeaderFlag.BACKLOG]
    live = [f for f in got if not f.header.flags & HeaderFlag.BACKLOG]
    assert backlog[0].header.msg_type == MsgType.MODEL_META  # the meta in force leads
    assert got[: len(backlog)] == backlog  # then the greeting's own META and ACK, then live
    assert [f.header.msg_type for f in live[:2]] == [MsgType.MODEL_META, MsgType.CONTROL_ACK]
    assert any(isinstance(f.message, LayerSummaryBatch) for f in backlog)
    steps = {f.header.step for f in backlog if f.header.msg_type == MsgType.TRAINING_METRICS}
    assert set(range(20)) <= steps
    assert any(isinstance(f.message, LayerSummaryBatch) and f.header.step >= 20 for f in live)


def test_record_needs_a_server_that_takes_taps(tmp_path: Path) -> None:
    from probe_fakes import FakeServer

    with pytest.raises(ValueError, match="record= needs a server that takes taps"):
        synapse_probe.attach(llama_like(), server=FakeServer(), record=tmp_path / "x.mcap")
