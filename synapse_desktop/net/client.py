"""The connection to one trainer, driven by Qt timers on the GUI thread; it never blocks.

Name resolution runs on a worker thread, the connect is non-blocking and polled, and once
connected the native receiver pump (a C thread) reads the socket. At display rate ``tick``
drains a bounded batch of whole frames, decodes them (numpy views) and hands them to the
``Session``. A trainer that goes away, restarts or sends garbage leaves the app up: the reason
is shown and the client reconnects with capped, jittered backoff.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, QTimer

from synapse_desktop import __version__
from synapse_desktop.models.connection import ConnectionState, Phase
from synapse_desktop.models.ordering import Skipped
from synapse_desktop.models.session import Session
from synapse_desktop.models.sparse import SparseRun
from synapse_desktop.net.backoff import Backoff
from synapse_desktop.net.batch import decode_batch
from synapse_desktop.net.coalesce import coalesce
from synapse_desktop.net.endpoint import Endpoint
from synapse_desktop.net.step_skipper import skip_old_steps
from synapse_native.protocol import (
    MAX_PAYLOAD,
    ActionRequest,
    AuthMode,
    Capability,
    CaptureRequest,
    Control,
    ErrorCode,
    ErrorReport,
    Frame,
    Hello,
    ProtocolError,
    Role,
    encode,
    hello_mac,
    negotiate_version,
)

TICK_MS = 16  # display rate
MAX_FRAMES_PER_TICK = 16384  # a tick takes what waits, so that old steps can be skipped
COALESCE_AT = 512  # a batch of this many frames in one step means we are behind: coalesce it
CONNECT_TIMEOUT_S = 5.0
RING_BYTES = 64 * 1024 * 1024  # the receiver's inbound ring: the app's memory bound for frames
_FATAL_CODES = (ErrorCode.AUTH, ErrorCode.VERSION)
_CAPABILITIES = Capability.SUMMARIES | Capability.SPARSE | Capability.CONTROL
_RESOLVER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synapse-resolve")


Batch = Sequence[Frame | Skipped | SparseRun]


class Client(QObject):
    """Connects ``session`` to one endpoint at a time; state goes to ``connection``
    (``session.connection`` by default).

    ``driven``: another object (``net.links.Links``) calls ``tick``, takes the frames through
    ``sink`` and sends CONTROL; otherwise the client has its own timer, applies its frames to
    the session and sends the session's CONTROL requests.
    """

    def __init__(
        self,
        session: Session,
        parent: QObject | None = None,
        *,
        connection: ConnectionState | None = None,
        driven: bool = False,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.connection = connection if connection is not None else session.connection
        self.sink: Callable[[Batch], object] = session.apply_frames
        self.raw_sink: Callable[[list[bytes]], object] | None = None  # whole frames as read
        self._driven = driven
        self.endpoint: Endpoint | None = None
        self.token: str | None = None
        self.backoff = Backoff()
        self.max_frames = MAX_FRAMES_PER_TICK
        self.skip_steps = True  # apply only the newest of the whole steps waiting
        self._resolving: Future[list[Any]] | None = None
        self._addresses: list[Any] = []
        self._sock: socket.socket | None = None
        self._connect_deadline = 0.0
        self._pump: Any = None
        self._live = False
        self._sent_hello = False
        self._timer = QTimer(self)
        self._timer.setInterval(TICK_MS)
        self._timer.timeout.connect(self.tick)
        self._retry = QTimer(self)
        self._retry.setSingleShot(True)
        self._retry.timeout.connect(self._attempt)
        if not driven:
            session.control.requested.connect(self._send_control)
            session.captures.requested.connect(self._send_capture)
            session.actions.requested.connect(self._send_action)

    # -- public ---------------------------------------------------------------------------------

    def open(self, endpoint: Endpoint, token: str | None = None) -> None:
        """Connect to ``endpoint`` (dropping any current connection) and keep reconnecting."""
        self.close()
        self.endpoint, self.token = endpoint, token or None
        self.backoff.reset()
        self.connection.set(
            phase=Phase.CONNECTING, endpoint=str(endpoint), reason="", retry_at=None, attempt=0
        )
        self._attempt()

    def close(self) -> None:
        """Disconnect and stop reconnecting."""
        self._retry.stop()
        self._timer.stop()
        self._teardown()
        self.endpoint = None
        self.connection.set(
            phase=Phase.IDLE, reason="", retry_at=None, peer="", rank=-1, capabilities=0
        )

    @property
    def live(self) -> bool:
        return self._live

    def send(self, frame: bytes) -> bool:
        """Queue one frame to the trainer; False when not connected or the queue is full."""
        return bool(self._pump is not None and not self._pump.closed and self._pump.send(frame))

    # -- connecting -----------------------------------------------------------------------------

    def _attempt(self) -> None:
        assert self.endpoint is not None
        self._teardown()
        self.connection.set(
            phase=Phase.CONNECTING, retry_at=None, attempt=self.backoff.attempts + 1
        )
        host, port = self.endpoint.host, self.endpoint.port
        self._resolving = _RESOLVER.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        if not self._driven:
            self._timer.start()

    def _poll_resolve(self) -> None:
        assert self._resolving is not None
        if not self._resolving.done():
            return
        future, self._resolving = self._resolving, None
        try:
            self._addresses = future.result()
        except OSError as exc:
            self._fail(f"cannot resolve {self.endpoint.host if self.endpoint else ''}: {exc}")
            return
        self._start_connect()

    def _start_connect(self) -> None:
        if not self._addresses:
            self._fail("no address to connect to")
            return
        family, kind, proto, _, address = self._addresses.pop(0)
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            self._next_address_or_fail(os.strerror(code))
            return
        self._sock = sock
        self._connect_deadline = time.monotonic() + CONNECT_TIMEOUT_S

    def _poll_connect(self) -> None:
        sock = self._sock
        assert sock is not None
        _, writable, _ = select.select([], [sock], [], 0)
        if not writable:
            if time.monotonic() > self._connect_deadline:
                self._sock = None
                sock.close()
                self._next_address_or_fail("connection timed out")
            return
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._sock = None
            sock.close()
            self._next_address_or_fail(os.strerror(code))
            return
        self._sock = None
        from synapse_native.pumps import ReceiverPump

        try:
            sock.setblocking(True)  # the pump's C thread does the waiting
            self._pump = ReceiverPump(sock, ring_capacity=RING_BYTES, max_payload=MAX_PAYLOAD)
        except (OSError, ValueError, RuntimeError) as exc:
            self._fail(f"cannot start the receiver: {exc}")
            return
        finally:
            sock.close()  # the pump holds its own descriptor
        self._sent_hello = False

    def _next_address_or_fail(self, reason: str) -> None:
        if self._addresses:
            self._start_connect()
        else:
            self._fail(reason)

    # -- the stream -----------------------------------------------------------------------------

    def tick(self) -> None:
        """One display-rate step: progress the connection, or drain and apply a batch."""
        if self._resolving is not None:
            self._poll_resolve()
        elif self._sock is not None:
            self._poll_connect()
        elif self._pump is not None:
            self._drain()

    def _drain(self) -> None:
        pump = self._pump
        raw = pump.drain(self.max_frames)
        if raw:
            self._consume(raw)
            if self._pump is None:  # a frame closed the connection
                return
        if pump.closed and not raw:
            reason = pump.close_reason or "the trainer closed the connection"
            self._fail(reason)

    def _consume(self, raw: list[bytes]) -> None:
        now = time.monotonic()
        if self.raw_sink is not None:
            self.raw_sink(raw)
        self.session.counters.received(now, len(raw), sum(map(len, raw)))
        try:
            skip = skip_old_steps(raw) if self.skip_steps else None
            if skip is not None:
                frames = decode_batch(raw, skip.keep, skip.skipped)
                self.session.counters.skipped_steps(skip.steps)
            elif len(raw) >= COALESCE_AT:
                keep, headers = coalesce(raw)
                frames = decode_batch(raw, keep, headers)
            else:
                frames = decode_batch(raw)
        except ProtocolError as exc:
            self._fail(f"malformed stream: {exc}")
            return
        for item in frames:
            if isinstance(item, Frame) and not self._handshake(item):
                return
        if not self._live and any(
            isinstance(f, SparseRun) or (isinstance(f, Frame) and not isinstance(f.message, Hello))
            for f in frames
        ):
            self._live = True
            self.backoff.reset()
            self.session.control.reset()
            self.connection.set(phase=Phase.LIVE, reason="", retry_at=None)
        self.sink(frames)

    def _handshake(self, frame: Frame) -> bool:
        """React to HELLO and ERROR; False when the connection ended."""
        message = frame.message
        if isinstance(message, ErrorReport):
            fatal = message.code in _FATAL_CODES
            self._fail(f"trainer says: {message.text}", fatal=fatal)
            return False
        if not isinstance(message, Hello) or message.role != Role.TRAINER:
            return True
        try:
            negotiate_version(message)
        except ProtocolError as exc:
            self._fail(str(exc), fatal=True)
            return False
        self.connection.set(
            peer=message.name, rank=frame.header.rank, capabilities=int(message.capabilities)
        )
        if message.auth == AuthMode.HMAC_SHA256:
            if not self.token:
                self._fail("the trainer requires a token (connect with a token)", fatal=True)
                return False
            auth = hello_mac(self.token, message.auth_data)
            self.send(encode(self._hello(AuthMode.HMAC_SHA256, auth)))
        elif not self._sent_hello:
            self.send(encode(self._hello(AuthMode.NONE, bytes(32))))
        self._sent_hello = True
        return True

    @staticmethod
    def _hello(auth: AuthMode, auth_data: bytes) -> Hello:
        return Hello(
            Role.VIEWER,
            f"synapse-desktop {__version__}",
            _CAPABILITIES,
            auth=auth,
            auth_data=auth_data,
        )

    def _send_action(self, request: ActionRequest) -> None:
        if not self.send(encode(request)):
            self.session.actions.not_sent(request)

    def _send_capture(self, request: CaptureRequest) -> None:
        if not self.send(encode(request)):
            self.session.captures.not_sent(request)

    def _send_control(self, control: Control) -> None:
        if not self.send(encode(control)):
            self.session.control.not_sent(control)

    # -- failure and retry ----------------------------------------------------------------------

    def _fail(self, reason: str, *, fatal: bool = False) -> None:
        self._timer.stop()
        self._teardown()
        if self.endpoint is None:
            return
        if fatal:
            self.connection.set(phase=Phase.FAILED, reason=reason, retry_at=None)
            return
        delay = self.backoff.next()
        self.connection.set(phase=Phase.RETRYING, reason=reason, retry_at=time.monotonic() + delay)
        self._retry.start(int(delay * 1000))

    def _teardown(self) -> None:
        self._live = False
        if self._resolving is not None:
            self._resolving.cancel()
            self._resolving = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._pump is not None:
            pump, self._pump = self._pump, None
            pump.close()
