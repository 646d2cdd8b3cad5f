"""A probe that requires a token, tried from outside: non-protocol peers, wrong first frames,
token guessing, short tokens, and the comparison itself."""

from __future__ import annotations

import hmac
import logging
import math
import socket
import time
from collections.abc import Iterator

import pytest

from synapse_native import _handshake
from synapse_native.client import PeerError, StreamClient
from synapse_native.protocol import (
    Control,
    Decoder,
    ErrorCode,
    ErrorReport,
    Frame,
    MsgType,
    check_hello_mac,
    encode,
)
from synapse_serve.auth_throttle import FIRST_DELAY_S, MAX_DELAY_S, AuthThrottle
from synapse_serve.server import Server
from synapse_serve.sim.model import SimModel
from synapse_serve.sim.simulator import model_meta

TOKEN = "a-token-of-twenty-four-b"
TIMEOUT = 10.0
AT_ONCE_S = 1.0  # "closed at once": well below the 5 s the handshake allows


@pytest.fixture
def server() -> Iterator[Server]:
    meta = model_meta(SimModel(2, "residual", seed=0))
    probe = Server(meta, port=0, token=TOKEN, announce=False).start()
    yield probe
    probe.close()


def read_until_closed(sock: socket.socket) -> tuple[list[Frame], float]:
    """Every frame until the probe closes the connection, and how long that took."""
    decoder, frames = Decoder(), []
    started = time.monotonic()
    sock.settimeout(TIMEOUT)
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        frames += decoder.feed(data)
    return frames, time.monotonic() - started


def errors(frames: list[Frame]) -> list[ErrorReport]:
    return [f.message for f in frames if isinstance(f.message, ErrorReport)]


@pytest.mark.parametrize(
    "greeting",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /\r\n", b"\x16\x03\x01", b"SYNQ"],
    ids=["http", "short-http", "tls", "near-magic"],
)
def test_non_protocol_bytes_are_closed_at_once(server: Server, greeting: bytes) -> None:
    with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
        sock.sendall(greeting)
        frames, took = read_until_closed(sock)
    assert took < AT_ONCE_S, f"kept {took:.2f} s"
    assert frames[0].header.msg_type == MsgType.HELLO  # the probe speaks first
    (error,) = errors(frames)
    assert error.code == ErrorCode.MALFORMED and "bad magic" in error.text
    assert server.client_count == 0


def test_a_wrong_first_frame_is_closed_at_once(server: Server) -> None:
    with socket.create_connection(server.address, timeout=TIMEOUT) as sock:
        sock.sendall(encode(Control(1, threshold=0.1)))
        frames, took = read_until_closed(sock)
    assert took < AT_ONCE_S
    (error,) = errors(frames)
    assert error.code == ErrorCode.AUTH and "HELLO" in error.text


def attempt(server: Server, token: str) -> str:
    """One viewer handshake; 'in' or the probe's error text."""
    host, port = server.address
    try:
        with StreamClient.connect(host, port, token=token, timeout=TIMEOUT) as client:
            client.wait_for(MsgType.CONTROL_ACK, TIMEOUT)
            return "in"
    except PeerError as exc:
        return exc.text


def test_failed_proofs_back_off_and_are_counted(server: Server) -> None:
    assert attempt(server, "not-the-token-at-all") == "wrong token"
    # Straight after a failure even the right token must wait: the guesser learns nothing.
    too_early = attempt(server, TOKEN)
    assert "too many failed token attempts" in too_early and "retry in" in too_early
    time.sleep(FIRST_DELAY_S + 0.05)
    assert attempt(server, "still-not-the-token") == "wrong token"
    time.sleep(FIRST_DELAY_S + 0.05)  # the second failure doubled the wait
    assert "too many failed" in attempt(server, TOKEN)
    time.sleep(FIRST_DELAY_S + 0.05)
    assert attempt(server, TOKEN) == "in"
    assert attempt(server, "wrong-again-and-again") == "wrong token"  # success forgot the past
    assert server.auth_failures == 5  # three failed proofs, two refused while waiting


def test_a_guessing_flood_gets_few_proofs_checked(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="synapse_serve.auth_throttle")
    started = time.monotonic()
    outcomes = [attempt(server, f"guess-number-{i:08d}") for i in range(200)]
    elapsed = time.monotonic() - started
    checked = outcomes.count("wrong token")
    # The n-th proof can come no sooner than FIRST_DELAY_S * (2**(n-1) - 1) after the first.
    most = 1 + math.floor(math.log2(elapsed / FIRST_DELAY_S + 1))
    assert checked <= most, f"{checked} of 200 guesses in {elapsed:.1f} s had a proof checked"
    odd = [o for o in outcomes if o != "wrong token" and "too many" not in o]
    assert not odd, odd
    assert server.auth_failures == 200
    warnings = [r for r in caplog.records if "token attempts" in r.getMessage()]
    assert len(warnings) == 1  # logged once a minute, not once per attempt


def test_the_throttle_doubles_caps_and_forgets() -> None:
    now = [100.0]
    throttle = AuthThrottle(clock=lambda: now[0])
    delays = [throttle.failed("10.0.0.1") for _ in range(12)]
    assert delays[:3] == [FIRST_DELAY_S, 2 * FIRST_DELAY_S, 4 * FIRST_DELAY_S]
    assert max(delays) == MAX_DELAY_S
    assert throttle.wait_left("10.0.0.1") == MAX_DELAY_S
    assert throttle.wait_left("10.0.0.2") == 0.0  # per peer
    now[0] += MAX_DELAY_S
    assert throttle.wait_left("10.0.0.1") == 0.0
    throttle.succeeded("10.0.0.1")
    assert throttle.failed("10.0.0.1") == FIRST_DELAY_S


@pytest.mark.parametrize("token", ["", "short", "fifteen-bytes!!"])
def test_short_tokens_are_refused_with_a_recipe(token: str) -> None:
    meta = model_meta(SimModel(1, "residual", seed=0))
    with pytest.raises(ValueError, match="at least 16 bytes") as caught:
        Server(meta, port=0, token=token, host="0.0.0.0")
    assert "secrets.token_urlsafe()" in str(caught.value)


def test_the_proof_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(_handshake.hmac, "compare_digest", spy)
    challenge = bytes(range(32))
    mac = _handshake.hello_mac(TOKEN, challenge)
    assert check_hello_mac(TOKEN, challenge, mac)
    assert not check_hello_mac(TOKEN, challenge, bytes(32))
    assert len(compared) == 2
