"""``synapse sim`` and ``synapse tail`` from the command line."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from synapse_desktop import cli
from synapse_desktop.commands.tail import describe, parse_address
from synapse_native.protocol import (
    AttentionPattern,
    HeadStats,
    Message,
    MoeRouting,
    ResidualTokens,
    decode_frame,
    encode,
)
from synapse_serve.sim import SimOptions, Simulator

TIMEOUT = 30.0


def test_tail_prints_one_line_per_frame(capsys: pytest.CaptureFixture[str]) -> None:
    simulator = Simulator(SimOptions(port=0, layers=2, announce=False, fps=50.0))
    host, port = simulator.start()
    stop = threading.Event()
    runner = threading.Thread(target=simulator.run, args=(stop,))
    runner.start()
    try:
        assert cli.main(["tail", f"{host}:{port}", "--count", "12"]) == 0
    finally:
        stop.set()
        runner.join(TIMEOUT)
        simulator.close()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 12
    assert lines[0].startswith("HELLO") and "synapse-sim" in lines[0]
    assert lines[1].startswith("MODEL_META") and "sites=6" in lines[1]
    assert lines[2].startswith("CONTROL_ACK") and "applied" in lines[2]
    kinds = {line.split()[0] for line in lines}
    assert {"LAYER_SUMMARY_BATCH", "BLOCK_GRAD_NORMS", "SPARSE_ACTIVATIONS"} <= kinds
    norms = next(line for line in lines if line.startswith("BLOCK_GRAD_NORMS"))
    assert re.search(r"layers=2 norm=[\d.e+-]+\.\.[\d.e+-]+ nan=0", norms)
    assert all(re.search(r"step=\d+ +seq=\d+ +lag= *-?[\d.]+ms", line) for line in lines)


def test_tail_reports_an_unreachable_probe(capsys: pytest.CaptureFixture[str]) -> None:
    with socket_port() as port:
        assert cli.main(["tail", f"127.0.0.1:{port}", "--timeout", "2"]) == 1
    assert "cannot read" in capsys.readouterr().err


def _line(message: Message) -> str:
    frame = decode_frame(encode(message, step=12, seq=3))
    assert frame is not None
    return describe(frame, frame.header.timestamp_ns)


def test_tail_summarises_attention_frames() -> None:
    weights = np.zeros((64, 128, 128))
    layers = np.arange(64) // 16
    line = _line(AttentionPattern(("tok",) * 128, layers, np.arange(64) % 16, weights, 5))
    assert line.startswith("ATTENTION") and "step=12" in line
    assert line.endswith("64 pairs x 128 tokens, layers 0-3, row 5")


def test_tail_summarises_head_stats_with_the_finite_range() -> None:
    entropy = np.linspace(1.2, 3.4, 64).reshape(8, 8)
    entropy[0, 0] = np.nan  # a NaN head does not hide the range of the others
    max_logit = np.full((8, 8), 2.0)
    max_logit[3, 5] = 9.1
    line = _line(HeadStats(np.arange(8), entropy, max_logit, 128))
    assert line.startswith("HEAD_STATS")
    assert line.endswith("8 layers x 8 heads, entropy 1.2-3.4 nats, max logit 9.1")


def test_tail_summarises_residual_norms() -> None:
    norms = np.ones((8, 128))
    norms[:, 0] = 40.0
    line = _line(ResidualTokens(np.arange(8), norms))
    assert line.startswith("RESIDUAL") and line.endswith("8 layers x 128 tokens, norm 1-40")


def test_tail_summarises_routing_balance_drops_and_idle_experts() -> None:
    balanced = np.full((8, 8), 64)
    line = _line(MoeRouting(np.arange(8), balanced, np.full((8, 8), 0.125), np.zeros(8, int), 2))
    assert line.endswith("8 layers x 8 experts, top-2, max CV 0.00, dropped 0")
    skewed = balanced.copy()
    skewed[2] = [128, 64, 64, 64, 64, 64, 64, 0]  # std 32 / mean 64 = 0.5
    dropped = np.array([0, 0, 3, 0, 0, 0, 0, 4])
    line = _line(MoeRouting(np.arange(8), skewed, np.full((8, 8), 0.125), dropped, 2))
    assert line.endswith("top-2, max CV 0.50, dropped 7, 1 idle")


@contextlib.contextmanager
def socket_port() -> Iterator[int]:
    """A port nobody listens on (bound, not listening, while in use)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("127.0.0.1", 9000)),
        ("gpu-node:9100", ("gpu-node", 9100)),
        (":9001", ("127.0.0.1", 9001)),
        ("localhost", ("localhost", 9000)),
        ("[::1]:9002", ("::1", 9002)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


def test_parse_address_rejects_nonsense() -> None:
    for text in ("host:0", "host:99999", "[::1", "host:port"):
        with pytest.raises(ValueError):
            parse_address(text)


def _sim_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "synapse_desktop", "sim", "--layers", "2", *args]


def test_sim_command_runs_steps_and_stops() -> None:
    result = subprocess.run(
        _sim_command("--port", "0", "--steps", "3", "--fps", "100"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "listening on 127.0.0.1:" in result.stderr and "ssh -N -L" in result.stderr
    assert "stopped after 3 steps" in result.stderr


def test_sim_command_refuses_an_exposed_port_without_token() -> None:
    result = subprocess.run(
        _sim_command("--host", "0.0.0.0", "--port", "0"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert result.returncode == 2 and "requires a token" in result.stderr


def test_sim_command_names_a_port_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = str(holder.getsockname()[1])
        result = subprocess.run(
            _sim_command("--port", port),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sim_command_stops_cleanly_on_ctrl_c_or_sigterm(signum: int) -> None:
    # A shell may start background jobs with SIGINT ignored, which Python then keeps: restore
    # the usual Ctrl-C handler first, as an interactive terminal would have it.
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from synapse_desktop.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, "sim", "--layers", "2", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # the start-up line: it is running
        assert "listening" in line
        time.sleep(0.2)
        process.send_signal(signum)
        _, err = process.communicate(timeout=TIMEOUT)
        assert process.returncode == 0, err
        assert "stopped after" in err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
