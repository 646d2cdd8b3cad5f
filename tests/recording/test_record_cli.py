"""``synapse record``: headless recording of a live probe (the simulator), thinning, Ctrl-C."""

from __future__ import annotations

import io
import itertools
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from synapse_desktop.commands.record import record
from synapse_desktop.net.endpoint import Endpoint
from synapse_native.protocol import HeaderFlag, MsgType, decode_frame
from synapse_native.recording import open_recording
from synapse_serve.sim import SimOptions, Simulator


def _sim(**options: object) -> tuple[Simulator, threading.Thread, threading.Event]:
    sim = Simulator(SimOptions(port=0, announce=False, layers=4, **options))  # type: ignore[arg-type]
    sim.start()
    stop = threading.Event()
    thread = threading.Thread(target=sim.run, args=(stop,), daemon=True)
    thread.start()
    return sim, thread, stop


def test_a_recording_of_the_simulator_holds_every_frame_it_sent(tmp_path: Path) -> None:
    sim, thread, stop = _sim(fps=50.0)
    path = tmp_path / "sim.mcap"
    log = io.StringIO()
    try:
        time.sleep(0.5)  # steps before the recorder connects: they come as the backlog
        figures = record([Endpoint(*sim.server.address)], str(path), duration=2.0, log=log)
    finally:
        stop.set()
        thread.join(5)
        sim.close()
    assert figures["frames_lost"] == 0 and figures["frames_written"] > 100
    assert f"{path}: " in log.getvalue() and "MB/s" in log.getvalue()
    with open_recording(path) as rec:
        assert rec.damage is None
        assert rec.metadata["model"].startswith("Llama-3-8B")
        assert rec.metadata["source"] == "synapse record"
        frames = [decode_frame(f) for _, f in rec.frames()]
    assert [f.header.msg_type for f in frames[:2] if f] == [MsgType.MODEL_META, MsgType.CONTROL_ACK]
    assert any(f.header.msg_type == MsgType.HELLO for f in frames if f)
    seqs = sorted(f.header.seq for f in frames if f is not None and f.header.seq)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # nothing missing, nothing twice
    backlog = [f for f in frames if f is not None and f.header.flags & HeaderFlag.BACKLOG]
    assert backlog and backlog[0].header.msg_type == MsgType.MODEL_META


def test_sparse_hz_keeps_the_sparse_frames_of_one_step_a_second(tmp_path: Path) -> None:
    sim, thread, stop = _sim(fps=20.0)
    path = tmp_path / "thin.mcap"
    try:
        figures = record(
            [Endpoint(*sim.server.address)],
            str(path),
            duration=3.0,
            sparse_hz=1.0,
            log=io.StringIO(),
        )
    finally:
        stop.set()
        thread.join(5)
        sim.close()
    assert figures["frames_thinned"] > 0
    with open_recording(path) as rec:
        frames = [decode_frame(f) for _, f in rec.frames()]
    sparse_steps = sorted(
        {f.header.step for f in frames if f and f.header.msg_type == MsgType.SPARSE_ACTIVATIONS}
    )
    summary_steps = {
        f.header.step for f in frames if f and f.header.msg_type == MsgType.LAYER_SUMMARY_BATCH
    }
    assert len(summary_steps) >= 30  # summaries all kept
    assert 2 <= len(sparse_steps) <= 5  # about one step a second out of twenty
    times = {f.header.step: f.header.timestamp_ns for f in frames if f}
    gaps = [times[b] - times[a] for a, b in itertools.pairwise(sparse_steps)]
    assert all(g >= 0.95e9 for g in gaps)


def test_ctrl_c_closes_the_file_cleanly(tmp_path: Path) -> None:
    sim, thread, stop = _sim(fps=20.0)
    path = tmp_path / "cli.mcap"
    host, port = sim.server.address
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "synapse_desktop", "record", f"{host}:{port}", "-o", str(path)],
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(3.0)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=20)
    finally:
        stop.set()
        thread.join(5)
        sim.close()
    assert child.returncode == 0, err
    assert f"synapse record: {path}: " in err and "0 lost" in err
    with open_recording(path) as rec:
        assert rec.damage is None and rec.frame_count


def test_a_reconnect_s_backlog_is_recorded_once_and_seq_gaps_count_as_lost() -> None:
    from synapse_desktop.commands.record import Tally
    from synapse_native.protocol import TrainingMetrics, encode

    def frame(seq: int, *, backlog: bool = False) -> bytes:
        flags = int(HeaderFlag.BACKLOG) if backlog else 0
        message = TrainingMetrics({"loss": 1.0})
        return encode(message, seq=seq, step=seq, timestamp_ns=1000 + seq, flags=flags)

    tally = Tally()
    assert all(tally.admit(frame(s)) for s in range(1, 11))
    # The connection drops; on reconnecting, the probe replays its backlog (5..10 already kept).
    replay = [tally.admit(frame(s, backlog=True)) for s in range(5, 13)]
    assert replay == [False] * 6 + [True, True]  # 11 and 12 were missed while reconnecting
    assert tally.admit(frame(13)) and tally.admit(frame(16))
    assert tally.lost == 2 and tally.ranks[0].duplicates == 6
