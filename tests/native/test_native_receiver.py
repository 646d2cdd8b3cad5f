"""The receiver pump through its Python wrapper, over loopback TCP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from native_helpers import is_closed_by_peer, make_frame, read_frame, socket_pair

from synapse_native.errors import ClosedError, InvalidArgumentError
from synapse_native.pumps import ReceiverPump

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def pair() -> Iterator[tuple[ReceiverPump, socket.socket]]:
    """A receiver pump on one end of a connection, and the peer's end."""
    ours, peer = socket_pair()
    with ReceiverPump(ours, ring_capacity=1 << 20, max_payload=4096) as receiver:
        ours.close()
        yield receiver, peer
    peer.close()


def drain_n(receiver: ReceiverPump, n: int, timeout: float = 10.0) -> list[bytes]:
    frames: list[bytes] = []
    deadline = time.monotonic() + timeout
    while len(frames) < n and time.monotonic() < deadline:
        receiver.wait(0.5)
        frames += receiver.drain()
    return frames


def test_frames_of_all_sizes_arrive_whole_and_in_order() -> None:
    ours, peer = socket_pair()
    sizes = [0, 1, 31, 32, 4095, 65536, 300_000, 1_000_000, 7, 2_000_000, 12]
    frames = [make_frame(seq, size) for seq, size in enumerate(sizes)]
    with ReceiverPump(ours, ring_capacity=1 << 23, max_payload=1 << 21) as receiver:
        ours.close()
        writer = threading.Thread(target=lambda: peer.sendall(b"".join(frames)))
        writer.start()
        assert drain_n(receiver, len(frames)) == frames
        writer.join()
        assert receiver.stats().frames_in == len(frames)
    peer.close()


def test_drain_never_blocks(pair: tuple[ReceiverPump, socket.socket]) -> None:
    receiver, _ = pair
    start = time.monotonic()
    for _ in range(1000):
        assert receiver.drain() == []
    assert time.monotonic() - start < 1.0
    assert not receiver.wait(0.05)


def test_full_ring_pushes_back_on_the_writer_and_loses_nothing() -> None:
    ours, peer = socket_pair()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)
    frames = [make_frame(seq, 8000) for seq in range(600)]  # ~4.8 MB through a 64 KiB ring
    with ReceiverPump(ours, ring_capacity=1 << 16, max_payload=8192) as receiver:
        ours.close()
        writer = threading.Thread(target=lambda: peer.sendall(b"".join(frames)))
        writer.start()
        time.sleep(0.3)
        # Nobody drained: the pump stopped reading, so the writer is stuck in sendall and the
        # ring holds no more than its capacity.
        assert writer.is_alive()
        stats = receiver.stats()
        assert stats.ring_used_bytes <= stats.ring_capacity
        assert stats.frames_in < len(frames)
        assert drain_n(receiver, len(frames)) == frames
        writer.join(timeout=5)
        assert not writer.is_alive()
    peer.close()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\n" + bytes(15), 'bad magic 48 54 54 50 (expected "SYNP")'),
        (make_frame(1, 0, version=2), "unsupported protocol version 2 (this build speaks 1)"),
        (
            make_frame(1, 0, declared_len=99_999_999),
            "payload of 99999999 bytes exceeds the 4096-byte limit",
        ),
    ],
)
def test_bad_header_closes_the_stream_with_a_reason(
    pair: tuple[ReceiverPump, socket.socket], bad: bytes, reason: str
) -> None:
    receiver, peer = pair
    good = make_frame(0, 100)
    peer.sendall(good + bad)
    assert drain_n(receiver, 1) == [good]  # frames before the bad header still arrive
    assert not receiver.wait(5)  # then the stream is closed, with nothing left
    assert receiver.closed
    assert receiver.close_reason == reason
    assert is_closed_by_peer(peer)
    assert not receiver.send(make_frame(2, 0))


def test_unknown_message_types_are_passed_on(pair: tuple[ReceiverPump, socket.socket]) -> None:
    receiver, peer = pair
    frame = make_frame(0, 10, msg_type=0xFFFF)
    peer.sendall(frame)
    assert drain_n(receiver, 1) == [frame]
    assert not receiver.closed


def test_peer_hang_up_is_reported(pair: tuple[ReceiverPump, socket.socket]) -> None:
    receiver, peer = pair
    peer.close()
    assert not receiver.wait(5)
    assert receiver.closed
    assert receiver.close_reason == "peer closed the connection"


def test_send_writes_frames_to_the_peer(pair: tuple[ReceiverPump, socket.socket]) -> None:
    receiver, peer = pair
    frames = [make_frame(seq, seq * 50) for seq in range(20)]
    for frame in frames:
        assert receiver.send(frame)
    assert [read_frame(peer) for _ in frames] == frames
    deadline = time.monotonic() + 5
    while receiver.stats().frames_out < len(frames) and time.monotonic() < deadline:
        time.sleep(0.01)  # the pump counts a frame just after writing it
    assert receiver.stats().frames_out == len(frames)


def test_close_wakes_a_waiter_and_keeps_the_final_state() -> None:
    ours, peer = socket_pair()
    receiver = ReceiverPump(ours)
    ours.close()
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(receiver.wait(30)))
    waiter.start()
    time.sleep(0.05)
    start = time.monotonic()
    receiver.close()
    waiter.join(timeout=5)
    assert time.monotonic() - start < 2
    assert results == [False]
    assert receiver.closed
    assert receiver.close_reason == "closed by the application"
    assert is_closed_by_peer(peer)
    with pytest.raises(ClosedError):
        receiver.drain()
    receiver.close()  # twice is fine
    peer.close()


def test_arguments_are_checked() -> None:
    ours, peer = socket_pair()
    with pytest.raises(InvalidArgumentError, match="room for a whole frame"):
        ReceiverPump(ours, ring_capacity=1 << 16, max_payload=1 << 16)
    # The failed pump closed only its duplicate: our socket still works.
    ours.sendall(b"still open")
    assert peer.recv(10) == b"still open"
    ours.close()
    peer.close()
