"""Fuzz target: what a viewer can send a probe that requires a token, and its CONTROL requests.

The input is (1) the viewer's first bytes, read by the probe's ``handshake.read_hello`` from a
socket with a deadline, then judged by ``viewer_hello_problem``; only ``Refused`` (the
connection ends with an ERROR frame) or ConnectionError (the viewer hung up) may escape, and a
HELLO that passes must carry the token's HMAC; and (2) the same bytes as an inbound frame the
probe's event thread takes: decoded with the server's inbound limit, and a CONTROL request the
checks accept on arrival is either refused when applied (with the reason) or leaves a valid
control state.
"""

from __future__ import annotations

import socket
import time

import atheris
from _harness import main

with atheris.instrument_imports():
    from synapse_native.protocol import (
        Control,
        ProtocolError,
        check_hello_mac,
        decode_frame,
    )
    from synapse_serve import handshake
    from synapse_serve.control import DEFAULT_STATE, apply, request_errors, state_errors
    from synapse_serve.server import _MAX_INBOUND_PAYLOAD

TOKEN = "fuzzing-token-0123456789"
CHALLENGE = bytes(range(32))


def greet(data: bytes) -> None:
    probe, viewer = socket.socketpair()
    try:
        viewer.sendall(data[:65536])
        viewer.shutdown(socket.SHUT_WR)
        try:
            hello = handshake.read_hello(probe, time.monotonic() + 1.0)
        except (handshake.Refused, ConnectionError):
            return
        problem = handshake.viewer_hello_problem(hello, token=TOKEN, challenge=CHALLENGE)
        if problem is None:
            assert check_hello_mac(TOKEN, CHALLENGE, hello.auth_data)
    finally:
        probe.close()
        viewer.close()


def control(data: bytes) -> None:
    try:
        frame = decode_frame(data, max_payload=_MAX_INBOUND_PAYLOAD)
    except ProtocolError:
        return
    if frame is None or not isinstance(frame.message, Control):
        return
    if request_errors(frame.message):
        return  # refused on arrival
    try:  # what the server does at the next step boundary
        state = apply(DEFAULT_STATE, frame.message)
    except ValueError:
        return  # refused then, with the reason
    assert not state_errors(state), (frame.message, state_errors(state))


def test(data: bytes) -> None:
    greet(data)
    control(data)


if __name__ == "__main__":
    main(test, per_byte=64)
