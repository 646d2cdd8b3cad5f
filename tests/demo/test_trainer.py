"""``python -m synapse_probe.demo`` and ``synapse demo --no-gui`` as processes: what they stream,
print and return."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from synapse_desktop.commands import demo as demo_command
from synapse_native.client import ConnectionClosed, StreamClient
from synapse_native.protocol import Frame, MsgType
from synapse_probe.demo import train

from .conftest import TRAINER_ENV

TIMEOUT = 60.0
TINY = ["--preset", "tiny", "--port", "0", "--log-every", "1"]


def trainer(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "synapse_probe.demo", *TINY, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=TRAINER_ENV,
    )


def listening_port(process: subprocess.Popen[str]) -> int:
    """The port from the trainer's first stdout line."""
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(train.LISTENING):
        assert process.stderr is not None
        pytest.fail(f"no listening line: {line!r} {process.stderr.read()}")
    return int(line.rsplit(":", 1)[1])


def finish(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Wait for the exit; the rest of stdout and stderr (read through the same buffers as
    ``listening_port``, which ``communicate`` would bypass)."""
    process.wait(TIMEOUT)
    assert process.stdout is not None and process.stderr is not None
    return process.stdout.read(), process.stderr.read()


def frames_until_closed(client: StreamClient) -> list[Frame]:
    """Every frame until the trainer closes the stream (a silent trainer fails the test)."""
    frames = []
    while True:
        try:
            frame = client.next_frame(TIMEOUT)
        except ConnectionClosed:
            return frames
        assert frame is not None, "the trainer went silent without closing the stream"
        frames.append(frame)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=TIMEOUT)


def test_the_app_and_the_trainer_agree_on_the_listening_line() -> None:
    assert demo_command.LISTENING == train.LISTENING


def test_a_short_run_streams_meta_summaries_and_metrics_then_exits_0(processes) -> None:  # type: ignore[no-untyped-def]
    process = trainer("--steps", "5", "--wait-for-viewer", str(TIMEOUT))
    processes.append(process)
    port = listening_port(process)
    with StreamClient.connect("127.0.0.1", port, timeout=TIMEOUT) as client:
        meta = client.wait_for(MsgType.MODEL_META, TIMEOUT)
        assert meta.message.model_name == "demo-llama" and meta.message.n_layers == 8
        assert [s.name for s in meta.message.sites[:3]] == [
            "model.layers.0.self_attn",
            "model.layers.0.mlp",
            "model.layers.0",
        ]
        frames = frames_until_closed(client)
    seen = {int(frame.header.msg_type) for frame in frames}
    metrics = [f for f in frames if f.header.msg_type == MsgType.TRAINING_METRICS]
    out, err = finish(process)
    assert process.returncode == 0, err
    assert MsgType.LAYER_SUMMARY_BATCH in seen and MsgType.BLOCK_GRAD_NORMS in seen
    assert MsgType.OPTIMIZER_STATS in seen  # the demo attaches its AdamW (the optimizer lens)
    assert [f.header.step for f in metrics] == [1, 2, 3, 4, 5]  # every step, numbered 1..
    assert all(set(f.message.values) == {"loss", "lr", "grad_norm"} for f in metrics)
    assert 4.0 < metrics[0].message.values["loss"] < 6.5  # about ln(256) at first
    assert "step      5  loss" in out and "stopped after 5 steps (done); probe closed" in out
    assert f"synapse app --connect 127.0.0.1:{port}" in out


def test_sigint_finishes_the_step_closes_the_probe_and_exits_0(processes) -> None:  # type: ignore[no-untyped-def]
    process = trainer("--steps", "0", "--wait-for-viewer", str(TIMEOUT))
    processes.append(process)
    port = listening_port(process)
    with StreamClient.connect("127.0.0.1", port, timeout=TIMEOUT) as client:
        client.wait_for(MsgType.LAYER_SUMMARY_BATCH, TIMEOUT)  # training is under way
        process.send_signal(signal.SIGINT)
        frames_until_closed(client)
    out, err = finish(process)
    assert process.returncode == 0, err
    assert "(SIGINT); probe closed" in out and "Traceback" not in err


def test_a_port_in_use_is_named_and_exits_2(processes) -> None:  # type: ignore[no-untyped-def]
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        process = trainer("--port", str(port))
        processes.append(process)
        out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in err and "--port" in err
    assert train.LISTENING not in out and "Traceback" not in err


def synapse_demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "synapse_desktop", "demo", "--no-gui", "--preset", "tiny", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=TRAINER_ENV,
    )


def test_synapse_demo_no_gui_runs_the_trainer_and_passes_its_exit_code(processes) -> None:  # type: ignore[no-untyped-def]
    process = synapse_demo("--steps", "3", "--port", "0")
    processes.append(process)
    out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 0, err
    assert out.startswith(train.LISTENING)
    assert "stopped after 3 steps (done)" in out


def test_synapse_demo_no_gui_forwards_ctrl_c(processes) -> None:  # type: ignore[no-untyped-def]
    process = synapse_demo("--steps", "0", "--port", "0")
    processes.append(process)
    listening_port(process)
    process.send_signal(signal.SIGINT)  # to `synapse demo` alone: the trainer has its own session
    out, err = finish(process)
    assert process.returncode == 0, err
    assert "(SIGINT); probe closed" in out


def test_synapse_demo_no_gui_passes_a_failure_on(processes) -> None:  # type: ignore[no-untyped-def]
    with socket.create_server(("127.0.0.1", 0)) as holder:
        process = synapse_demo("--port", str(holder.getsockname()[1]))
        processes.append(process)
        _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 2 and "is in use" in err


def test_the_trainer_stops_when_the_process_that_started_it_dies(processes) -> None:  # type: ignore[no-untyped-def]
    # A stand-in for the app: starts the trainer on its own stdout, prints its pid, sleeps.
    parent = (
        "import os, subprocess, sys, time\n"
        "subprocess.Popen(sys.argv[1:] + ['--parent-pid', str(os.getpid())])\n"
        "time.sleep(600)\n"
    )
    command = [sys.executable, "-m", "synapse_probe.demo", *TINY, "--steps", "0"]
    process = subprocess.Popen(
        [sys.executable, "-c", parent, *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=TRAINER_ENV,
    )
    processes.append(process)
    listening_port(process)  # the trainer's line, through the pipe it shares with its parent
    process.kill()
    assert process.stdout is not None
    rest = process.stdout.read()  # up to EOF: the trainer has exited and closed its end
    assert "is gone); probe closed" in rest


def test_synapse_demo_hands_its_model_options_to_the_trainer() -> None:
    app_parser = argparse.ArgumentParser()
    demo_command.add_arguments(app_parser)
    argv = demo_command.trainer_command(
        app_parser.parse_args(["--moe", "4", "--moe-capacity", "1.5", "--inject", "lr@300"])
    )
    assert argv[1:3] == ["-m", "synapse_probe.demo"]
    options = train.build_parser().parse_args(argv[3:])
    assert (options.moe, options.moe_capacity, options.preset) == (4, 1.5, "demo")
    assert [(f.kind, f.step) for f in options.inject] == [("lr", 300)]
