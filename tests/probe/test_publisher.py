"""The publisher's batched path: ``broadcast_many`` numbers, stamps and drops frames exactly as the
same ``broadcast`` calls in a row would, with one push into the sink."""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Sequence

import pytest

from synapse_native.errors import ClosedError, RecordTooLargeError
from synapse_native.protocol import ControlAck, ControlState, ErrorCode, ErrorReport, Message
from synapse_native.pumps import SenderPump
from synapse_serve.publisher import Publisher

pytestmark = pytest.mark.timeout(30)

STATE = ControlState(0.5, 10.0, 0b1110, False, 64)
END = 1  # any flag value: the publisher only stamps it


def untimed(frames: Sequence[bytes]) -> list[bytes]:
    """The frames with the header's timestamp_ns (bytes 16-23) zeroed: all else must match."""
    return [frame[:16] + bytes(8) + frame[24:] for frame in frames]


class RecordingSink:
    """Takes frames until ``room`` runs out; refuses frames over ``limit`` as the pump does."""

    def __init__(self, room: int = 1 << 30, limit: int = 1 << 30) -> None:
        self.frames: list[bytes] = []
        self.batches = 0
        self.room = room
        self.limit = limit
        self.closed = False

    def broadcast(self, frame: bytes) -> bool:
        self._check([frame])
        if self.room == 0:
            return False
        self.room -= 1
        self.frames.append(frame)
        return True

    def broadcast_many(self, frames: Sequence[bytes]) -> int:
        self._check(frames)
        self.batches += 1
        queued = min(self.room, len(frames))
        self.room -= queued
        self.frames += frames[:queued]
        return queued

    def send_to(self, client_id: int, frame: bytes) -> bool:
        raise AssertionError("not used here")

    def _check(self, frames: Sequence[bytes]) -> None:
        if self.closed:
            raise ClosedError("closed")
        if any(len(frame) > self.limit for frame in frames):
            raise RecordTooLargeError("too long")


def messages(count: int) -> list[Message]:
    return [
        ControlAck(i, True, STATE) if i % 2 else ErrorReport(ErrorCode.INTERNAL, "x" * (10 * i))
        for i in range(count)
    ]


def one_by_one(sink: RecordingSink, batches: list[list[Message]], step: int) -> Publisher:
    """The reference: every message through ``broadcast``, the last of a batch flagged."""
    publisher = Publisher(sink, rank=3)
    for batch in batches:
        for i, message in enumerate(batch):
            publisher.broadcast(message, step=step, flags=END if i == len(batch) - 1 else 0)
    return publisher


def batched(sink: RecordingSink, batches: list[list[Message]], step: int) -> Publisher:
    publisher = Publisher(sink, rank=3)
    for batch in batches:
        flags = [0] * (len(batch) - 1) + [END]
        assert publisher.broadcast_many(batch, step=step, flags=flags) == len(batch)
    return publisher


def test_broadcast_many_frames_are_byte_identical_to_consecutive_broadcasts() -> None:
    batches = [messages(5), messages(1), messages(12)]
    expected, got = RecordingSink(), RecordingSink()
    reference = one_by_one(expected, batches, step=41)
    publisher = batched(got, batches, step=41)
    assert untimed(got.frames) == untimed(expected.frames)
    assert got.batches == len(batches)  # one push per batch
    assert publisher.frames_encoded == reference.frames_encoded == 18
    assert publisher.step == 41
    # The sequence goes on from there for single broadcasts too.
    assert publisher.broadcast(messages(1)[0]) and reference.broadcast(messages(1)[0])
    assert untimed(got.frames[-1:]) == untimed(expected.frames[-1:])


def test_frames_that_do_not_fit_are_dropped_and_counted_but_keep_their_seq() -> None:
    got, expected = RecordingSink(room=3), RecordingSink()
    publisher = Publisher(got)
    reference = Publisher(expected)
    assert publisher.broadcast_many(messages(5), step=7) == 3
    assert publisher.frames_dropped == 2
    assert publisher.frames_encoded == 5
    for message in messages(5):
        reference.broadcast(message, step=7)
    assert untimed(got.frames) == untimed(expected.frames[:3])
    got.room = 1
    publisher.broadcast(messages(1)[0])  # seq 6: the dropped frames used 4 and 5
    reference.broadcast(messages(1)[0])
    assert untimed(got.frames[-1:]) == untimed(expected.frames[-1:])


def test_a_frame_over_the_limit_drops_only_itself(caplog: pytest.LogCaptureFixture) -> None:
    batch: list[Message] = [
        ErrorReport(ErrorCode.INTERNAL, "short"),
        ErrorReport(ErrorCode.INTERNAL, "long" * 100),
        ErrorReport(ErrorCode.INTERNAL, "short too"),
    ]
    got, expected = RecordingSink(limit=200), RecordingSink()
    publisher = Publisher(got)
    with caplog.at_level(logging.WARNING):
        assert publisher.broadcast_many(batch) == 2
    assert "over the sender's limit" in caplog.text
    assert publisher.frames_dropped == 1
    reference = Publisher(expected)
    for message in batch:
        reference.broadcast(message)
    assert untimed(got.frames) == untimed([expected.frames[0], expected.frames[2]])


def test_closed_publisher_or_sink_queues_nothing() -> None:
    sink = RecordingSink()
    publisher = Publisher(sink)
    sink.closed = True
    assert publisher.broadcast_many(messages(2)) == 0
    assert publisher.frames_dropped == 2
    publisher.close()
    assert publisher.broadcast_many(messages(2)) == 0
    assert publisher.frames_encoded == 2  # nothing encoded once closed
    with pytest.raises(ValueError, match="2 flags for 3 messages"):
        publisher.broadcast_many(messages(3), flags=[0, 0])


def test_broadcast_many_through_the_sender_pump() -> None:
    batches = [messages(4), messages(9)]
    expected = RecordingSink()
    one_by_one(expected, batches, step=5)
    with SenderPump(ring_capacity=1 << 20, client_queue_bytes=1 << 20) as pump:
        with socket.create_server(("127.0.0.1", 0)) as server:
            peer = socket.create_connection(server.getsockname())
            ours, _ = server.accept()
        pump.add_client(ours)
        ours.close()
        publisher = Publisher(pump, rank=3)
        for batch in batches:
            flags = [0] * (len(batch) - 1) + [END]
            assert publisher.broadcast_many(batch, step=5, flags=flags) == len(batch)
        peer.settimeout(10)
        received = []
        for _ in expected.frames:  # the pump's framing: 32-byte header, u32 length at 8
            header = _recv_exact(peer, 32)
            (length,) = struct.unpack_from("<I", header, 8)
            received.append(header + _recv_exact(peer, length))
        assert untimed(received) == untimed(expected.frames)
        peer.close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data
