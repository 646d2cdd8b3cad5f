"""``synapse tail`` against peers that are not probes, or whose stream breaks: a non-zero exit
and a message naming the fault; a probe that ends its stream cleanly: exit 0."""

from __future__ import annotations

import argparse
import contextlib
import socket
import struct
import threading

import pytest

from synapse_desktop.commands import tail
from synapse_native.protocol import Hello, Role, TrainingMetrics, encode

HELLO = encode(Hello(Role.TRAINER, "fake-probe"))
RESET = b"RST"  # in a script: end with a TCP reset instead of a graceful close


def metrics(step: int) -> bytes:
    return encode(TrainingMetrics({"loss": 1.0 / (step + 1)}), seq=step + 1, step=step)


def serve_once(listener: socket.socket, script: list[bytes]) -> None:
    """Accept one viewer, write the script's byte strings (after the first, wait for the
    viewer's HELLO when it is a probe's HELLO), then close (or reset)."""
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(5.0)
        for i, chunk in enumerate(script):
            if chunk == RESET:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            conn.sendall(chunk)
            if i == 0 and chunk == HELLO:
                head = conn.recv(32, socket.MSG_WAITALL)
                conn.recv(struct.unpack_from("<I", head, 8)[0], socket.MSG_WAITALL)
        conn.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while conn.recv(4096):
                pass


def run_tail(script: list[bytes]) -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        server = threading.Thread(target=serve_once, args=(listener, script), daemon=True)
        server.start()
        port = listener.getsockname()[1]
        args = argparse.Namespace(address=f"127.0.0.1:{port}", token=None, count=None, timeout=5.0)
        code = tail.run(args)
        server.join(10.0)
    return code


def test_an_http_server_is_named_a_bad_magic(capsys: pytest.CaptureFixture[str]) -> None:
    reply = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    assert run_tail([reply]) == 1
    err = capsys.readouterr().err
    assert "bad magic b'HTTP'" in err and "payload bytes" not in err


def test_a_clean_end_after_frames_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_tail([HELLO, metrics(0), metrics(1)]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("TRAINING_METRICS") == 2
    assert "closed the stream" in captured.err


@pytest.mark.parametrize(
    "fault",
    [
        [b"XXXX" + metrics(2)[4:]],  # bad magic after the HELLO
        [metrics(2)[:40]],  # cut off in the middle of a frame
        [metrics(2)[:40], RESET],  # reset in the middle of a frame
    ],
    ids=["bad-magic", "cut-mid-frame", "reset-mid-frame"],
)
def test_a_stream_fault_after_the_hello_exits_non_zero(
    fault: list[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_tail([HELLO, metrics(0), *fault]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("TRAINING_METRICS") == 1
    assert "synapse tail:" in captured.err and "closed the stream (" not in captured.err
