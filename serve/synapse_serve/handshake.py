"""The greeting of one connection, done on its own blocking socket before the sender pump owns it.

The probe speaks first (HELLO with a fresh challenge when a token is set). With a token the
viewer must answer with a HELLO carrying ``hello_mac(token, challenge)`` before a deadline;
exactly that one frame is read, so nothing the viewer sends after it is lost when the pump takes
the socket over. A refused connection gets one ERROR frame and a graceful close.
"""

from __future__ import annotations

import socket
import struct
import time

from synapse_native.protocol import (
    HEADER_SIZE,
    MAGIC,
    MAX_HELLO_NAME,
    MAX_TEXT,
    VERSION,
    AuthMode,
    ErrorCode,
    ErrorReport,
    Hello,
    MsgType,
    ProtocolError,
    Role,
    check_hello_mac,
    decode_frame,
    encode,
    negotiate_version,
)

_HELLO_MAX_PAYLOAD = 64 + MAX_HELLO_NAME + 8
_LINGER_S = 0.5  # how long a refused peer gets to read its ERROR before the socket closes


class Refused(Exception):
    """The connection must end with ERROR(code, text); ``linger`` False: close at once after
    it (a peer that does not speak the protocol will not read it)."""

    def __init__(self, code: ErrorCode, text: str, *, linger: bool = True) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.linger = linger


def viewer_hello_problem(
    hello: Hello, *, token: str | None, challenge: bytes | None
) -> Refused | None:
    """Why a viewer's HELLO is not acceptable (version, role, then token), or None."""
    try:
        negotiate_version(hello)
    except ProtocolError as exc:
        return Refused(ErrorCode.VERSION, str(exc))
    if hello.role != Role.VIEWER:
        return Refused(ErrorCode.MALFORMED, f"expected a viewer HELLO, got role {hello.role}")
    if token is None or challenge is None:
        return None
    if hello.auth != AuthMode.HMAC_SHA256:
        return Refused(ErrorCode.AUTH, "this probe requires a token (HMAC-SHA256 HELLO)")
    if not check_hello_mac(token, challenge, hello.auth_data):
        return Refused(ErrorCode.AUTH, "wrong token")
    return None


def read_hello(sock: socket.socket, deadline: float) -> Hello:
    """Read exactly one frame, which must be a HELLO, before ``deadline`` (time.monotonic)."""
    head = _read_header(sock, deadline)
    version, msg_type, length = struct.unpack_from("<HHI", head, 4)
    if version != VERSION:
        raise Refused(
            ErrorCode.VERSION,
            f"peer speaks protocol version {version}, this probe speaks {VERSION}",
        )
    if msg_type != MsgType.HELLO or length > _HELLO_MAX_PAYLOAD:
        raise Refused(ErrorCode.AUTH, "expected a HELLO answering the challenge first")
    frame = head + _read_exactly(sock, length, deadline)
    try:
        decoded = decode_frame(frame)
    except ProtocolError as exc:
        raise Refused(ErrorCode.MALFORMED, str(exc)) from None
    if decoded is None or not isinstance(decoded.message, Hello):  # pragma: no cover - typed
        raise Refused(ErrorCode.AUTH, "expected a HELLO answering the challenge first")
    return decoded.message


def refuse(sock: socket.socket, refusal: Refused, *, rank: int = 0) -> None:
    """Send ERROR, half-close, let the peer read it (bounded), then close. Never raises."""
    try:
        sock.settimeout(_LINGER_S)
        sock.sendall(encode(ErrorReport(refusal.code, clip_text(refusal.text)), rank=rank))
        if not refusal.linger:
            return
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _LINGER_S
        # Reading until EOF avoids a reset that could discard the ERROR before the peer reads it.
        while time.monotonic() < deadline and sock.recv(4096):
            pass
    except OSError:
        pass
    finally:
        sock.close()


def clip_text(text: str) -> str:
    """``text`` cut to the protocol's MAX_TEXT bytes of UTF-8 (at a character boundary)."""
    return text.encode("utf-8")[:MAX_TEXT].decode("utf-8", "ignore")


def _read_header(sock: socket.socket, deadline: float) -> bytes:
    """The first 32 bytes; refused as soon as the bytes in cannot begin with the magic."""
    head = bytearray()
    while len(head) < HEADER_SIZE:
        head += _recv_some(sock, HEADER_SIZE - len(head), deadline)
        if not MAGIC.startswith(bytes(head[: len(MAGIC)])):
            raise Refused(
                ErrorCode.MALFORMED,
                f"bad magic {bytes(head[: len(MAGIC)])!r}: not a Synapse viewer",
                linger=False,
            )
    return bytes(head)


def _read_exactly(sock: socket.socket, n: int, deadline: float) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunks += _recv_some(sock, n - len(chunks), deadline)
    return bytes(chunks)


def _recv_some(sock: socket.socket, most: int, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise Refused(ErrorCode.AUTH, "no HELLO answering the challenge in time")
    sock.settimeout(remaining)
    try:
        data = sock.recv(most)
    except TimeoutError:
        raise Refused(ErrorCode.AUTH, "no HELLO answering the challenge in time") from None
    if not data:
        raise ConnectionError("the peer closed the connection during the handshake")
    return data
