"""A small blocking client of a Synapse probe, for tests, ``synapse tail`` and scripts.

It reads the trainer's HELLO itself, answers it (with the token's HMAC when the probe asks for
one), then hands the socket to a ``ReceiverPump`` whose C thread reads the stream; frames are
decoded on the caller's thread. The desktop app has its own connection code; this one is simple.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Callable, Iterator

from . import __version__
from ._closing import ClosesOnExit
from .protocol import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    AuthMode,
    ErrorReport,
    Frame,
    Hello,
    Message,
    MsgType,
    ProtocolError,
    Role,
    decode_frame,
    encode,
    hello_mac,
    peek_header,
)
from .pumps import ReceiverPump

__all__ = ["ConnectionClosed", "PeerError", "StreamClient"]

_RING_BYTES = 1 << 25
_DRAIN_BATCH = 256
_RAW_BATCH = 4096
_MAX_HELLO_PAYLOAD = 1024
_WAIT_SLICE_S = 1.0
_CLEAN_END = "peer closed the connection"  # the receiver pump's reason for EOF between frames


class ConnectionClosed(ConnectionError):
    """The stream ended; the message says why when known. ``clean``: the probe closed it
    between frames (the end of a run), not a fault (a bad frame, a reset, a cut-off frame)."""

    def __init__(self, reason: str, *, clean: bool = False) -> None:
        super().__init__(reason)
        self.clean = clean


class PeerError(ConnectionError):
    """The probe sent ERROR (and is closing the connection)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"probe error {code}: {text}")
        self.code = code
        self.text = text


class StreamClient(ClosesOnExit):
    """One connection to a probe. Use ``connect``; iterate ``frames``; ``close`` when done."""

    def __init__(self, pump: ReceiverPump, hello: Frame, hello_bytes: bytes = b"") -> None:
        self.hello = hello  # the trainer's HELLO frame
        self.hello_bytes = hello_bytes  # the same, as received
        self._pump = pump
        self._ready: deque[Frame] = deque()
        self._closed = False

    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        *,
        token: str | None = None,
        timeout: float = 5.0,
        name: str = f"synapse-client/{__version__}",
    ) -> StreamClient:
        """Connect, read the trainer's HELLO and answer it. Raises PeerError, ConnectionError,
        TimeoutError or ProtocolError when the probe cannot be reached or refuses."""
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            deadline = time.monotonic() + timeout
            hello, hello_bytes = _read_hello(sock, deadline)
            trainer = hello.message
            assert isinstance(trainer, Hello)
            if trainer.auth == AuthMode.HMAC_SHA256 and token is None:
                raise PermissionError(f"the probe at {host}:{port} requires a token")
            answer = Hello(role=Role.VIEWER, name=name)
            if trainer.auth == AuthMode.HMAC_SHA256 and token is not None:
                mac = hello_mac(token, trainer.auth_data)
                answer = Hello(
                    role=Role.VIEWER, name=name, auth=AuthMode.HMAC_SHA256, auth_data=mac
                )
            sock.sendall(encode(answer))
            sock.settimeout(None)
            pump = ReceiverPump(sock, ring_capacity=_RING_BYTES, max_payload=MAX_PAYLOAD)
        finally:
            sock.close()  # the pump keeps its own descriptor
        return cls(pump, hello, hello_bytes)

    # -- reading --------------------------------------------------------------------------------

    def next_frame(self, timeout: float | None = None) -> Frame | None:
        """The next frame, or None after ``timeout`` seconds (None: wait as long as it takes).

        Raises ConnectionClosed once the stream has ended and every frame has been read, and
        ProtocolError for a frame that breaks the protocol.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready:
            if self._closed:
                raise ConnectionClosed("client closed")
            self._fill()
            if self._ready:
                break
            if self._pump.closed:
                self._fill()  # frames that arrived just before the end
                if not self._ready:
                    reason = self._pump.close_reason or "connection closed"
                    raise ConnectionClosed(reason, clean=reason == _CLEAN_END)
                break
            remaining = _WAIT_SLICE_S if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._pump.wait(min(remaining, _WAIT_SLICE_S))
        return self._ready.popleft()

    def _fill(self) -> None:
        for raw in self._pump.drain(_DRAIN_BATCH):
            frame = decode_frame(raw)
            if frame is not None:
                self._ready.append(frame)

    def raw_frames(self, timeout: float, max_frames: int = _RAW_BATCH) -> list[bytes]:
        """Up to ``max_frames`` whole frames as received (not decoded: a recorder's path),
        waiting up to ``timeout`` for the first; [] on timeout or once the stream has ended
        (then ``closed`` is True). Do not mix with ``next_frame``."""
        frames = self._pump.drain(max_frames)
        if not frames and not self._pump.closed and self._pump.wait(timeout):
            frames = self._pump.drain(max_frames)
        return frames

    def frames(self, timeout: float | None = None) -> Iterator[Frame]:
        """Frames as they come; stops when none arrives within ``timeout`` or the stream ends."""
        while True:
            try:
                frame = self.next_frame(timeout)
            except ConnectionClosed:
                return
            if frame is None:
                return
            yield frame

    def wait_for(
        self,
        msg_type: MsgType,
        timeout: float,
        predicate: Callable[[Frame], bool] | None = None,
    ) -> Frame:
        """The next frame of ``msg_type`` (matching ``predicate``), skipping others.

        Raises TimeoutError, ConnectionClosed, or PeerError when the probe sends ERROR first.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            frame = self.next_frame(max(0.0, remaining)) if remaining > 0 else None
            if frame is None:
                raise TimeoutError(f"no {msg_type.name} frame within {timeout:g} s")
            if frame.header.msg_type == msg_type and (predicate is None or predicate(frame)):
                return frame
            if isinstance(frame.message, ErrorReport):
                raise PeerError(int(frame.message.code), frame.message.text)

    # -- writing and closing --------------------------------------------------------------------

    def send(self, message: Message) -> bool:
        """Queue a message (e.g. a Control) for the probe; False if it could not be queued."""
        return self._pump.send(encode(message))

    @property
    def closed(self) -> bool:
        """True once the connection has ended (frames may still wait to be read)."""
        return self._closed or self._pump.closed

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if not self._closed:
            self._closed = True
            self._pump.close()


def _read_hello(sock: socket.socket, deadline: float) -> tuple[Frame, bytes]:
    """Read exactly the first frame, which must be the trainer's HELLO (or an ERROR)."""
    head = _read_exactly(sock, HEADER_SIZE, deadline)
    length = peek_header(head).payload_length  # magic and version first: is it a probe at all?
    if length > _MAX_HELLO_PAYLOAD:
        raise ProtocolError(f"first frame announces {length} payload bytes; expected a HELLO")
    raw = head + _read_exactly(sock, length, deadline)
    frame = decode_frame(raw)
    if frame is not None and isinstance(frame.message, ErrorReport):
        raise PeerError(int(frame.message.code), frame.message.text)
    if frame is None or not isinstance(frame.message, Hello):
        raise ProtocolError("the probe's first frame is not a HELLO")
    return frame, raw


def _read_exactly(sock: socket.socket, n: int, deadline: float) -> bytes:
    data = bytearray()
    while len(data) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no HELLO from the probe in time")
        sock.settimeout(remaining)
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionClosed("the probe closed the connection during the handshake")
        data += chunk
    return bytes(data)
