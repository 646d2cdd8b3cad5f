"""Frames and loopback sockets for the tests of the native ring and pumps.

Frames are built by hand here (not with the protocol codec) so that these tests pin down what
the pumps themselves check: magic, version and payload length in the 32-byte header.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

HEADER = struct.Struct("<4sHHII16s")  # magic, version, type, payload length, sequence, rest
CONTROL = 9  # any message type: the pumps do not look at it


def make_frame(
    seq: int,
    payload_len: int,
    *,
    magic: bytes = b"SYNP",
    version: int = 1,
    msg_type: int = 3,
    declared_len: int | None = None,
) -> bytes:
    """A frame whose payload bytes follow from ``seq``, so that damage is detectable."""
    length = payload_len if declared_len is None else declared_len
    header = HEADER.pack(magic, version, msg_type, length, seq, bytes(16))
    payload = bytes((seq * 131 + i) & 0xFF for i in range(min(payload_len, 256)))
    payload = (payload * (payload_len // 256 + 1))[:payload_len] if payload_len > 256 else payload
    return header + payload


def frame_seq(frame: bytes) -> int:
    return HEADER.unpack_from(frame)[4]


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """A connected loopback TCP pair: (the side a pump gets, the peer)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        peer = socket.create_connection(server.getsockname())
        ours, _ = server.accept()
    return ours, peer


def recv_exact(sock: socket.socket, n: int) -> bytes:
    """n bytes, or fewer if the peer closed first."""
    chunks = []
    while n > 0:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket, timeout: float = 5.0) -> bytes | None:
    """One whole frame, or None when the peer closed the connection."""
    sock.settimeout(timeout)
    header = recv_exact(sock, HEADER.size)
    if len(header) < HEADER.size:
        return None
    length = HEADER.unpack(header)[3]
    payload = recv_exact(sock, length)
    assert len(payload) == length, "connection closed mid-frame"
    return header + payload


def is_closed_by_peer(sock: socket.socket, timeout: float = 5.0) -> bool:
    """Whether the peer hung up (after any frames still in flight)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(1 << 16):
            pass
    except ConnectionResetError:
        pass
    return True


class FrameReader:
    """Reads whole frames from a socket on a thread until ``expected`` frames or EOF."""

    def __init__(self, sock: socket.socket, expected: int) -> None:
        self.sock = sock
        self.expected = expected
        self.frames: list[bytes] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while len(self.frames) < self.expected:
            frame = read_frame(self.sock, timeout=10.0)
            if frame is None:
                return
            self.frames.append(frame)

    def join(self, timeout: float = 10.0) -> list[bytes]:
        self._thread.join(timeout)
        return self.frames


@contextmanager
def closing_all(*socks: socket.socket) -> Iterator[None]:
    try:
        yield
    finally:
        for sock in socks:
            sock.close()
