"""``StreamClient`` against a scripted fake trainer: handshake, token, reading, sending."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from synapse_native.client import ConnectionClosed, PeerError, StreamClient
from synapse_native.protocol import (
    AuthMode,
    Control,
    Decoder,
    ErrorCode,
    ErrorReport,
    Frame,
    Hello,
    MsgType,
    ProtocolError,
    Role,
    SparseActivations,
    check_hello_mac,
    encode,
    new_challenge,
)

TIMEOUT = 10.0
Script = Callable[[socket.socket], object]


class FakeTrainer:
    """Accepts one connection and runs ``script`` on it in a thread."""

    def __init__(self, script: Script) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()[:2]
        self.error: BaseException | None = None
        self._script = script
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        sock, _ = self.listener.accept()
        sock.settimeout(TIMEOUT)
        try:
            self._script(sock)
        except BaseException as exc:  # reported by join()
            self.error = exc
        finally:
            sock.close()

    def join(self) -> None:
        self._thread.join(TIMEOUT)
        self.listener.close()
        if self.error is not None:
            raise self.error


@pytest.fixture
def trainer() -> Iterator[Callable[[Script], FakeTrainer]]:
    made: list[FakeTrainer] = []

    def make(script: Script) -> FakeTrainer:
        made.append(FakeTrainer(script))
        return made[-1]

    yield make
    for fake in made:
        fake.listener.close()


def read_frame(sock: socket.socket, decoder: Decoder) -> Frame:
    while True:
        data = sock.recv(4096)
        if not data:
            raise ConnectionError("client went away")
        frames = decoder.feed(data)
        if frames:
            assert len(frames) == 1
            return frames[0]


def sparse(step: int) -> bytes:
    message = SparseActivations(0, 0.5, 1, np.array([3], np.uint32), np.ones(1, np.float32))
    return bytes(encode(message, seq=step + 1, step=step))


def test_connect_reads_hello_answers_and_streams(trainer: Callable[[Script], FakeTrainer]) -> None:
    got: list[Frame] = []

    def script(sock: socket.socket) -> None:
        sock.sendall(encode(Hello(Role.TRAINER, "fake/1")))
        decoder = Decoder()
        got.append(read_frame(sock, decoder))
        sock.sendall(b"".join(sparse(step) for step in range(5)))
        got.append(read_frame(sock, decoder))

    fake = trainer(script)
    with StreamClient.connect(*fake.address, timeout=TIMEOUT) as client:
        assert isinstance(client.hello.message, Hello) and client.hello.message.name == "fake/1"
        frame = client.wait_for(MsgType.SPARSE_ACTIVATIONS, TIMEOUT, lambda f: f.header.step == 3)
        assert frame.header.seq == 4
        frame = client.next_frame(TIMEOUT)
        assert frame is not None and frame.header.step == 4
        assert client.send(Control(9, threshold=1.0))
        fake.join()
        assert list(client.frames(TIMEOUT)) == []  # the trainer closed
        with pytest.raises(ConnectionClosed):
            client.next_frame(TIMEOUT)
    answer = got[0].message
    assert isinstance(answer, Hello) and answer.role == Role.VIEWER
    assert answer.auth == AuthMode.NONE and answer.name.startswith("synapse-client/")
    assert got[1].message == Control(9, threshold=1.0)


def test_token_answers_the_challenge(trainer: Callable[[Script], FakeTrainer]) -> None:
    challenge = new_challenge()
    verdict: list[bool] = []

    def script(sock: socket.socket) -> None:
        sock.sendall(
            encode(Hello(Role.TRAINER, "t", auth=AuthMode.HMAC_SHA256, auth_data=challenge))
        )
        answer = read_frame(sock, Decoder()).message
        assert isinstance(answer, Hello)
        verdict.append(check_hello_mac("tok", challenge, answer.auth_data))
        sock.sendall(sparse(0))

    fake = trainer(script)
    with StreamClient.connect(*fake.address, token="tok", timeout=TIMEOUT) as client:
        client.wait_for(MsgType.SPARSE_ACTIVATIONS, TIMEOUT)
    fake.join()
    assert verdict == [True]


def test_token_required_but_missing(trainer: Callable[[Script], FakeTrainer]) -> None:
    def script(sock: socket.socket) -> None:
        hello = Hello(Role.TRAINER, "t", auth=AuthMode.HMAC_SHA256, auth_data=new_challenge())
        sock.sendall(encode(hello))

    fake = trainer(script)
    with pytest.raises(PermissionError, match="requires a token"):
        StreamClient.connect(*fake.address, timeout=TIMEOUT)
    fake.join()


def test_error_instead_of_hello_and_error_while_waiting(
    trainer: Callable[[Script], FakeTrainer],
) -> None:
    fake = trainer(
        lambda sock: sock.sendall(encode(ErrorReport(ErrorCode.TOO_MANY_CLIENTS, "full")))
    )
    with pytest.raises(PeerError) as caught:
        StreamClient.connect(*fake.address, timeout=TIMEOUT)
    assert caught.value.code == ErrorCode.TOO_MANY_CLIENTS and "full" in str(caught.value)
    fake.join()

    def script(sock: socket.socket) -> None:
        sock.sendall(encode(Hello(Role.TRAINER, "t")) + encode(ErrorReport(ErrorCode.AUTH, "no")))

    fake = trainer(script)
    with StreamClient.connect(*fake.address, timeout=TIMEOUT) as client, pytest.raises(PeerError):
        client.wait_for(MsgType.MODEL_META, TIMEOUT)
    fake.join()


def test_timeouts(trainer: Callable[[Script], FakeTrainer]) -> None:
    release = threading.Event()
    fake = trainer(lambda sock: release.wait(TIMEOUT))
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        StreamClient.connect(*fake.address, timeout=0.2)
    assert time.monotonic() - started < 2.0
    release.set()
    fake.join()

    def script(sock: socket.socket) -> None:
        sock.sendall(encode(Hello(Role.TRAINER, "t")))
        release.wait(TIMEOUT)

    release.clear()
    fake = trainer(script)
    with StreamClient.connect(*fake.address, timeout=TIMEOUT) as client:
        assert client.next_frame(0.05) is None
        with pytest.raises(TimeoutError, match="MODEL_META"):
            client.wait_for(MsgType.MODEL_META, 0.1)
        assert list(client.frames(0.05)) == []
        release.set()
    fake.join()


def test_first_frame_must_be_a_hello(trainer: Callable[[Script], FakeTrainer]) -> None:
    fake = trainer(lambda sock: sock.sendall(sparse(0)))
    with pytest.raises(ProtocolError, match="HELLO"):
        StreamClient.connect(*fake.address, timeout=TIMEOUT)
    fake.join()
