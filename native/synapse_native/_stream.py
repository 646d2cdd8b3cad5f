"""Reassembling frames from a byte stream: no I/O, unknown types skipped by length.

Each header is checked as soon as its 32 bytes are in, so a frame announcing more than
``max_payload`` fails before any of its body is buffered.
"""

from __future__ import annotations

from ._decode import Buffer, Frame, byte_view, decode_body
from ._wire import HEADER_SIZE, MAX_PAYLOAD, RESERVED_TYPES, MsgType, ProtocolError, peek_header


def _is_decoded(msg_type: int) -> bool:
    return isinstance(msg_type, MsgType) and msg_type not in RESERVED_TYPES


class Decoder:
    """Turn a byte stream into frames: ``feed`` bytes as they arrive, get the whole frames back.

    Arrays in the frames are views on the bytes fed (when a frame arrives in one ``bytes``
    chunk) or on a private copy, never on a buffer the decoder reuses. After a ProtocolError
    the stream cannot be resynchronised: every later ``feed`` raises the same error.
    """

    def __init__(self, *, max_payload: int = MAX_PAYLOAD) -> None:
        self.max_payload = max_payload
        self.skipped = 0  # frames of unknown or reserved types passed over
        self._pending = bytearray()  # start of an incomplete frame
        self._skip_left = 0  # body bytes of a skipped frame still to discard
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._pending)

    @property
    def error(self) -> ProtocolError | None:
        """The error that stopped this stream, if any."""
        return self._error

    def feed(self, data: Buffer) -> list[Frame]:
        """Add ``data``; return the frames it completes, in order (possibly none)."""
        if self._error is not None:
            raise self._error
        try:
            return self._feed(byte_view(data), data)
        except ProtocolError as exc:
            self._error = exc
            self._pending.clear()
            raise

    def _feed(self, view: memoryview, data: Buffer) -> list[Frame]:
        if self._skip_left:
            dropped = min(self._skip_left, len(view))
            self._skip_left -= dropped
            view = view[dropped:]
        if self._pending:
            self._pending += view
            if not self._holds_whole_frame():
                return []
            chunk = bytes(self._pending)
            self._pending.clear()
        elif type(data) is bytes and len(view) == len(data):
            chunk = data
        else:
            chunk = bytes(view)
        return self._split(chunk)

    def _holds_whole_frame(self) -> bool:
        if len(self._pending) < HEADER_SIZE:
            return False
        header = peek_header(self._pending, max_payload=self.max_payload)
        if not _is_decoded(header.msg_type):
            return True  # skipping needs no body
        return len(self._pending) >= HEADER_SIZE + header.payload_length

    def _split(self, chunk: bytes) -> list[Frame]:
        view = memoryview(chunk)
        frames: list[Frame] = []
        start = 0
        while len(chunk) - start >= HEADER_SIZE:
            header = peek_header(view[start : start + HEADER_SIZE], max_payload=self.max_payload)
            end = start + HEADER_SIZE + header.payload_length
            if not _is_decoded(header.msg_type):
                self.skipped += 1
                self._skip_left = max(0, end - len(chunk))
                start = min(end, len(chunk))
                continue
            if end > len(chunk):
                break
            frame = decode_body(header, view[start:end])
            if frame is not None:
                frames.append(frame)
            start = end
        self._pending += view[start:]
        return frames
